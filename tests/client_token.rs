//! The access token's own checks against a fake Intercom on a loopback
//! socket, through hyper-util's real HTTP client: `GET /me` as a typed
//! answer, a new token checked before it is put in use (and the token in
//! use left alone), and the token's age as a gauge that stays current.

use std::{
    fs::File,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::{Layer, ServiceExt};
use tower_intercom::{
    client::{
        ApiBase, Error, ErrorKind, IntercomClient, IntercomClientLayer, TokenAge, TokenSource,
    },
    AccessToken,
};
use tower_intercom_test_support::fake_intercom::{FakeIntercom, Me, TokenState, TOKEN};
use tower_intercom_test_support::prometheus::sample;

type Http = Client<HttpConnector, Full<Bytes>>;

/// A second token the fake is told about: the one a rotation brings in.
const NEW_TOKEN: &str = "dG9rOm5ld19mYWtlX2ludGVyY29tX3Rva2Vu";

const DAY: Duration = Duration::from_secs(24 * 3600);

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

fn base(fake: &FakeIntercom) -> ApiBase {
    fake.base_url().parse().unwrap()
}

fn client(fake: &FakeIntercom) -> IntercomClient<Http> {
    IntercomClientLayer::new(TOKEN.parse::<AccessToken>().unwrap())
        .api_base(base(fake))
        .layer(http())
}

/// Whatever an error shows.
fn shown(err: &Error) -> String {
    format!("{err} | {err:?}")
}

/// Runs `test` on a current-thread runtime with a Prometheus recorder of
/// its own, and returns the recorder's handle.
fn with_recorder<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(PrometheusHandle) -> F,
) -> PrometheusHandle {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(handle.clone())));
    handle
}

#[tokio::test]
async fn me_is_the_admin_its_app_region_and_identity_verification() {
    let fake = FakeIntercom::start().await;
    let client = client(&fake);

    let me = client.me().await.unwrap();
    assert_eq!(me.kind(), "admin");
    assert_eq!(me.id(), "991267464");
    assert_eq!(me.email(), "admin@example.com");
    assert_eq!(me.app().id_code(), "this_is_an_id_code");
    assert_eq!(me.app().name(), "MyApp");
    assert_eq!(me.app().region(), "US");
    assert_eq!(me.app().identity_verification(), Some(true));

    fake.set_me(Me {
        region: "Europe".into(),
        identity_verification: false,
        ..Me::default()
    });
    let me = client.me().await.unwrap();
    assert_eq!(me.app().region(), "Europe");
    assert_eq!(me.app().identity_verification(), Some(false));

    let received = fake.received();
    assert_eq!(received.len(), 2);
    for request in received {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/me")
        );
        assert_eq!(
            request.authorization(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(request.headers["intercom-version"], "2.14");
    }
}

#[tokio::test]
async fn me_with_a_refused_token_is_unauthorized_with_intercoms_code_and_request_id() {
    let fake = FakeIntercom::start().await;
    let client = client(&fake);
    for (state, code) in [
        (TokenState::revoked(), "token_revoked"),
        (TokenState::invalid(), "unauthorized"),
        (TokenState::suspended(), "token_suspended"),
    ] {
        fake.set_token(TOKEN, state);
        let err = client.me().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{code}");
        assert_eq!(err.code(), Some(code));
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        let request_id = err.request_id().unwrap();
        assert!(request_id.starts_with("req_"), "{request_id}");
        let text = shown(&err);
        assert!(text.contains(code) && text.contains(request_id), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn me_for_something_else_than_an_admin_is_not_admin() {
    let fake = FakeIntercom::start().await;
    fake.set_me(Me {
        kind: "team".into(),
        ..Me::default()
    });
    let err = client(&fake).me().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAdmin);
    assert_eq!(
        err.to_string(),
        r#"the access token does not belong to an admin: GET /me answered type "team": 200 OK"#
    );
}

#[tokio::test]
async fn me_through_a_wrong_base_path_is_an_unexpected_answer() {
    let fake = FakeIntercom::start().await;
    let client = IntercomClientLayer::new(TOKEN.parse::<AccessToken>().unwrap())
        .api_base(format!("{}/intercom", fake.base_url()).parse().unwrap())
        .layer(http());
    let err = client.me().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedAnswer);
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(err.code(), Some("not_found"));
    assert_eq!(fake.received()[0].path, "/intercom/me");
}

/// A token source whose token can be replaced, counting the refusals it
/// is told of.
#[derive(Clone)]
struct Swappable {
    token: Arc<Mutex<AccessToken>>,
    rejected: Arc<AtomicUsize>,
}

impl TokenSource for Swappable {
    fn token(&self) -> AccessToken {
        self.token.lock().unwrap().clone()
    }

    fn token_rejected(&self, _: &AccessToken, _: &Error) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }
}

/// A new token is checked with `GET /me` and its own `Authorization`; a
/// refused one is an error with Intercom's code. Neither touches the
/// client in use: its source is not told of the refusal, its requests go
/// on with its token, and the refusal is not counted as the token in use
/// being refused (the metric that pages).
#[test]
fn a_candidate_token_is_checked_without_touching_the_token_in_use() {
    let source = Swappable {
        token: Arc::new(Mutex::new(TOKEN.parse().unwrap())),
        rejected: Arc::default(),
    };
    let text = with_recorder(|_| {
        let source = source.clone();
        async move {
            let fake = FakeIntercom::start().await;
            fake.set_token(NEW_TOKEN, TokenState::Valid);
            let layer = IntercomClientLayer::new(source.clone()).api_base(base(&fake));
            let http = http();
            let in_use = layer.layer(http.clone());
            let candidate: AccessToken = NEW_TOKEN.parse().unwrap();

            let me = layer.check_token(http.clone(), &candidate).await.unwrap();
            assert_eq!(me.app().id_code(), "this_is_an_id_code");

            fake.set_token(NEW_TOKEN, TokenState::revoked());
            let err = layer
                .check_token(http.clone(), &candidate)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized);
            assert_eq!(err.code(), Some("token_revoked"));
            assert!(err.request_id().is_some());
            assert!(!shown(&err).contains(NEW_TOKEN), "{}", shown(&err));

            fake.set_me(Me {
                kind: "bot".into(),
                ..Me::default()
            });
            fake.set_token(NEW_TOKEN, TokenState::Valid);
            let err = layer.check_token(http, &candidate).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotAdmin);

            // The client in use goes on with its own token.
            let request = Request::get("/contacts/1").body(Full::default()).unwrap();
            let response = in_use.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);

            let sent: Vec<_> = fake
                .received()
                .iter()
                .map(|r| (r.path.clone(), r.authorization().unwrap().to_owned()))
                .collect();
            let bearer = |token: &str| format!("Bearer {token}");
            assert_eq!(
                sent,
                [
                    ("/me".to_owned(), bearer(NEW_TOKEN)),
                    ("/me".to_owned(), bearer(NEW_TOKEN)),
                    ("/me".to_owned(), bearer(NEW_TOKEN)),
                    ("/contacts/1".to_owned(), bearer(TOKEN)),
                ]
            );
        }
    })
    .render();
    assert_eq!(source.rejected.load(Ordering::SeqCst), 0);
    assert_eq!(source.token().expose_secret(), TOKEN);
    assert_eq!(
        sample(
            &text,
            "intercom_client_auth_failures{error_type=\"token_revoked\"}"
        ),
        Some(0.0),
        "{text}"
    );
}

/// The age from `INTERCOM_ACCESS_TOKEN_ISSUED_AT` (RFC 3339): the gauge
/// says it in seconds, and `record_every` keeps it current.
#[test]
fn the_token_age_from_the_issued_at_variable_is_a_gauge_that_stays_current() {
    let var = "TOWER_INTERCOM_TEST_TOKEN_ISSUED_AT";
    let issued_at = SystemTime::now() - 100 * DAY;
    let text = jiff::Timestamp::try_from(issued_at).unwrap().to_string();
    std::env::set_var(var, &text);
    let age = TokenAge::from_env(var).unwrap();
    std::env::remove_var(var);
    assert!(age.rotation_due(), "{age:?}");
    let days = age.age().unwrap().as_secs() / DAY.as_secs();
    assert_eq!(days, 100, "{text}");

    with_recorder(|handle| async move {
        let gauge = || sample(&handle.render(), "intercom_client_token_age");
        assert_eq!(gauge(), None, "no gauge before a record");
        tokio::spawn(age.record_every(Duration::from_secs(1)));
        tokio::task::yield_now().await;
        let first = gauge().unwrap();
        assert!(first >= (100 * DAY).as_secs_f64(), "{first}");
        assert!(first < (101 * DAY).as_secs_f64(), "{first}");
        // Recorded again a second later: older.
        let deadline = Instant::now() + Duration::from_secs(20);
        while gauge().unwrap() <= first {
            assert!(Instant::now() < deadline, "the gauge stayed at {first}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// The age from a token file's modification time, as a reloading source
/// gives it: a file last written 120 days ago, then rewritten.
#[test]
fn the_token_age_from_a_files_modification_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, TOKEN).unwrap();
    let file = File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - 120 * DAY).unwrap();

    with_recorder(|handle| async move {
        let gauge = || sample(&handle.render(), "intercom_client_token_age").unwrap();
        let age = TokenAge::unknown();
        age.set_issued_at(std::fs::metadata(&path).unwrap().modified().unwrap());
        age.record();
        assert!(age.rotation_due());
        let days = gauge() / DAY.as_secs_f64();
        assert!((120.0..120.1).contains(&days), "{days}");

        // A rotation rewrites the file.
        std::fs::write(&path, NEW_TOKEN).unwrap();
        age.set_issued_at(std::fs::metadata(&path).unwrap().modified().unwrap());
        age.record();
        assert!(!age.rotation_due());
        assert!(gauge() < 60.0, "{}", gauge());
    });
}

/// Writes `content` to `path` as a secret manager does (a new file renamed
/// over the old), last modified at `mtime`.
#[cfg(feature = "reload")]
fn rename_over(path: &std::path::Path, content: &str, mtime: SystemTime) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, content).unwrap();
    File::options()
        .write(true)
        .open(&temporary)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The few lines that join a token file, its check and the client: the
/// file `path` read every 50 ms, a new token checked with `GET /me` on
/// `fake` before it is used, and a client of `fake` taking its token from
/// the file.
#[cfg(feature = "reload")]
async fn checked_token_file(
    fake: &FakeIntercom,
    path: &std::path::Path,
) -> (
    tower_intercom::reload::SecretFile<AccessToken>,
    IntercomClient<Http>,
) {
    let (http, base) = (http(), base(fake));
    let check = {
        let (http, base) = (http.clone(), base.clone());
        move |candidate: &AccessToken| {
            let layer = IntercomClientLayer::new(candidate.clone()).api_base(base.clone());
            let me = layer.check_token(http.clone(), candidate);
            async move { me.await.map(|_admin| ()) }
        }
    };
    let file = tower_intercom::reload::SecretFile::<AccessToken>::builder(path)
        .interval(Duration::from_millis(50))
        .check(check)
        .open()
        .await
        .unwrap();
    let client = IntercomClientLayer::new(file.clone())
        .api_base(base)
        .layer(http);
    (file, client)
}

/// The token read from a file (feature `reload`), each new one checked
/// with `check_token` before it is used, and its age from the file: a
/// revoked token written there is refused (the token in use stays, its
/// requests go on, nothing is counted as the token in use refused), a good
/// one is swapped in and the age starts again.
#[cfg(feature = "reload")]
#[test]
fn a_token_file_is_checked_with_check_token_and_aged_by_its_modification_time() {
    let text = with_recorder(|_| async {
        let fake = FakeIntercom::start().await;
        fake.set_token(NEW_TOKEN, TokenState::Valid);
        let revoked = "dG9rOnJldm9rZWRfdG9rZW4=";
        fake.set_token(revoked, TokenState::revoked());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access-token");
        rename_over(&path, &format!("{TOKEN}\n"), SystemTime::now() - 100 * DAY);

        let (file, client) = checked_token_file(&fake, &path).await;
        let age = TokenAge::of_file(&file);

        assert!(age.rotation_due(), "{age:?}");
        let in_use = || file.current().expose_secret().to_owned();
        let contact = || {
            let client = client.clone();
            async move {
                let request = Request::get("/contacts/1").body(Full::default()).unwrap();
                client.oneshot(request).await.unwrap().status()
            }
        };

        rename_over(&path, &format!("{revoked}\n"), SystemTime::now());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fake
            .received()
            .iter()
            .any(|r| r.authorization() == Some(&*format!("Bearer {revoked}")))
        {
            assert!(
                Instant::now() < deadline,
                "the revoked token was never checked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(in_use(), TOKEN);
        assert_eq!(contact().await, StatusCode::OK);
        assert!(age.rotation_due(), "the revoked file's time is not the age");

        rename_over(&path, &format!("{NEW_TOKEN}\n"), SystemTime::now());
        let deadline = Instant::now() + Duration::from_secs(20);
        while in_use() != NEW_TOKEN {
            assert!(
                Instant::now() < deadline,
                "the new token was never swapped in"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(age.age().unwrap() < Duration::from_secs(60), "{age:?}");
        assert_eq!(contact().await, StatusCode::OK);
        let last = fake.received().pop().unwrap();
        assert_eq!(last.authorization(), Some(&*format!("Bearer {NEW_TOKEN}")));
    })
    .render();
    assert_eq!(
        sample(
            &text,
            "intercom_client_auth_failures{error_type=\"token_revoked\"}"
        ),
        Some(0.0),
        "{text}"
    );
}

/// A token rotated through its file under a load of concurrent requests:
/// every request succeeds, each carries the old or the new token whole,
/// and once the swap is seen no request starts on the old one.
#[cfg(feature = "reload")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_through_its_file_under_load_fails_no_request() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };

    let fake = FakeIntercom::start().await;
    fake.set_rate_limit(1_000_000, Duration::from_secs(10));
    fake.set_record_limit(usize::MAX);
    fake.set_token(NEW_TOKEN, TokenState::Valid);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    rename_over(&path, &format!("{TOKEN}\n"), SystemTime::now());
    let (file, client) = checked_token_file(&fake, &path).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop, sent) = (client.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::get("/contacts/1").body(Full::default()).unwrap();
                    match client.clone().oneshot(request).await {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        Ok(response) => failures.push(response.status().to_string()),
                        Err(err) => failures.push(err.to_string()),
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    // Bounded: a few hundred requests a sender at most.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                failures
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    rename_over(&path, &format!("{NEW_TOKEN}\n"), SystemTime::now());
    let deadline = Instant::now() + Duration::from_secs(20);
    while file.current().expose_secret() != NEW_TOKEN {
        assert!(
            Instant::now() < deadline,
            "the new token was never swapped in"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let swapped_after = fake.request_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        let failures = sender.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(sent.load(Ordering::Relaxed) > 50, "too little load to tell");

    let received = fake.received();
    let old = format!("Bearer {TOKEN}");
    let new = format!("Bearer {NEW_TOKEN}");
    assert!(received
        .iter()
        .all(|r| matches!(r.authorization(), Some(a) if a == old || a == new)));
    assert!(received.iter().any(|r| r.authorization() == Some(&*new)));
    // Requests that reached the fake well after the swap (the ones in
    // flight at the swap aside) all carry the new token.
    let in_flight_at_swap = 16;
    let late = received
        .iter()
        .skip(usize::try_from(swapped_after).unwrap() + in_flight_at_swap);
    assert!(late.into_iter().all(|r| r.authorization() == Some(&*new)));
}

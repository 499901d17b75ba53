//! The Intercom REST API client against a fake Intercom on loopback
//! sockets, through hyper-util's real HTTP client: the headers it sets,
//! where the token may go, pacing by the rate limit, 429 retries and
//! typed refusals.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_intercom::{
    client::{ApiBase, Error, ErrorKind, IntercomClient, IntercomClientLayer, TokenSource},
    AccessToken,
};
use tower_intercom_test_support::fake_intercom::{FakeIntercom, Me, TokenState, TOKEN};
use tower_intercom_test_support::prometheus::sample;

type Http = Client<HttpConnector, Full<Bytes>>;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

fn token() -> AccessToken {
    TOKEN.parse().unwrap()
}

fn base(fake: &FakeIntercom) -> ApiBase {
    fake.base_url().parse().unwrap()
}

/// The client of `fake`, with the default settings.
fn client(fake: &FakeIntercom) -> IntercomClient<Http> {
    IntercomClientLayer::new(token())
        .api_base(base(fake))
        .layer(http())
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

/// Sends `request` and reads the answer's status and body.
async fn send(
    client: &IntercomClient<Http>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), Error> {
    let response = client.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, body))
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Whatever an error shows, with its sources.
fn shown(err: &Error) -> String {
    let mut text = format!("{err} | {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(err) = source {
        text.push_str(&format!(" | {err} | {err:?}"));
        source = err.source();
    }
    text
}

#[tokio::test]
async fn sets_the_token_version_and_accept_and_marks_the_token_sensitive() {
    let fake = FakeIntercom::start().await;
    // Between the layer and the HTTP client: what the client is handed.
    let sensitive = Arc::new(AtomicBool::new(false));
    let seen = sensitive.clone();
    let client = ServiceBuilder::new()
        .layer(IntercomClientLayer::new(token()).api_base(base(&fake)))
        .map_request(move |request: Request<Full<Bytes>>| {
            let header = &request.headers()[header::AUTHORIZATION];
            seen.store(header.is_sensitive(), Ordering::SeqCst);
            request
        })
        .service(http());

    let response = client.clone().oneshot(get("/contacts/42")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        sensitive.load(Ordering::SeqCst),
        "Authorization marked sensitive"
    );

    // A request may ask for another version (and Accept) for itself.
    let request = Request::get("/me")
        .header("intercom-version", "2.11")
        .header(header::ACCEPT, "application/json; charset=utf-8")
        .body(Full::default())
        .unwrap();
    client.oneshot(request).await.unwrap();

    let received = fake.received();
    assert_eq!(received.len(), 2);
    let first = &received[0];
    assert_eq!(first.path, "/contacts/42");
    assert_eq!(
        first.authorization(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(first.headers["intercom-version"], "2.14");
    assert_eq!(first.headers[header::ACCEPT], "application/json");
    let second = &received[1];
    assert_eq!(second.headers["intercom-version"], "2.11");
    assert_eq!(
        second.headers[header::ACCEPT],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        second.authorization(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn requests_run_in_spawned_tasks() {
    let fake = FakeIntercom::start().await;
    let client = client(&fake);
    // The client, its futures and its errors cross threads.
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { send(&client, get(&format!("/contacts/{i}"))).await })
        })
        .collect();
    for task in tasks {
        let (status, _) = task.await.unwrap().unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Error>();
    shared::<IntercomClientLayer>();
}

#[tokio::test]
async fn the_ready_made_https_client_also_speaks_to_a_loopback_api() {
    let fake = FakeIntercom::start().await;
    // The rustls client speaks plain http:// too, which the layer allows
    // for loopback bases only.
    let client = IntercomClientLayer::new(token())
        .api_base(base(&fake))
        .https::<Full<Bytes>>()
        .unwrap();
    let response = client.oneshot(get("/me")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        fake.received()[0].authorization(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // The default: Intercom's US host, over TLS.
    let us: IntercomClient<_> = IntercomClient::https(token()).unwrap();
    let shown = format!("{us:?}");
    assert!(shown.contains("https://api.intercom.io"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    let _: &tower_intercom::client::HttpsClient<Full<Bytes>> = us.get_ref();
}

#[tokio::test]
async fn the_layer_version_and_a_base_path_apply_to_every_request() {
    let fake = FakeIntercom::start().await;
    let client = IntercomClientLayer::new(token())
        .api_base(format!("{}/intercom/", fake.base_url()).parse().unwrap())
        .intercom_version("2.13".parse().unwrap())
        .layer(http());
    let (status, _) = send(&client, get("/me?x=1")).await.unwrap();
    // The fake serves no /intercom prefix: what matters is where it went.
    assert_eq!(status, StatusCode::NOT_FOUND);
    let received = fake.received();
    assert_eq!(received[0].path, "/intercom/me?x=1");
    assert_eq!(received[0].headers["intercom-version"], "2.13");
}

#[tokio::test]
async fn relative_and_same_origin_uris_reach_the_api_and_answer() {
    let fake = FakeIntercom::start().await;
    let client = client(&fake);
    let (status, body) = send(&client, get("/me")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let me: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(me["type"], "admin");
    assert_eq!(me["app"]["id_code"], Me::default().app_id_code);

    let absolute = format!("{}/contacts/9", fake.base_url());
    let (status, _) = send(&client, get(&absolute)).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    let reply = Request::post("/conversations/123/reply")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"message_type":"comment","type":"admin","admin_id":"1","body":"Hi"}"#,
        )))
        .unwrap();
    let (status, body) = send(&client, reply).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let conversation: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        conversation["conversation_parts"]["conversation_parts"][0]["body"],
        "Hi"
    );
    let paths: Vec<_> = fake.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/me", "/contacts/9", "/conversations/123/reply"]);
}

#[tokio::test]
async fn an_absolute_uri_to_another_origin_is_refused_and_nothing_is_sent() {
    let api = FakeIntercom::start().await;
    let other = FakeIntercom::start().await;
    let client = client(&api);
    let port = api.addr().port();
    let elsewhere = [
        format!("{}/contacts/1", other.base_url()),
        // The API's own port under another name, another scheme.
        format!("http://localhost:{port}/contacts/1"),
        format!("https://127.0.0.1:{port}/contacts/1"),
        format!("http://user@127.0.0.1:{port}/contacts/1"),
        "https://api.intercom.io/me".to_owned(),
    ];
    for uri in elsewhere {
        let err = send(&client, get(&uri)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OffHost, "{uri}");
        assert_eq!(err.status(), None, "{uri}");
        assert!(!shown(&err).contains(TOKEN), "{}", shown(&err));
    }
    assert_eq!(other.request_count(), 0, "the other host received nothing");
    assert_eq!(api.request_count(), 0);
}

#[tokio::test]
async fn a_redirect_off_the_origin_is_an_error_and_never_followed() {
    let api = FakeIntercom::start().await;
    let other = FakeIntercom::start().await;
    let client = client(&api);

    api.inject_redirect(&format!("{}/me", other.base_url()), 1);
    let err = send(&client, get("/me")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OffHost);
    assert_eq!(err.status(), Some(StatusCode::FOUND));
    assert!(err.to_string().contains("127.0.0.1"), "{err}");

    // Network-path and backslash forms are the same thing.
    let port = other.addr().port();
    for location in [
        format!("//127.0.0.1:{port}/me"),
        format!("/\\127.0.0.1:{port}/me"),
    ] {
        api.inject_redirect(&location, 1);
        let err = send(&client, get("/me")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OffHost, "{location}");
    }
    assert_eq!(other.request_count(), 0, "the other host received nothing");

    // A redirect on the API's origin is an answer like any other.
    api.inject_redirect("/contacts/2", 1);
    let (status, _) = send(&client, get("/me")).await.unwrap();
    assert_eq!(status, StatusCode::FOUND);
}

#[tokio::test]
async fn a_workload_above_the_limit_is_paced_and_gets_no_429() {
    const LIMIT: u32 = 20;
    const REQUESTS: usize = 100;
    let fake = FakeIntercom::start().await;
    fake.set_rate_limit(LIMIT, Duration::from_secs(1));
    let client = client(&fake);

    let started = Instant::now();
    let statuses: Vec<_> = stream::iter(0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            async move {
                send(&client, get(&format!("/contacts/{i}")))
                    .await
                    .map(|(status, _)| status)
            }
        })
        .buffer_unordered(30)
        .collect()
        .await;
    let elapsed = started.elapsed();
    eprintln!(
        "{REQUESTS} requests, {LIMIT} per 1 s window: {elapsed:?}, {} answered 429 by the fake",
        fake.answered_429()
    );

    for status in &statuses {
        assert_eq!(status.as_ref().ok(), Some(&StatusCode::OK), "{status:?}");
    }
    // 100 requests at 20 per window need the windows of 4 more seconds
    // after the first: held, not refused.
    assert!(
        elapsed >= Duration::from_secs(3),
        "paced over the windows: {elapsed:?}"
    );
    // The fake admitted at most the limit in each window; only the first
    // burst, before the client knew the limit, can have met a 429.
    let admitted = fake
        .received()
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(admitted, REQUESTS);
    assert!(
        fake.answered_429() <= 30 - u64::from(LIMIT),
        "429s only in the first burst: {}",
        fake.answered_429()
    );
}

#[tokio::test]
async fn a_spent_budget_holds_poll_ready_until_the_reset() {
    let fake = FakeIntercom::start().await;
    fake.set_rate_limit(1, Duration::from_secs(1));
    let mut client = client(&fake);
    let (status, _) = send(&client, get("/me")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let reset = unix_seconds(fake.received()[0].at) + 1;

    // Remaining 0: the next request is not admitted before the reset.
    let ready = client.ready().await.map(|_| ());
    assert!(ready.is_ok());
    let admitted_at = SystemTime::now();
    assert!(
        unix_seconds(admitted_at) >= reset,
        "ready at {admitted_at:?}, before the reset at {reset}"
    );
    let response = client.call(get("/me")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fake.answered_429(), 0);
}

#[tokio::test]
async fn an_injected_429_is_sent_again_after_the_reset_with_the_same_token() {
    let fake = FakeIntercom::start().await;
    fake.set_rate_limit(100, Duration::from_secs(1));
    // A source whose token changes while the request waits for its retry.
    let swappable = Swappable::new(token());
    let client = IntercomClientLayer::new(swappable.clone())
        .api_base(base(&fake))
        .layer(http());
    let next: AccessToken = "dG9rOm5leHRfdG9rZW4=".parse().unwrap();
    fake.set_token(next.expose_secret(), TokenState::Valid);

    fake.inject_429(1);
    let body = Full::new(Bytes::from_static(br#"{"body":"once"}"#));
    let request = Request::post("/conversations/5/reply").body(body).unwrap();
    let swap = {
        let swappable = swappable.clone();
        let next = next.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            swappable.set(next);
        }
    };
    let (answer, ()) = tokio::join!(send(&client, request), swap);
    let (status, _) = answer.unwrap();
    assert_eq!(status, StatusCode::OK);

    let received = fake.received();
    assert_eq!(received.len(), 2, "sent twice");
    let (first, second) = (&received[0], &received[1]);
    assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.status, StatusCode::OK);
    let reset = unix_seconds(first.at) + 1;
    assert!(
        second.at >= UNIX_EPOCH + Duration::from_secs(reset),
        "retried at {:?}, before the reset {reset}",
        second.at
    );
    assert_eq!(second.body, first.body);
    // The retry finished on the token the request started with.
    assert_eq!(first.authorization(), second.authorization());
    assert_eq!(
        second.authorization(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // A new request takes the new token.
    send(&client, get("/me")).await.unwrap();
    assert_eq!(
        fake.received()[2].authorization(),
        Some(format!("Bearer {}", next.expose_secret()).as_str())
    );
}

#[tokio::test]
async fn a_429_after_the_last_retry_is_a_rate_limited_error() {
    let fake = FakeIntercom::start().await;
    fake.set_rate_limit(100, Duration::from_secs(1));
    let client = IntercomClientLayer::new(token())
        .api_base(base(&fake))
        .rate_limit_retries(1)
        .layer(http());
    fake.inject_429(2);
    let err = send(&client, get("/me")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(err.code(), Some("rate_limit_exceeded"));
    assert!(err.request_id().is_some());
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn errors_are_sent_again_only_for_idempotent_requests_that_opted_in() {
    let fake = FakeIntercom::start().await;
    let opted_in = IntercomClientLayer::new(token())
        .api_base(base(&fake))
        .retry_idempotent_errors(2)
        .layer(http());

    fake.inject_status(StatusCode::SERVICE_UNAVAILABLE, 1);
    let (status, _) = send(&opted_in, get("/contacts/1")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.request_count(), 2, "the GET was sent again");

    fake.inject_status(StatusCode::SERVICE_UNAVAILABLE, 1);
    let reply = Request::post("/conversations/1/reply")
        .body(Full::new(Bytes::from_static(br#"{"body":"only once"}"#)))
        .unwrap();
    let (status, _) = send(&opted_in, reply).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.request_count(), 3, "the POST was not sent again");

    fake.inject_status(StatusCode::SERVICE_UNAVAILABLE, 1);
    let (status, _) = send(&client(&fake), get("/contacts/1")).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.request_count(), 4, "not opted in: sent once");
}

/// A token source whose token can be replaced, counting the refusals it
/// is told of.
#[derive(Clone)]
struct Swappable {
    token: Arc<Mutex<AccessToken>>,
    rejected: Arc<AtomicUsize>,
}

impl Swappable {
    fn new(token: AccessToken) -> Self {
        Self {
            token: Arc::new(Mutex::new(token)),
            rejected: Arc::default(),
        }
    }

    fn set(&self, token: AccessToken) {
        *self.token.lock().unwrap() = token;
    }
}

impl TokenSource for Swappable {
    fn token(&self) -> AccessToken {
        self.token.lock().unwrap().clone()
    }

    fn token_rejected(&self, token: &AccessToken, error: &Error) {
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert_eq!(token.expose_secret(), self.token().expose_secret());
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn refused_tokens_become_typed_errors_and_are_counted() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let source = Swappable::new(token());
    let before = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let fake = FakeIntercom::start().await;
            let client = IntercomClientLayer::new(source.clone())
                .api_base(base(&fake))
                .layer(http());
            let before = handle.render();

            let refusals = [
                (
                    TokenState::revoked(),
                    "token_revoked",
                    ErrorKind::Unauthorized,
                ),
                (
                    TokenState::suspended(),
                    "token_suspended",
                    ErrorKind::Unauthorized,
                ),
                (
                    TokenState::invalid(),
                    "unauthorized",
                    ErrorKind::Unauthorized,
                ),
                (
                    TokenState::refused(StatusCode::FORBIDDEN, "token_not_found", "Not found"),
                    "token_not_found",
                    ErrorKind::Unauthorized,
                ),
                (
                    TokenState::refused(StatusCode::FORBIDDEN, "api_plan_restricted", "Plan"),
                    "api_plan_restricted",
                    ErrorKind::Forbidden,
                ),
            ];
            for (state, code, kind) in refusals {
                fake.set_token(TOKEN, state.clone());
                let err = send(&client, get("/me")).await.unwrap_err();
                assert_eq!(err.kind(), kind, "{state:?}");
                assert_eq!(err.code(), Some(code));
                let TokenState::Refused { status, .. } = state else {
                    unreachable!()
                };
                assert_eq!(err.status(), Some(status));
                assert!(err.request_id().is_some_and(|id| id.starts_with("req_")));
                assert!(!shown(&err).contains(TOKEN), "{}", shown(&err));
            }
            // An answer echoing the token does not carry it into the error.
            fake.set_token(
                TOKEN,
                TokenState::refused(
                    StatusCode::UNAUTHORIZED,
                    "token_revoked",
                    &format!("Token {TOKEN} was revoked"),
                ),
            );
            let err = send(&client, get("/me")).await.unwrap_err();
            assert!(!shown(&err).contains(TOKEN), "{}", shown(&err));
            assert!(err.to_string().contains("[REDACTED]"), "{err}");
            before
        })
    });

    // The token series exist at 0 as soon as a client is built, so the
    // first failure shows as an increase.
    let failures = |text: &str, code: &str| {
        sample(
            text,
            &format!("intercom_client_auth_failures{{error_type=\"{code}\"}}"),
        )
    };
    assert_eq!(failures(&before, "token_revoked"), Some(0.0), "{before}");
    let text = handle.render();
    assert_eq!(failures(&text, "token_revoked"), Some(2.0), "{text}");
    for code in [
        "token_suspended",
        "unauthorized",
        "token_not_found",
        "api_plan_restricted",
    ] {
        assert_eq!(failures(&text, code), Some(1.0), "{code}\n{text}");
    }
    assert_eq!(failures(&text, "token_unauthorized"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "intercom_client_requests{status_class=\"4xx\"}"),
        Some(6.0),
        "{text}"
    );
    // The source heard of every refused token (not of the 403 without one).
    assert_eq!(source.rejected.load(Ordering::SeqCst), 5);
}

#[test]
fn pacing_and_retries_are_measured() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let fake = FakeIntercom::start().await;
            fake.set_rate_limit(2, Duration::from_secs(1));
            let client = client(&fake);
            fake.inject_429(1);
            for i in 0..3 {
                let (status, _) = send(&client, get(&format!("/contacts/{i}"))).await.unwrap();
                assert_eq!(status, StatusCode::OK);
            }
        })
    });
    let text = handle.render();
    assert_eq!(
        sample(&text, "intercom_client_retries{reason=\"rate_limited\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "intercom_client_requests{status_class=\"2xx\"}"),
        Some(3.0),
        "{text}"
    );
    assert!(
        sample(&text, "intercom_client_rate_limit_remaining").is_some(),
        "{text}"
    );
    // The retry waited for the reset, and a third request for the next one.
    let held = sample(&text, "intercom_client_rate_limit_held_duration_count");
    assert!(held.is_some_and(|count| count >= 1.0), "{text}");
}

#[tokio::test]
async fn no_error_shows_the_token() {
    let fake = FakeIntercom::start().await;
    let mut errors = Vec::new();
    let client = IntercomClientLayer::new(token())
        .api_base(base(&fake))
        .rate_limit_retries(0)
        .layer(http());
    errors.push(
        send(&client, get("https://example.com/me"))
            .await
            .unwrap_err(),
    );
    fake.inject_redirect("https://example.com/me", 1);
    errors.push(send(&client, get("/me")).await.unwrap_err());
    fake.inject_429(1);
    errors.push(send(&client, get("/me")).await.unwrap_err());
    fake.set_token(TOKEN, TokenState::revoked());
    errors.push(send(&client, get("/me")).await.unwrap_err());
    // Nothing listens on the port of a server that was dropped.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let unreachable = IntercomClientLayer::new(token())
        .api_base(format!("http://{closed}").parse().unwrap())
        .layer(http());
    errors.push(send(&unreachable, get("/me")).await.unwrap_err());

    let kinds: Vec<_> = errors.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::OffHost,
            ErrorKind::OffHost,
            ErrorKind::RateLimited,
            ErrorKind::Unauthorized,
            ErrorKind::Transport
        ]
    );
    for err in &errors {
        let text = shown(err);
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("dG9r"), "{text}");
    }
}

/// The token read from a file (feature `reload`): a token Intercom refuses
/// makes the source read its file at once, so the token an operator has
/// already written there replaces it long before the reload interval.
#[cfg(feature = "reload")]
#[tokio::test]
async fn a_refused_token_makes_its_file_be_read_again_at_once() {
    use tower_intercom::reload::SecretFile;

    let fake = FakeIntercom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(Duration::from_secs(3600))
        .open()
        .await
        .unwrap();
    let client = IntercomClientLayer::new(token())
        .with_token_source(file.clone())
        .api_base(base(&fake))
        .layer(http());
    let (status, _) = send(&client, get("/me")).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // The token is rotated: the old one revoked, the new one in the file.
    let new_token = "dG9rOm5ld19hY2Nlc3NfdG9rZW4=";
    fake.set_token(new_token, TokenState::Valid);
    fake.set_token(TOKEN, TokenState::revoked());
    std::fs::write(&path, format!("{new_token}\n")).unwrap();

    let err = send(&client, get("/me")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while file.token().expose_secret() != new_token {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file was not read again within 10 s of the refusal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = send(&client, get("/me")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let last = fake.received().pop().unwrap();
    assert_eq!(last.authorization(), Some(&*format!("Bearer {new_token}")));
}

/// A transport error says why the request failed, not only where:
/// hyper-util's own message is "client error (Connect)", the reason is in
/// its sources.
#[tokio::test]
async fn a_transport_error_says_why_the_connection_failed() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = IntercomClientLayer::new(token())
        .api_base(format!("http://{closed}").parse().unwrap())
        .layer(http());
    let err = send(&client, get("/me")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    let text = err.to_string();
    assert!(
        text.starts_with("the HTTP client failed: client error (Connect)"),
        "{text}"
    );
    assert!(text.contains("Connection refused"), "{text}");
}

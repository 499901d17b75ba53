//! Secrets read from files and reloaded without a restart: real files in
//! temporary directories changed the ways Kubernetes, Vault Agent and
//! people change them, real servers on loopback.

use std::{
    convert::Infallible,
    fs,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{header::AUTHORIZATION, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{Empty, Full, StreamBody};
use tower::{Layer, ServiceExt};
use tower_intercom::{
    identity::{user_hash, IdentitySecret},
    reload::{ReloadErrorKind, SecretFile, MAX_INTERVAL, MIN_INTERVAL},
    sign, AccessToken, SecretErrorKind, VerifyIntercomWebhookLayer, WebhookSecret, WebhookSecrets,
};
use tower_intercom_test_support::{
    client,
    examples::Running,
    logs::Logs,
    requests::{serve_axum, signed_post},
    Recorder, PING,
};

/// The interval of every watcher here: short, so that the tests are quick.
const INTERVAL: Duration = Duration::from_millis(50);

/// How long a test waits for a change to be picked up before failing: a
/// guard against hanging, many intervals long.
const PATIENCE: Duration = Duration::from_secs(10);

/// One modification time for every file written here: a watcher that
/// looked at modification times (or sizes: the contents below have the
/// same length) would see no change.
fn same_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// Writes a temporary file next to `path` and renames it over `path`, as
/// Vault Agent and the secret managers' agents do.
fn rename_over(path: &Path, content: &str, mtime: SystemTime) {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, content).unwrap();
    set_mtime(&temporary, mtime);
    fs::rename(&temporary, path).unwrap();
}

/// Truncates `path` and writes `content` into the same file (same inode),
/// as `echo "$SECRET" > path` does.
fn write_in_place(path: &Path, content: &str, mtime: SystemTime) {
    use std::io::Write;
    let mut file = fs::File::options()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all(content.as_bytes()).unwrap();
    file.set_modified(mtime).unwrap();
}

/// A directory laid out as the kubelet lays out a mounted Secret: `KEY` is
/// a symlink to `..data/KEY`, `..data` a symlink to a timestamped
/// directory; an update writes a new timestamped directory and renames a
/// new `..data` symlink over the old one, then removes the old directory.
struct KubernetesVolume {
    dir: tempfile::TempDir,
    key: &'static str,
    generation: u32,
}

impl KubernetesVolume {
    fn new(key: &'static str, content: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let volume = Self {
            dir,
            key,
            generation: 0,
        };
        let data = volume.write_generation(content);
        std::os::unix::fs::symlink(&data, volume.dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(key), volume.dir.path().join(key))
            .unwrap();
        volume
    }

    /// The path the application is given.
    fn path(&self) -> PathBuf {
        self.dir.path().join(self.key)
    }

    fn timestamped(&self) -> String {
        format!("..2024_01_01_00_00_0{}.000000001", self.generation)
    }

    fn write_generation(&self, content: &str) -> String {
        let name = self.timestamped();
        let dir = self.dir.path().join(&name);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(self.key), content).unwrap();
        set_mtime(&dir.join(self.key), same_mtime());
        name
    }

    fn update(&mut self, content: &str) {
        let old = self.timestamped();
        self.generation += 1;
        let new = self.write_generation(content);
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).unwrap();
        fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        fs::remove_dir_all(self.dir.path().join(old)).unwrap();
    }
}

/// Waits until `done` holds, checking every few milliseconds; fails after
/// [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The signature `secrets` would check first, to tell sets apart.
fn current_signs_as(secrets: &WebhookSecrets, secret: &str) -> bool {
    let secret: WebhookSecret = secret.parse().unwrap();
    sign(secrets.current(), PING) == sign(&secret, PING)
}

fn token(file: &SecretFile<AccessToken>) -> String {
    file.current().expose_secret().to_owned()
}

#[tokio::test]
async fn a_kubernetes_data_symlink_swap_is_picked_up() {
    let mut volume = KubernetesVolume::new("webhook-secrets", "k8s-secret-one-k8s-secret-one\n");
    let secrets = SecretFile::<WebhookSecrets>::builder(volume.path())
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    assert!(current_signs_as(
        &secrets.current(),
        "k8s-secret-one-k8s-secret-one"
    ));

    // Same length, same modification time, another directory.
    volume.update("k8s-secret-two\nk8s-secret-one\n");
    eventually("the new ..data is read", || {
        current_signs_as(&secrets.current(), "k8s-secret-two")
    })
    .await;
    assert_eq!(secrets.current().previous().len(), 1);

    volume.update("k8s-secret-three-k8s-secret-3\n");
    eventually("the second swap is read", || {
        current_signs_as(&secrets.current(), "k8s-secret-three-k8s-secret-3")
    })
    .await;
    assert!(secrets.current().previous().is_empty());
}

#[tokio::test]
async fn a_file_renamed_over_the_old_one_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity-secret");
    rename_over(&path, "identity-secret-one\n", same_mtime());
    let secret = SecretFile::<IdentitySecret>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    let hash_with = |secret: &str| user_hash(&secret.parse().unwrap(), "user-42").unwrap();
    assert_eq!(
        user_hash(&secret.current(), "user-42").unwrap(),
        hash_with("identity-secret-one")
    );

    rename_over(&path, "identity-secret-two\n", same_mtime());
    eventually("the renamed file is read", || {
        user_hash(&secret.current(), "user-42").unwrap() == hash_with("identity-secret-two")
    })
    .await;
}

#[tokio::test]
async fn a_file_truncated_and_rewritten_in_place_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    fs::write(&path, "dG9rOm9uZQ==\n").unwrap();
    set_mtime(&path, same_mtime());
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();

    // Same inode, same length, same modification time.
    write_in_place(&path, "dG9rOnR3bw==\n", same_mtime());
    eventually("the rewritten file is read", || {
        token(&file) == "dG9rOnR3bw=="
    })
    .await;
}

#[tokio::test]
async fn bad_new_files_never_replace_a_good_value_and_are_logged_once_each() {
    let (logs, _capturing) = Logs::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    fs::write(&path, "dG9rOmdvb2Q=\n").unwrap();
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    let loaded_at = file.loaded_at();

    let large = "dG9r".repeat(20_000);
    /// How a bad content gets into the file.
    type Write = fn(&Path, &str);
    let bad: [(&str, Write, &str); 6] = [
        (
            "",
            |path, content| fs::write(path, content).unwrap(),
            "is empty",
        ),
        (
            " \n\t\n",
            |path, content| fs::write(path, content).unwrap(),
            "is blank",
        ),
        (
            "Bearer dG9rOmxlYWtlZA==\n",
            |path, content| fs::write(path, content).unwrap(),
            "cannot be sent in an HTTP header",
        ),
        (
            " dG9rOmxlYWtlZA==\n",
            |path, content| write_in_place(path, content, same_mtime()),
            "starts or ends with whitespace",
        ),
        (
            large.as_str(),
            |path, content| fs::write(path, content).unwrap(),
            "is larger than",
        ),
        (
            "",
            |path, _| fs::remove_file(path).unwrap(),
            "cannot be read",
        ),
    ];
    for (content, write, reason) in bad {
        write(&path, content);
        // Many ticks on the same bad file.
        tokio::time::sleep(INTERVAL * 10).await;
        assert_eq!(token(&file), "dG9rOmdvb2Q=", "after a file that {reason}");
        assert_eq!(file.loaded_at(), loaded_at);
        let text = logs.text();
        let warned: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("WARN") && line.contains(reason))
            .collect();
        assert_eq!(warned.len(), 1, "{reason}:\n{text}");
        assert!(
            warned[0].contains("the previous value stays in use"),
            "{text}"
        );
        assert!(warned[0].contains(&path.display().to_string()), "{text}");
    }

    fs::write(&path, "dG9rOmZpeGVk\n").unwrap();
    eventually("a good file is read again", || {
        token(&file) == "dG9rOmZpeGVk"
    })
    .await;
    assert!(file.loaded_at() > loaded_at);

    let text = logs.text();
    for secret in ["dG9rOmdvb2Q", "dG9rOmxlYWtlZA", "dG9rOmZpeGVk"] {
        assert!(!text.contains(secret), "a secret was logged:\n{text}");
    }
    assert_eq!(
        text.lines().filter(|line| line.contains("WARN")).count(),
        6,
        "{text}"
    );
}

/// A file caught mid-write (truncated, or partly written) is read again,
/// neither taken nor reported. The clock is paused: it moves only when
/// every task waits for a timer, never while a file is being read, so the
/// watcher ticks at 50, 100, 150 ms… and reads a changed file a second
/// time 25 ms later, and the writes below land between its two reads.
#[tokio::test(start_paused = true)]
async fn a_file_caught_mid_write_is_read_again_neither_taken_nor_reported() {
    use tokio::time::{sleep_until, Instant};
    let (logs, _capturing) = Logs::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    fs::write(&path, "dG9rOm9uZQ==\n").unwrap();
    let start = Instant::now();
    let at = |ms: u64| sleep_until(start + Duration::from_millis(ms));
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();

    // Partly written: a valid token, but not the one being written.
    write_in_place(&path, "dG9r", same_mtime());
    at(51).await; // read at 50 ms
    write_in_place(&path, "dG9rOnR3bw==\n", same_mtime());
    at(76).await; // read again at 75 ms: not the same
    assert_eq!(token(&file), "dG9rOm9uZQ==");

    // Truncated, not written yet.
    write_in_place(&path, "", same_mtime());
    at(101).await; // read at 100 ms
    write_in_place(&path, "dG9rOnR3bw==\n", same_mtime());
    at(126).await; // read again at 125 ms: not the same
    assert_eq!(token(&file), "dG9rOm9uZQ==");

    at(200).await; // read at 150 and 175 ms: the same, taken
    assert_eq!(token(&file), "dG9rOnR3bw==");

    let text = logs.text();
    assert!(!text.contains("WARN"), "{text}");
    assert_eq!(text.matches("the new value is in use").count(), 1, "{text}");
    assert_eq!(text.matches("being written").count(), 2, "{text}");
}

/// A stand-in for Intercom's `GET /me` on loopback: 200 and an admin for
/// the tokens it knows, 401 and Intercom's error body for the others, and
/// no answer at all for one token.
async fn fake_me() -> std::net::SocketAddr {
    use axum::{http::HeaderMap, routing::get, Json, Router};
    let me = |headers: HeaderMap| async move {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        match bearer.as_str() {
            "Bearer dG9rOmdvb2Q=" | "Bearer dG9rOm5ldw==" => (
                StatusCode::OK,
                Json(serde_json::json!({"type": "admin", "id": "1", "app": {"id_code": "abc"}})),
            ),
            "Bearer dG9rOnNsb3c=" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                (StatusCode::OK, Json(serde_json::json!({})))
            }
            _ => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({
                    "type": "error.list",
                    "request_id": "req_1",
                    "errors": [{"code": "token_revoked", "message": "Token revoked"}]
                })),
            ),
        }
    };
    serve_axum(Router::new().route("/me", get(me))).await
}

/// `GET /me` with `token` against `addr`; an error naming Intercom's error
/// code unless it answers 200.
async fn check_me(
    addr: std::net::SocketAddr,
    token: AccessToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let request = Request::get("/me")
        .header(AUTHORIZATION, token.authorization_header())
        .body(Empty::<Bytes>::new())?;
    let answer = client::send(addr, request).await;
    if answer.status == StatusCode::OK {
        return Ok(());
    }
    let body: serde_json::Value = serde_json::from_slice(&answer.body)?;
    Err(format!(
        "GET /me answered {}: {}",
        answer.status, body["errors"][0]["code"]
    )
    .into())
}

#[tokio::test]
async fn a_token_that_fails_its_check_never_replaces_the_one_in_use() {
    let (logs, _capturing) = Logs::start();
    let me = fake_me().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    let open = |path: PathBuf| {
        SecretFile::<AccessToken>::builder(path)
            .interval(INTERVAL)
            .check(move |token: &AccessToken| check_me(me, token.clone()))
            .check_timeout(Duration::from_millis(300))
            .open()
    };

    // A revoked token does not even start.
    fs::write(&path, "dG9rOnJldm9rZWQ=\n").unwrap();
    let err = open(path.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ReloadErrorKind::CheckFailed);
    assert!(err.to_string().contains("token_revoked"), "{err}");
    assert!(
        !format!("{err} {err:?}").contains("dG9rOnJldm9rZWQ"),
        "{err:?}"
    );

    fs::write(&path, "dG9rOmdvb2Q=\n").unwrap();
    let file = open(path.clone()).await.unwrap();

    // Revoked: refused by the check, on every tick, and reported once.
    rename_over(&path, "dG9rOnJldm9rZWQ=\n", SystemTime::now());
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(token(&file), "dG9rOmdvb2Q=");
    // No answer within the timeout: refused too.
    rename_over(&path, "dG9rOnNsb3c=\n", SystemTime::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(token(&file), "dG9rOmdvb2Q=");

    rename_over(&path, "dG9rOm5ldw==\n", SystemTime::now());
    eventually("a token that passes is used", || {
        token(&file) == "dG9rOm5ldw=="
    })
    .await;

    let text = logs.text();
    let warned: Vec<&str> = text.lines().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warned.len(), 2, "{text}");
    assert!(warned[0].contains("failed its check") && warned[0].contains("token_revoked"));
    assert!(warned[1].contains("did not finish within 300ms"), "{text}");
    for secret in [
        "dG9rOmdvb2Q",
        "dG9rOnJldm9rZWQ",
        "dG9rOnNsb3c",
        "dG9rOm5ldw",
    ] {
        assert!(!text.contains(secret), "a token was logged:\n{text}");
    }
}

/// A webhook signed with `secret` and a unique id.
fn delivery(secret: &WebhookSecret, n: usize) -> Request<Full<Bytes>> {
    let body = String::from_utf8(PING.to_vec())
        .unwrap()
        .replace("notif_ping", &format!("notif_{n}"));
    signed_post("/webhooks/intercom", secret, body.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answers_every_delivery_while_the_secret_rotates_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-secrets");
    rename_over(&path, "old-client-secret\n", SystemTime::now());
    let secrets = SecretFile::<WebhookSecrets>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    let recorder = Recorder::default();
    let addr = client::serve(
        VerifyIntercomWebhookLayer::from_source(secrets.clone()).layer(recorder.clone()),
    )
    .await;
    let old: WebhookSecret = "old-client-secret".parse().unwrap();
    let new: WebhookSecret = "new-client-secret".parse().unwrap();

    // Intercom's deliveries: a steady concurrent load, signed with the
    // secret Intercom signs with at the time.
    let signing = Arc::new(Mutex::new(old.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..6)
        .map(|_| {
            let (signing, stop, sent, failures) = (
                signing.clone(),
                stop.clone(),
                sent.clone(),
                failures.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let secret = signing.lock().unwrap().clone();
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    let answer = client::send(addr, delivery(&secret, n)).await;
                    if answer.status != StatusCode::OK {
                        failures.lock().unwrap().push((n, answer.status));
                    }
                }
            })
        })
        .collect();
    let probe = |secret: &WebhookSecret| {
        let request = delivery(secret, usize::MAX);
        async move { client::send(addr, request).await.status }
    };
    let until = |secret: WebhookSecret, status: StatusCode| async move {
        let deadline = Instant::now() + PATIENCE;
        while probe(&secret).await != status {
            assert!(Instant::now() < deadline, "never answered {status}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Step 1: the new secret first, the old one still accepted.
    rename_over(
        &path,
        "new-client-secret\nold-client-secret\n",
        SystemTime::now(),
    );
    until(new.clone(), StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        probe(&old).await,
        StatusCode::OK,
        "old secret, still listed"
    );

    // Intercom signs with the new secret from now on.
    *signing.lock().unwrap() = new.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Step 2: the old secret removed.
    rename_over(&path, "new-client-secret\n", SystemTime::now());
    until(old.clone(), StatusCode::UNAUTHORIZED).await;
    for _ in 0..5 {
        assert_eq!(probe(&old).await, StatusCode::UNAUTHORIZED);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {sent} deliveries failed: {failures:?}",
        failures.len()
    );
    assert!(sent > 100, "only {sent} deliveries were sent");
    // The old secret was verified as the previous one during step 1.
    let indices: Vec<usize> = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|seen| seen.verified.map(|verified| verified.secret_index()))
        .collect();
    assert!(
        indices.contains(&1),
        "no delivery verified with the previous secret"
    );
}

/// Sends a delivery signed with `signer` whose body is still arriving when
/// the file becomes `rotated`: it is verified against the secrets in use
/// when it came in.
async fn in_flight(initial: &str, rotated: &str, signer: &str, expected_index: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-secrets");
    rename_over(&path, initial, SystemTime::now());
    let secrets = SecretFile::<WebhookSecrets>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    let recorder = Recorder::default();
    let service = VerifyIntercomWebhookLayer::from_source(secrets.clone()).layer(recorder.clone());

    let secret: WebhookSecret = signer.parse().unwrap();
    let (frames, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let frame = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(frame)), receiver))
    });
    let request = Request::post("/webhooks/intercom")
        .header("x-hub-signature", sign(&secret, PING))
        .body(StreamBody::new(stream))
        .unwrap();
    let response = tokio::spawn(service.clone().oneshot(request));
    let (head, tail) = PING.split_at(PING.len() / 2);
    frames.send(Bytes::from_static(head)).await.unwrap();
    // Room in the channel again: the layer has taken the first half.
    let permit = frames.reserve().await.unwrap();

    let loaded_at = secrets.loaded_at();
    rename_over(&path, rotated, SystemTime::now());
    eventually("the rotation is read", || secrets.loaded_at() > loaded_at).await;
    permit.send(Bytes::from_static(tail));
    drop(frames);
    let response: Response<_> = response.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{initial:?} -> {rotated:?}"
    );
    assert_eq!(
        recorder.last().verified.unwrap().secret_index(),
        expected_index
    );

    // The same delivery sent now is refused.
    let request = signed_post("/webhooks/intercom", &secret, PING);
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_delivery_in_flight_finishes_on_the_secrets_it_came_in_with() {
    // Signed with the current secret, replaced mid-body.
    in_flight("secret-one\n", "secret-two\n", "secret-one", 0).await;
    // Signed with the previous secret, removed mid-body.
    in_flight("secret-two\nsecret-one\n", "secret-two\n", "secret-one", 1).await;
}

#[tokio::test]
async fn modification_time_and_load_time_are_those_of_the_value_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    rename_over(&path, "dG9rOm9uZQ==\n", issued);
    let before = SystemTime::now();
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    assert_eq!(file.modified(), Some(issued));
    let first_load = file.loaded_at();
    assert!(first_load >= before);

    // Same content, newer time: still the same value, from the same time.
    rename_over(&path, "dG9rOm9uZQ==\n", SystemTime::now());
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(file.modified(), Some(issued));
    assert_eq!(file.loaded_at(), first_load);

    let rotated = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    rename_over(&path, "dG9rOnR3bw==\n", rotated);
    eventually("the new token is read", || token(&file) == "dG9rOnR3bw==").await;
    assert_eq!(file.modified(), Some(rotated));
    assert!(file.loaded_at() > first_load);
}

#[tokio::test]
async fn opening_refuses_what_would_leave_the_service_without_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = SecretFile::<AccessToken>::open(&missing).await.unwrap_err();
    assert_eq!(err.kind(), ReloadErrorKind::Unreadable);
    assert!(err.to_string().contains("missing"), "{err}");

    let path = dir.path().join("webhook-secrets");
    fs::write(&path, "current-secret\n previous-secret\n").unwrap();
    let err = SecretFile::<WebhookSecrets>::open(&path).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ReloadErrorKind::Invalid(SecretErrorKind::SurroundingWhitespace)
    );
    assert_eq!(err.line(), Some(2));
    assert!(
        !format!("{err} {err:?}").contains("previous-secret"),
        "{err:?}"
    );

    // Outside a Tokio runtime: an error, not a panic.
    fs::write(&path, "current-secret\n").unwrap();
    let outside = std::thread::spawn(move || {
        futures_util::FutureExt::now_or_never(SecretFile::<WebhookSecrets>::open(path))
    })
    .join()
    .unwrap();
    let err = outside.expect("refused at once").unwrap_err();
    assert_eq!(err.kind(), ReloadErrorKind::NoRuntime);
}

#[tokio::test]
async fn any_interval_is_clamped_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    fs::write(&path, "dG9rOm9uZQ==\n").unwrap();
    for (interval, expected) in [
        (Duration::ZERO, MIN_INTERVAL),
        (Duration::from_nanos(1), MIN_INTERVAL),
        (Duration::MAX, MAX_INTERVAL),
    ] {
        let file = SecretFile::<AccessToken>::builder(&path)
            .interval(interval)
            .check_timeout(interval)
            .check(|_: &AccessToken| async { Ok::<_, Infallible>(()) })
            .open()
            .await
            .unwrap();
        assert_eq!(file.interval(), expected);
    }
    // The shortest interval still picks changes up.
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(Duration::ZERO)
        .open()
        .await
        .unwrap();
    rename_over(&path, "dG9rOnR3bw==\n", SystemTime::now());
    eventually("read at the shortest interval", || {
        token(&file) == "dG9rOnR3bw=="
    })
    .await;
}

#[tokio::test]
async fn a_woken_watcher_reads_the_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    fs::write(&path, "dG9rOm9uZQ==\n").unwrap();
    // The next tick is a day away.
    let file = SecretFile::<AccessToken>::builder(&path)
        .interval(Duration::MAX)
        .open()
        .await
        .unwrap();
    rename_over(&path, "dG9rOnR3bw==\n", SystemTime::now());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(token(&file), "dG9rOm9uZQ==");

    file.clone().wake();
    eventually("read when woken", || token(&file) == "dG9rOnR3bw==").await;
    // Woken with nothing new: nothing changes.
    file.wake();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(token(&file), "dG9rOnR3bw==");
}

#[tokio::test]
async fn the_watcher_stops_once_the_file_is_no_longer_used() {
    let (logs, _capturing) = Logs::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-secrets");
    fs::write(&path, "secret-one\n").unwrap();
    let file = SecretFile::<WebhookSecrets>::builder(&path)
        .interval(INTERVAL)
        .open()
        .await
        .unwrap();
    // A layer holds it: it is still used.
    let layer = VerifyIntercomWebhookLayer::from_source(file.clone());
    drop(file);
    tokio::time::sleep(INTERVAL * 5).await;
    assert!(
        !logs.text().contains("its watcher stops"),
        "{}",
        logs.text()
    );

    drop(layer);
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(
        logs.text().matches("its watcher stops").count(),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn debug_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let webhook = dir.path().join("webhook-secrets");
    fs::write(&webhook, "debug-current-secret\ndebug-previous-secret\n").unwrap();
    let identity = dir.path().join("identity-secret");
    fs::write(&identity, "debug-identity-secret\n").unwrap();
    let access = dir.path().join("access-token");
    fs::write(&access, "dG9rOmRlYnVn\n").unwrap();

    let secrets = SecretFile::<WebhookSecrets>::open(&webhook).await.unwrap();
    let identity = SecretFile::<IdentitySecret>::open(&identity).await.unwrap();
    let token = SecretFile::<AccessToken>::open(&access).await.unwrap();
    let layer = VerifyIntercomWebhookLayer::from_source(secrets.clone());
    fs::write(&access, "Bearer dG9rOmRlYnVn").unwrap();
    let refused = SecretFile::<AccessToken>::open(&access).await.unwrap_err();

    let shown = format!(
        "{secrets:?} {:?} {identity:?} {:?} {token:?} {:?} {layer:?} {refused:?} {refused} {:?}",
        secrets.current(),
        identity.current(),
        token.current(),
        SecretFile::<AccessToken>::builder(&access),
    );
    for secret in [
        "debug-current",
        "debug-previous",
        "debug-identity",
        "dG9rOmRlYnVn",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("WebhookSecrets { current: WebhookSecret(REDACTED), previous: 1 }"));
    assert!(shown.contains("AccessToken(REDACTED)"), "{shown}");
}

#[cfg(feature = "metrics")]
#[test]
fn reloads_and_failures_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access-token");
    fs::write(&path, "dG9rOm9uZQ==\n").unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let file = SecretFile::<AccessToken>::builder(&path)
                .interval(INTERVAL)
                .open()
                .await
                .unwrap();
            rename_over(&path, "dG9rOnR3bw==\n", SystemTime::now());
            eventually("reloaded", || token(&file) == "dG9rOnR3bw==").await;
            rename_over(&path, "\n", SystemTime::now());
            tokio::time::sleep(INTERVAL * 10).await;
            fs::remove_file(&path).unwrap();
            tokio::time::sleep(INTERVAL * 10).await;
            rename_over(&path, "dG9rOnRocmVl\n", SystemTime::now());
            eventually("reloaded again", || token(&file) == "dG9rOnRocmVl").await;
        })
    });
    let text = handle.render();
    let sample = |series: &str| {
        text.lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    assert_eq!(
        sample("intercom_secret_reloads{secret=\"access_token\"}"),
        Some(2.0),
        "{text}"
    );
    for error_type in ["invalid", "unreadable"] {
        let series = format!(
            "intercom_secret_reload_failures{{secret=\"access_token\",error_type=\"{error_type}\"}}"
        );
        assert_eq!(sample(&series), Some(1.0), "{series}\n{text}");
    }
}

#[tokio::test]
async fn axum_example_reloads_its_webhook_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-secrets");
    rename_over(&path, "example-old-secret\n", SystemTime::now());
    let running = Running::start(
        "axum",
        &[("INTERCOM_WEBHOOK_SECRET_FILE", path.to_str().unwrap())],
    );
    let old: WebhookSecret = "example-old-secret".parse().unwrap();
    let new: WebhookSecret = "example-new-secret".parse().unwrap();
    assert_eq!(
        client::send(running.addr, delivery(&old, 1)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client::send(running.addr, delivery(&new, 2)).await.status,
        StatusCode::UNAUTHORIZED
    );

    rename_over(&path, "example-new-secret\n", SystemTime::now());
    // The example reads the file every 10 s (the default interval).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 3;
    while client::send(running.addr, delivery(&new, n)).await.status != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the new secret was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        n += 1;
    }
    assert_eq!(
        client::send(running.addr, delivery(&old, n + 1))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn axum_example_refuses_an_unusable_secret_file_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-secrets");
    fs::write(&path, " example-padded-secret\n").unwrap();
    let mut command = tower_intercom_test_support::examples::command("axum");
    command
        .env("INTERCOM_WEBHOOK_SECRET_FILE", &path)
        .env(
            "PORT",
            tower_intercom_test_support::examples::free_port().to_string(),
        )
        .current_dir(dir.path());
    let output = output_within(command, Duration::from_secs(60));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("whitespace"), "{stderr}");
    assert!(!stderr.contains("example-padded-secret"), "{stderr}");
    // Nothing was opened: no inbox file.
    assert!(!dir.path().join("intercom-inbox.sqlite3").exists());
}

/// Runs `command` to its end, or kills it after `limit` and fails (a
/// server that did not refuse its settings would run forever).
fn output_within(mut command: std::process::Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("still running after {limit:?}");
        }
    }
}

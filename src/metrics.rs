//! What the crate measures, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): the crate emits, your application installs
//! the recorder and exporter (Prometheus, OpenTelemetry, StatsD, …).
//! Without the feature, or without a recorder, nothing is recorded and
//! nearly nothing is spent.
//!
//! Names follow OpenTelemetry's conventions (dotted, lowercase, units
//! apart; the reason of a failure in `error.type`); Prometheus exporters
//! turn the dots into underscores (`intercom_webhook_rejected_total`).
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `intercom.webhook.verified` | counter | `signature.scheme` (`hub`, `body`), `secret.index` (`0`, `1`, …) | requests whose signature matched; `secret.index` > 0 means a previous secret signed it |
//! | `intercom.webhook.rejected` | counter | `error.type` (`missing`, `malformed`, `invalid`, `expired`, `too_large`, `unreadable`, `head`, `method`) | requests the verifying layer refused (`malformed` includes several signature headers; `head` is a `HEAD` under `HeadPolicy::Reject`; `method` any other method than `POST`) |
//! | `intercom.webhook.body.size` | histogram, bytes | `signature.scheme` | size of each verified body |
//! | `intercom.idempotency.outcome` | counter | `outcome` (`claimed`, `duplicate`, `in_progress`, `store_error`) | what the idempotency layer found for each notification |
//! | `intercom.inbox.receive` | counter | `outcome` (`stored`, `duplicate`, `invalid`, `unavailable`, `overloaded`) | what the inbox receiver answered |
//! | `intercom.inbox.commit.duration` | histogram, seconds | | time from a verified request to its durable commit (the ack latency), for notifications stored; a duplicate, which stores nothing, is counted by `intercom.inbox.receive` only |
//! | `intercom.inbox.processed` | counter | `outcome` (`done`, `retried`, `dead`) | processing attempts and how they ended |
//! | `intercom.inbox.processing.duration` | histogram, seconds | `outcome` | time the processing took |
//! | `intercom.inbox.processing.delay` | histogram, seconds | | time from a notification's receipt (`received_at`) to the start of its first processing attempt: how far behind the workers run. Retries are not measured (their delay is mostly the backoff); a notification handed back at shutdown is measured again when it is taken again |
//! | `intercom.inbox.pending`, `intercom.inbox.in_progress`, `intercom.inbox.dead` | gauges | | notifications waiting (retries waiting out their backoff included), leased to a worker, and dead, when the inbox was last counted (`Inbox::counts`) |
//! | `intercom.inbox.oldest_pending.age` | gauge, seconds | | how long the longest-waiting due notification has waited since it became due (stored, handed back, requeued, or its retry's backoff over), when the inbox was last counted; 0 when none is due. It grows while no worker takes work |
//! | `intercom.client.requests` | counter | `status.class` (`1xx` … `5xx`, `error` when no answer came) | answers the REST API client received, retried attempts included |
//! | `intercom.client.auth.failures` | counter | `error.type` (Intercom's code: `unauthorized`, `token_revoked`, `token_unauthorized`, `token_not_found`, `token_suspended`, `forbidden`, `api_plan_restricted`, `other`) | 401 and 403 answers; the series of the token codes start at 0 when a client layer is built, so the first failure is an increase |
//! | `intercom.client.rate_limit.remaining` | gauge | | the rate-limit window's remaining budget, as the last answer left it |
//! | `intercom.client.rate_limit.held.duration` | histogram, seconds | | time a request was held by the client's pacing before it was sent |
//! | `intercom.client.retries` | counter | `reason` (`rate_limited` for a 429, `error` for an opted-in retry of an idempotent request) | requests sent again |
//! | `intercom.client.token.age` | gauge, seconds | | how old the access token in use is, when its issued-at time is known (`client::TokenAge`), as of its last record |
//! | `intercom.secret.reloads` | counter | `secret` (`webhook`, `identity`, `access_token`) | new values of a secret file swapped in (feature `reload`) |
//! | `intercom.secret.reload.failures` | counter | `secret`, `error.type` (`unreadable`, `too_large`, `invalid`, `check`) | changes of a secret file that were refused, the value in use staying; each distinct failure once (feature `reload`) |
//!
//! The inbox's gauges are set by `Inbox::counts`: call it where your
//! metrics are collected, as the example does at each scrape.
//!
//! The example `examples/axum.rs` serves them at `GET /metrics` on its
//! admin port (`ADMIN_PORT`, loopback only, apart from the webhooks) in
//! Prometheus's text format, with the histograms in the buckets
//! [`SECONDS_BUCKETS`] and [`BODY_SIZE_BUCKETS`];
//! `deploy/prometheus/alerts.yml` has alert rules for them and
//! `deploy/grafana/tower-intercom.json` a Grafana dashboard (both expect
//! the exporter's default names: dots as underscores, no `_total` or unit
//! suffix).

/// `intercom.webhook.verified`: Requests whose signature matched.
pub const WEBHOOK_VERIFIED: &str = "intercom.webhook.verified";

/// `intercom.webhook.rejected`: Requests the verifying layer refused.
pub const WEBHOOK_REJECTED: &str = "intercom.webhook.rejected";

/// `intercom.webhook.body.size`: Size of each verified body, in bytes.
pub const WEBHOOK_BODY_SIZE: &str = "intercom.webhook.body.size";

/// `intercom.idempotency.outcome`: What the idempotency layer found for each notification.
pub const IDEMPOTENCY_OUTCOME: &str = "intercom.idempotency.outcome";

/// `intercom.inbox.receive`: What the inbox receiver answered.
pub const INBOX_RECEIVE: &str = "intercom.inbox.receive";

/// `intercom.inbox.commit.duration`: Time to the durable commit, in
/// seconds, of each notification stored (not of duplicates).
pub const INBOX_COMMIT_DURATION: &str = "intercom.inbox.commit.duration";

/// `intercom.inbox.processed`: Processing attempts and how they ended.
pub const INBOX_PROCESSED: &str = "intercom.inbox.processed";

/// `intercom.inbox.processing.duration`: Time the processing took, in seconds.
pub const INBOX_PROCESSING_DURATION: &str = "intercom.inbox.processing.duration";

/// `intercom.inbox.processing.delay`: Time from the receipt of a
/// notification to the start of its first attempt, in seconds.
pub const INBOX_PROCESSING_DELAY: &str = "intercom.inbox.processing.delay";

/// `intercom.inbox.pending`: Notifications waiting in the inbox.
pub const INBOX_PENDING: &str = "intercom.inbox.pending";

/// `intercom.inbox.in_progress`: Notifications leased to a worker.
pub const INBOX_IN_PROGRESS: &str = "intercom.inbox.in_progress";

/// `intercom.inbox.dead`: Dead notifications in the inbox.
pub const INBOX_DEAD: &str = "intercom.inbox.dead";

/// `intercom.inbox.oldest_pending.age`: How long the longest-waiting due
/// notification has waited since it became due, in seconds (0: none is
/// due).
pub const INBOX_OLDEST_PENDING_AGE: &str = "intercom.inbox.oldest_pending.age";

/// `intercom.client.requests`: Answers the REST API client received, by status class.
pub const CLIENT_REQUESTS: &str = "intercom.client.requests";

/// `intercom.client.auth.failures`: 401 and 403 answers, by Intercom's error code.
pub const CLIENT_AUTH_FAILURES: &str = "intercom.client.auth.failures";

/// `intercom.client.rate_limit.remaining`: The rate-limit window's remaining budget.
pub const CLIENT_RATE_LIMIT_REMAINING: &str = "intercom.client.rate_limit.remaining";

/// `intercom.client.rate_limit.held.duration`: Time a request was held by pacing, in seconds.
pub const CLIENT_RATE_LIMIT_HELD_DURATION: &str = "intercom.client.rate_limit.held.duration";

/// `intercom.client.retries`: Requests sent again, by reason.
pub const CLIENT_RETRIES: &str = "intercom.client.retries";

/// `intercom.client.token.age`: How old the access token in use is, in seconds.
pub const CLIENT_TOKEN_AGE: &str = "intercom.client.token.age";

/// `intercom.secret.reloads`: New values of a secret file swapped in.
pub const SECRET_RELOADS: &str = "intercom.secret.reloads";

/// `intercom.secret.reload.failures`: Refused changes of a secret file.
pub const SECRET_RELOAD_FAILURES: &str = "intercom.secret.reload.failures";

/// Bucket boundaries, in seconds, that suit the crate's duration
/// histograms (commit, processing, receipt to processing, pacing), for an
/// exporter that takes them: from 1 ms to 1 h, with Intercom's 500 ms
/// (endpoints that answer faster are favoured), the inbox's default 2 s
/// deadline and Intercom's 5 s timeout as boundaries.
///
/// `metrics-exporter-prometheus` renders histograms as summaries unless it
/// is given buckets; summaries cannot be aggregated across processes, and
/// the Grafana dashboard in `deploy/grafana` reads buckets (`_bucket`).
///
/// # Example
///
/// ```
/// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
/// use tower_intercom::metrics::{BODY_SIZE_BUCKETS, SECONDS_BUCKETS, WEBHOOK_BODY_SIZE};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let recorder = PrometheusBuilder::new()
///     .set_buckets(SECONDS_BUCKETS)?
///     .set_buckets_for_metric(Matcher::Full(WEBHOOK_BODY_SIZE.into()), BODY_SIZE_BUCKETS)?
///     .build_recorder();
/// # drop(recorder);
/// # Ok(())
/// # }
/// ```
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// Bucket boundaries, in bytes, for `intercom.webhook.body.size`: from
/// 256 B to the default body limit (2 MiB); Intercom's notifications are
/// mostly a few KiB. See [`SECONDS_BUCKETS`] for how to set them.
pub const BODY_SIZE_BUCKETS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 2097152.0,
];

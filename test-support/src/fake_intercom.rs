//! A fake of Intercom's REST API on a loopback port: a real hyper server
//! that checks the bearer token, answers `GET /me` and a few resources
//! with the documented shapes, refuses tokens with the documented error
//! bodies, counts requests in fixed rate-limit windows (429
//! `rate_limit_exceeded` over the limit, `X-RateLimit-*` on every answer),
//! can be told to answer a 429 or a redirect, and records what it
//! received.
//!
//! Everything is configurable while it runs: tokens accepted or refused,
//! the `/me` answer, the limit and window.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

/// The token a fake accepts from the start: base64 of
/// `tok:fake_intercom_token`, shaped like Intercom's.
pub const TOKEN: &str = "dG9rOmZha2VfaW50ZXJjb21fdG9rZW4=";

/// What `GET /me` answers (the admin the token belongs to, and its app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// `"admin"` for a real token.
    pub kind: String,
    pub id: String,
    pub name: String,
    pub email: String,
    pub app_id_code: String,
    pub app_name: String,
    /// `"US"`, `"Europe"`, `"Australia"`.
    pub region: String,
    pub identity_verification: bool,
}

impl Default for Me {
    fn default() -> Self {
        Self {
            kind: "admin".into(),
            id: "991267464".into(),
            name: "Ciaran Lee".into(),
            email: "admin@example.com".into(),
            app_id_code: "this_is_an_id_code".into(),
            app_name: "MyApp".into(),
            region: "US".into(),
            identity_verification: true,
        }
    }
}

impl Me {
    fn json(&self) -> Value {
        json!({
            "type": self.kind,
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "email_verified": true,
            "app": {
                "type": "app",
                "id_code": self.app_id_code,
                "name": self.app_name,
                "created_at": 1_672_928_359,
                "secure": true,
                "identity_verification": self.identity_verification,
                "timezone": "America/Los_Angeles",
                "region": self.region,
            },
            "avatar": {"type": "avatar", "image_url": null},
            "has_inbox_seat": true,
        })
    }
}

/// How the fake answers a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    Valid,
    /// Refused with this status and `error.list` entry.
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
}

impl TokenState {
    /// 401 `token_revoked`.
    pub fn revoked() -> Self {
        Self::refused(StatusCode::UNAUTHORIZED, "token_revoked", "Token revoked")
    }

    /// 401 `unauthorized`, as for a token Intercom does not know.
    pub fn invalid() -> Self {
        Self::refused(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        )
    }

    /// 401 `token_suspended`.
    pub fn suspended() -> Self {
        Self::refused(
            StatusCode::UNAUTHORIZED,
            "token_suspended",
            "Token suspended",
        )
    }

    pub fn refused(status: StatusCode, code: &str, message: &str) -> Self {
        Self::Refused {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One request the fake received, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: SystemTime,
    pub status: StatusCode,
}

impl Received {
    /// The `Authorization` header as text.
    pub fn authorization(&self) -> Option<&str> {
        self.headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }
}

/// A running fake; clones share it.
#[derive(Clone)]
pub struct FakeIntercom {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

struct State {
    tokens: HashMap<String, TokenState>,
    me: Me,
    limit: u32,
    window: Duration,
    /// The current window (its index since the epoch) and the requests it
    /// admitted.
    current: (u64, u32),
    inject_429: u32,
    inject_redirect: Option<(String, u32)>,
    inject_status: Option<(StatusCode, u32)>,
    received: Vec<Received>,
    record_limit: usize,
    total: u64,
    answered_429: u64,
    next_request_id: u64,
}

impl FakeIntercom {
    /// Starts a fake accepting [`TOKEN`], with a limit of 10,000 requests
    /// per 10-second window, recording up to 10,000 requests.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            tokens: HashMap::from([(TOKEN.to_owned(), TokenState::Valid)]),
            me: Me::default(),
            limit: 10_000,
            window: Duration::from_secs(10),
            current: (0, 0),
            inject_429: 0,
            inject_redirect: None,
            inject_status: None,
            received: Vec::new(),
            record_limit: 10_000,
            total: 0,
            answered_429: 0,
            next_request_id: 1,
        }));
        let shared = state.clone();
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let state = shared.clone();
            async move { Ok::<_, Infallible>(answer(&state, request).await) }
        });
        let addr = crate::client::serve(service).await;
        Self { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, an API base for the client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// How requests with `token` are answered from now on.
    pub fn set_token(&self, token: &str, answer: TokenState) {
        self.state().tokens.insert(token.to_owned(), answer);
    }

    /// What `GET /me` answers from now on.
    pub fn set_me(&self, me: Me) {
        self.state().me = me;
    }

    /// `limit` requests per fixed `window` (windows start at multiples of
    /// `window` since the Unix epoch, so a whole number of seconds gives
    /// an exact `X-RateLimit-Reset`). Zero-length windows count as 1 ms.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut state = self.state();
        state.limit = limit;
        state.window = window.max(Duration::from_millis(1));
        state.current = (0, 0);
    }

    /// The next `count` requests with a valid token get 429
    /// `rate_limit_exceeded` (with the current window's `Reset`), whatever
    /// the budget.
    pub fn inject_429(&self, count: u32) {
        self.state().inject_429 = count;
    }

    /// The next `count` requests with a valid token get `302 Found` to
    /// `location`.
    pub fn inject_redirect(&self, location: &str, count: u32) {
        self.state().inject_redirect = Some((location.to_owned(), count));
    }

    /// The next `count` requests with a valid token get `status` (a 5xx,
    /// say) with an `error.list` body `server_error`, counted in the
    /// window.
    pub fn inject_status(&self, status: StatusCode, count: u32) {
        self.state().inject_status = Some((status, count));
    }

    /// Records at most `limit` requests (the count goes on).
    pub fn set_record_limit(&self, limit: usize) {
        self.state().record_limit = limit;
    }

    /// The requests received so far (up to the record limit), oldest
    /// first.
    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> u64 {
        self.state().total
    }

    /// How many requests were answered 429.
    pub fn answered_429(&self) -> u64 {
        self.state().answered_429
    }
}

/// The `X-RateLimit-*` headers and whether the request is admitted.
struct Budget {
    limit: u32,
    remaining: u32,
    reset: u64,
    admitted: bool,
}

impl State {
    fn budget(&mut self, now: SystemTime, forced_429: bool) -> Budget {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let window_ms = self.window.as_millis().max(1);
        let index = (since_epoch.as_millis() / window_ms) as u64;
        if self.current.0 != index {
            self.current = (index, 0);
        }
        let end_ms = (u128::from(index) + 1) * window_ms;
        let reset = end_ms.div_ceil(1000) as u64;
        let admitted = !forced_429 && self.current.1 < self.limit;
        if admitted {
            self.current.1 += 1;
        }
        Budget {
            limit: self.limit,
            remaining: if forced_429 {
                0
            } else {
                self.limit - self.current.1
            },
            reset,
            admitted,
        }
    }

    fn request_id(&mut self) -> String {
        let id = self.next_request_id;
        self.next_request_id += 1;
        format!("req_{id:08}")
    }
}

fn error_list(request_id: &str, code: &str, message: &str) -> Value {
    json!({
        "type": "error.list",
        "request_id": request_id,
        "errors": [{"code": code, "message": message}],
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

async fn answer(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let at = SystemTime::now();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);

    let mut state = state.lock().unwrap();
    state.total += 1;
    let request_id = state.request_id();
    let response = respond(
        &mut state,
        &parts.method,
        &path,
        token.as_deref(),
        &body,
        &request_id,
        at,
    );
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        state.answered_429 += 1;
    }
    if state.received.len() < state.record_limit {
        state.received.push(Received {
            method: parts.method,
            path,
            headers: parts.headers,
            body,
            at,
            status: response.status(),
        });
    }
    response
}

fn respond(
    state: &mut State,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    request_id: &str,
    now: SystemTime,
) -> Response<Full<Bytes>> {
    match token.and_then(|token| state.tokens.get(token)) {
        Some(TokenState::Valid) => {}
        Some(TokenState::Refused {
            status,
            code,
            message,
        }) => return json_response(*status, &error_list(request_id, code, message)),
        None => {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &error_list(request_id, "unauthorized", "Access Token Invalid"),
            )
        }
    }

    if let Some((location, count)) = &mut state.inject_redirect {
        if *count > 0 {
            *count -= 1;
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            if let Ok(location) = HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
    }

    let forced_429 = state.inject_429 > 0;
    if forced_429 {
        state.inject_429 -= 1;
    }
    let budget = state.budget(now, forced_429);
    let injected = match &mut state.inject_status {
        Some((status, count)) if *count > 0 && budget.admitted => {
            *count -= 1;
            Some(*status)
        }
        _ => None,
    };
    let mut response = if let Some(status) = injected {
        json_response(
            status,
            &error_list(request_id, "server_error", "Injected by the fake"),
        )
    } else if budget.admitted {
        resource(state, method, path, body, request_id)
    } else {
        json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &error_list(
                request_id,
                "rate_limit_exceeded",
                "You have exceeded the rate limit. Please try again later.",
            ),
        )
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", budget.limit.into());
    headers.insert("x-ratelimit-remaining", budget.remaining.into());
    headers.insert("x-ratelimit-reset", budget.reset.into());
    response
}

fn resource(
    state: &State,
    method: &Method,
    path: &str,
    body: &[u8],
    request_id: &str,
) -> Response<Full<Bytes>> {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["me"]) => json_response(StatusCode::OK, &state.me.json()),
        (&Method::GET, ["contacts", id]) => json_response(
            StatusCode::OK,
            &json!({
                "type": "contact",
                "id": id,
                "workspace_id": state.me.app_id_code,
                "role": "user",
                "email": format!("user-{id}@example.com"),
            }),
        ),
        (&Method::POST, ["conversations", id, "reply"]) => {
            let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            json_response(
                StatusCode::OK,
                &json!({
                    "type": "conversation",
                    "id": id,
                    "state": "open",
                    "conversation_parts": {
                        "type": "conversation_part.list",
                        "conversation_parts": [{
                            "type": "conversation_part",
                            "part_type": reply.get("message_type").cloned().unwrap_or(Value::Null),
                            "body": reply.get("body").cloned().unwrap_or(Value::Null),
                        }],
                        "total_count": 1,
                    },
                }),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &error_list(request_id, "not_found", "Resource Not Found"),
        ),
    }
}

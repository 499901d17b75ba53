//! `GET /me`: whom an access token belongs to, and whether a new token
//! works before it is put in use.

use std::future::{poll_fn, Future};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

use super::{error::clean, Error, IntercomClient, IntercomClientLayer};
use crate::{access_token::AccessToken, box_error::BoxError};

/// At most this much of a `GET /me` answer is read.
const MAX_ME_BODY: usize = 64 * 1024;

/// At most this many characters are kept of each text of the answer.
const MAX_TEXT_LEN: usize = 256;

/// What `GET /me` says of an access token: the admin it belongs to and the
/// app (the workspace) it works on. Only an answer of `"type": "admin"` is
/// a `Me`; see [`IntercomClient::me`].
///
/// Texts are kept as Intercom sent them, cut to 256 characters, control
/// characters turned to spaces (so they can be printed), and `""` when the
/// answer has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    id: String,
    name: String,
    email: String,
    app: App,
}

/// The app (workspace) of a [`Me`]: `app` in `GET /me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    id_code: String,
    name: String,
    region: String,
    identity_verification: Option<bool>,
}

impl Me {
    /// `"admin"`: the `type` of every `Me`.
    pub fn kind(&self) -> &str {
        "admin"
    }

    /// The admin's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The admin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin's email address.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The app the token works on.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The `Me` of a `GET /me` answer of status 2xx, or the error saying
    /// why it is not one. `token` is cut out of every text kept.
    fn parse(body: &[u8], token: &AccessToken) -> Result<Self, Error> {
        let unexpected = |what| Error::unexpected(StatusCode::OK, what, b"", token);
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| unexpected("the body of GET /me is not JSON"))?;
        match value.get("type") {
            Some(Value::String(kind)) if kind == "admin" => {}
            Some(Value::String(kind)) => return Err(Error::not_admin(Some(kind), token)),
            _ => return Err(Error::not_admin(None, token)),
        }
        let text = |value: Option<&Value>| match value {
            Some(Value::String(text)) => clean(text, MAX_TEXT_LEN, token.expose_secret()),
            // Ids are strings in Intercom's answers; a number is taken too.
            Some(Value::Number(number)) => number.to_string(),
            _ => String::new(),
        };
        let Some(app) = value.get("app").filter(|app| app.is_object()) else {
            return Err(unexpected("GET /me answered no app"));
        };
        let id_code = text(app.get("id_code"));
        if id_code.is_empty() {
            return Err(unexpected("GET /me answered no app.id_code"));
        }
        Ok(Self {
            id: text(value.get("id")),
            name: text(value.get("name")),
            email: text(value.get("email")),
            app: App {
                id_code,
                name: text(app.get("name")),
                region: text(app.get("region")),
                identity_verification: app.get("identity_verification").and_then(Value::as_bool),
            },
        })
    }
}

impl App {
    /// The app's id code (the `app_id` of its webhooks and of the
    /// Messenger's settings).
    pub fn id_code(&self) -> &str {
        &self.id_code
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the workspace's data is hosted, as Intercom names it (`"US"`,
    /// `"Europe"`, `"Australia"`); only that region's API host answers for
    /// it (see [`Region`](super::Region)).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whether Identity Verification is enforced on the app: `Some(false)`
    /// means the Messenger trusts any `user_id` or email a page gives it,
    /// so anyone can impersonate your users (turn it on in Intercom's
    /// Messenger security settings; see the crate's `identity` module).
    /// `None` when the answer does not say.
    pub fn identity_verification(&self) -> Option<bool> {
        self.identity_verification
    }
}

impl<S> IntercomClient<S> {
    /// `GET /me`: the admin the access token belongs to and its app.
    ///
    /// It is the check Intercom asks for before a token is deployed: the
    /// answer must be `"type": "admin"`. The request goes through the
    /// client like any other (the token of the source, the API base,
    /// pacing) and the returned future owns what it needs (it borrows
    /// nothing of `self`), so it can be spawned.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Unauthorized`](super::ErrorKind::Unauthorized) with
    ///   Intercom's code (`unauthorized`, `token_revoked`, …) and
    ///   `request_id` when the token is refused; the other errors of a
    ///   request ([`Forbidden`](super::ErrorKind::Forbidden),
    ///   [`RateLimited`](super::ErrorKind::RateLimited),
    ///   [`Transport`](super::ErrorKind::Transport), …).
    /// - [`ErrorKind::NotAdmin`](super::ErrorKind::NotAdmin) when the
    ///   answer's `type` is not `"admin"`.
    /// - [`ErrorKind::UnexpectedAnswer`](super::ErrorKind::UnexpectedAnswer)
    ///   for another status than 2xx, a body over 64 KiB, or one that is
    ///   not JSON with an `app.id_code`.
    ///
    /// # Example
    ///
    /// ```
    /// use std::convert::Infallible;
    ///
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::service_fn;
    /// use tower_intercom::{client::IntercomClient, AccessToken};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// // In production the inner service is an HTTP client
    /// // (`IntercomClient::https(token)?`); here it answers as Intercom does.
    /// let intercom = service_fn(|request: Request<Full<Bytes>>| async move {
    ///     assert_eq!(request.uri(), "https://api.intercom.io/me");
    ///     let me = r#"{"type":"admin","id":"991267464","email":"admin@example.com",
    ///         "app":{"id_code":"abc123","region":"US","identity_verification":true}}"#;
    ///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(me.as_bytes()))))
    /// });
    /// let token: AccessToken = "dG9rOmV4YW1wbGU=".parse()?;
    /// let client = IntercomClient::new(intercom, token);
    ///
    /// let me = client.me().await?;
    /// assert_eq!(me.email(), "admin@example.com");
    /// assert_eq!(me.app().id_code(), "abc123");
    /// assert_eq!(me.app().region(), "US");
    /// assert_eq!(me.app().identity_verification(), Some(true));
    /// # Ok(())
    /// # }
    /// ```
    pub fn me<B, ResBody>(&self) -> impl Future<Output = Result<Me, Error>>
    where
        Self: Service<Request<B>, Response = Response<ResBody>, Error = Error> + Clone,
        B: Default,
        ResBody: Body,
        ResBody::Error: Into<BoxError>,
    {
        let mut client = self.clone();
        // Only to cut it out of the texts kept, should an answer echo it.
        let token = self.shared.token.token();
        async move {
            poll_fn(|cx| client.poll_ready(cx)).await?;
            let mut request = Request::new(B::default());
            *request.uri_mut() = Uri::from_static("/me");
            let response = client.call(request).await?;
            let status = response.status();
            let body = read(response.into_body()).await.map_err(|err| match err {
                Unread::TooLarge => Error::unexpected(
                    status,
                    "the answer to GET /me is larger than 64 KiB",
                    b"",
                    &token,
                ),
                Unread::Failed(err) => Error::transport(err),
            })?;
            if !status.is_success() {
                return Err(Error::unexpected(
                    status,
                    "GET /me did not answer 2xx",
                    &body,
                    &token,
                ));
            }
            Me::parse(&body, &token)
        }
    }
}

/// Why an answer's body was not read.
enum Unread {
    TooLarge,
    Failed(BoxError),
}

/// The body, at most [`MAX_ME_BODY`] bytes of it.
async fn read<B>(body: B) -> Result<Bytes, Unread>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_ME_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(Unread::TooLarge),
        Err(err) => Err(Unread::Failed(err)),
    }
}

impl IntercomClientLayer {
    /// Checks `candidate`, a token **not in use yet**, with `GET /me`
    /// through `inner` and this layer's settings (API base, version,
    /// rate-limit budget): `Ok` only when Intercom answers 2xx for an
    /// admin. The token source of the layer, and every client it made, are
    /// left alone: the check sends `candidate` and nothing else.
    ///
    /// This is the check a reloading token source runs on a new token
    /// before it swaps it in: a token Intercom refuses (a file rendered
    /// with a revoked token, a truncated one) is never used, and the
    /// refusal is this check's answer, so it is not counted in
    /// `intercom.client.auth.failures` (whose alert means the token *in
    /// use* is refused) and not told to the source's
    /// [`token_rejected`](super::TokenSource::token_rejected). The
    /// request itself counts in `intercom.client.requests` and the rate
    /// limit like any other.
    ///
    /// The future owns what it needs (a clone of the layer, `inner` and
    /// `candidate`), so a check hook can be a closure over an HTTP client
    /// and the settings. The layer gives only its settings and budget: one
    /// built for the candidate itself does as well, which is how a
    /// `reload::SecretFile<AccessToken>` checks each token it reads before
    /// the client that will send it exists (feature `reload`; see
    /// [`TokenAge::of_file`](super::TokenAge) for the few lines).
    ///
    /// # Errors
    ///
    /// As [`IntercomClient::me`].
    ///
    /// # Example
    ///
    /// ```
    /// use std::convert::Infallible;
    ///
    /// use bytes::Bytes;
    /// use http::{header::AUTHORIZATION, Request, Response, StatusCode};
    /// use http_body_util::Full;
    /// use tower::service_fn;
    /// use tower_intercom::{
    ///     client::{ErrorKind, IntercomClientLayer},
    ///     AccessToken,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// // Intercom, as an HTTP client would reach it: the new token works,
    /// // the revoked one does not.
    /// let http = service_fn(|request: Request<Full<Bytes>>| async move {
    ///     let (status, body) = match request.headers()[AUTHORIZATION].to_str() {
    ///         Ok("Bearer dG9rOm5ldw==") => (
    ///             StatusCode::OK,
    ///             r#"{"type":"admin","id":"1","app":{"id_code":"abc123"}}"#,
    ///         ),
    ///         _ => (
    ///             StatusCode::UNAUTHORIZED,
    ///             r#"{"type":"error.list","request_id":"r1",
    ///                 "errors":[{"code":"token_revoked","message":"Token revoked"}]}"#,
    ///         ),
    ///     };
    ///     let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    ///     *response.status_mut() = status;
    ///     Ok::<_, Infallible>(response)
    /// });
    ///
    /// let in_use: AccessToken = "dG9rOmN1cnJlbnQ=".parse()?;
    /// let layer = IntercomClientLayer::new(in_use);
    ///
    /// let new: AccessToken = "dG9rOm5ldw==".parse()?;
    /// let me = layer.check_token(http.clone(), &new).await?;
    /// assert_eq!(me.app().id_code(), "abc123");
    ///
    /// let revoked: AccessToken = "dG9rOnJldm9rZWQ=".parse()?;
    /// let err = layer.check_token(http, &revoked).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Unauthorized);
    /// assert_eq!(err.code(), Some("token_revoked"));
    /// assert_eq!(err.request_id(), Some("r1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_token<S, B, ResBody>(
        &self,
        inner: S,
        candidate: &AccessToken,
    ) -> impl Future<Output = Result<Me, Error>>
    where
        IntercomClient<S>: Service<Request<B>, Response = Response<ResBody>, Error = Error> + Clone,
        B: Default,
        ResBody: Body,
        ResBody::Error: Into<BoxError>,
    {
        self.for_candidate(candidate).layer(inner).me()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ErrorKind;

    const TOKEN: &str = "dG9rOnNlY3JldF90b2tlbl92YWx1ZQ==";

    fn parse(body: &str) -> Result<Me, Error> {
        Me::parse(body.as_bytes(), &TOKEN.parse().unwrap())
    }

    #[test]
    fn reads_the_admin_and_its_app() {
        let me = parse(
            r#"{"type":"admin","id":"991267464","name":"Ciaran","email":"a@example.com",
                "app":{"type":"app","id_code":"abc123","name":"MyApp","region":"Europe",
                       "identity_verification":false}}"#,
        )
        .unwrap();
        assert_eq!(me.kind(), "admin");
        assert_eq!(me.id(), "991267464");
        assert_eq!(me.name(), "Ciaran");
        assert_eq!(me.email(), "a@example.com");
        assert_eq!(me.app().id_code(), "abc123");
        assert_eq!(me.app().name(), "MyApp");
        assert_eq!(me.app().region(), "Europe");
        assert_eq!(me.app().identity_verification(), Some(false));

        let sparse = parse(r#"{"type":"admin","id":42,"app":{"id_code":"abc123"}}"#).unwrap();
        assert_eq!(sparse.id(), "42");
        assert_eq!(sparse.email(), "");
        assert_eq!(sparse.app().identity_verification(), None);
    }

    #[test]
    fn anything_but_an_admin_with_an_app_is_an_error() {
        let err = parse(r#"{"type":"team","id":"1","app":{"id_code":"abc123"}}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotAdmin);
        assert_eq!(
            err.to_string(),
            r#"the access token does not belong to an admin: GET /me answered type "team": 200 OK"#
        );
        assert_eq!(
            parse(r#"{"id":"1"}"#).unwrap_err().kind(),
            ErrorKind::NotAdmin
        );
        assert_eq!(parse("[]").unwrap_err().kind(), ErrorKind::NotAdmin);
        for unexpected in [
            "<html>",
            "",
            r#"{"type":"admin"}"#,
            r#"{"type":"admin","app":{}}"#,
        ] {
            assert_eq!(
                parse(unexpected).unwrap_err().kind(),
                ErrorKind::UnexpectedAnswer,
                "{unexpected}"
            );
        }
    }

    #[test]
    fn texts_are_bounded_printable_and_never_the_token() {
        let me = parse(&format!(
            r#"{{"type":"admin","name":"{TOKEN}\u001b[2J","email":"{}","app":{{"id_code":"abc"}}}}"#,
            "e".repeat(10_000)
        ))
        .unwrap();
        assert_eq!(me.name(), "[REDACTED] [2J");
        assert_eq!(me.email().len(), MAX_TEXT_LEN);
        let err = parse(&format!(r#"{{"type":"{TOKEN}"}}"#)).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(TOKEN));
    }
}

//! Where requests go: the API base, a region's host or a URL of your own.

use std::{
    env, fmt,
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use http::{
    uri::{Authority, Parts, PathAndQuery, Scheme},
    HeaderValue, Uri,
};

use crate::config_error::{ConfigError, ConfigErrorKind};

/// The environment variable the examples read the API base from:
/// `us`, `eu`, `au` or a URL (see [`ApiBase::from_env`]).
pub const API_URL_VAR: &str = "INTERCOM_API_URL";

/// A region of Intercom's REST API, each with its own host.
///
/// A workspace's data lives in one region and only that region's host
/// answers for it: `GET /me` says which (`app.region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Region {
    /// `https://api.intercom.io`, the default.
    #[default]
    Us,
    /// `https://api.eu.intercom.io`.
    Eu,
    /// `https://api.au.intercom.io`.
    Au,
}

impl Region {
    /// The region's API host.
    ///
    /// ```
    /// use tower_intercom::client::Region;
    ///
    /// assert_eq!(Region::Eu.host(), "api.eu.intercom.io");
    /// ```
    pub fn host(self) -> &'static str {
        match self {
            Self::Us => "api.intercom.io",
            Self::Eu => "api.eu.intercom.io",
            Self::Au => "api.au.intercom.io",
        }
    }

    /// The region named `us`, `eu` or `au` (any case).
    fn named(name: &str) -> Option<Self> {
        [Self::Us, Self::Eu, Self::Au]
            .into_iter()
            .find(|region| name.eq_ignore_ascii_case(region.code()))
    }

    fn code(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
            Self::Au => "au",
        }
    }
}

/// The base URL of Intercom's REST API: where relative request URIs go, and
/// the only origin (scheme, host and port) the access token is sent to.
///
/// - [`ApiBase::region`] (or [`Default`], the US host) for Intercom itself.
/// - [`ApiBase::parse`] (or [`str::parse`]) for `us`, `eu`, `au` or a URL:
///   a local fake API in tests, or a proxy. A URL may have a path (a proxy
///   serving the API under `/intercom` gets `/intercom/me`), never a user,
///   password, query or fragment. Plain `http://` is accepted for loopback
///   hosts only (`localhost`, `127.0.0.0/8`, `[::1]`): anywhere else the
///   token would cross the network unencrypted.
/// - [`ApiBase::from_env`] reads `INTERCOM_API_URL` (or another variable)
///   the same way, the US host when it is unset or empty.
///
/// # Example
///
/// ```
/// use tower_intercom::{client::{ApiBase, Region}, ConfigErrorKind};
///
/// assert_eq!(ApiBase::region(Region::Eu).to_string(), "https://api.eu.intercom.io");
/// assert_eq!("au".parse::<ApiBase>()?, ApiBase::region(Region::Au));
/// let local: ApiBase = "http://127.0.0.1:8080".parse()?;
/// assert_eq!(local.host(), "127.0.0.1");
///
/// let err = "http://intercom-proxy.internal".parse::<ApiBase>().unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::InsecureApiUrl);
/// # Ok::<(), tower_intercom::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiBase {
    scheme: Scheme,
    authority: Authority,
    /// The path before each request's, without a trailing `/`; empty for
    /// none.
    prefix: String,
}

impl ApiBase {
    /// The API host of `region`, over HTTPS.
    pub fn region(region: Region) -> Self {
        Self {
            scheme: Scheme::HTTPS,
            authority: Authority::from_static(region.host()),
            prefix: String::new(),
        }
    }

    /// `us`, `eu`, `au` (any case) or an `https://` URL (`http://` for a
    /// loopback host); surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidApiUrl`] for anything else (no host, a
    /// user or password, a query, another scheme), and
    /// [`ConfigErrorKind::InsecureApiUrl`] for `http://` to a host that is
    /// not loopback.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        if let Some(region) = Region::named(text) {
            return Ok(Self::region(region));
        }
        let invalid = || ConfigError::new(ConfigErrorKind::InvalidApiUrl);
        let uri: Uri = text.parse().map_err(|_| invalid())?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(invalid());
        };
        let path = parts
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if authority.as_str().contains('@') || authority.host().is_empty() || path.query().is_some()
        {
            return Err(invalid());
        }
        if scheme == Scheme::HTTP {
            if !is_loopback(authority.host()) {
                return Err(ConfigError::new(ConfigErrorKind::InsecureApiUrl));
            }
        } else if scheme != Scheme::HTTPS {
            return Err(invalid());
        }
        Ok(Self {
            scheme,
            authority,
            prefix: path.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The base named by the environment variable `name` (see
    /// [`parse`](Self::parse)); the US host when it is unset or empty.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse), and [`ConfigErrorKind::InvalidApiUrl`]
    /// for a value that is not unicode; the error names the variable
    /// ([`ConfigError::var`]), never its value.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_intercom::client::{ApiBase, API_URL_VAR};
    ///
    /// # std::env::remove_var(API_URL_VAR);
    /// assert_eq!(ApiBase::from_env(API_URL_VAR)?, ApiBase::default());
    /// # Ok::<(), tower_intercom::ConfigError>(())
    /// ```
    pub fn from_env(name: &str) -> Result<Self, ConfigError> {
        match env::var(name) {
            Ok(value) if value.trim().is_empty() => Ok(Self::default()),
            Ok(value) => Self::parse(&value).map_err(|err| err.in_var(name)),
            Err(env::VarError::NotPresent) => Ok(Self::default()),
            Err(env::VarError::NotUnicode(_)) => {
                Err(ConfigError::new(ConfigErrorKind::InvalidApiUrl).in_var(name))
            }
        }
    }

    /// The host requests are sent to.
    pub fn host(&self) -> &str {
        self.authority.host()
    }

    /// Where a request for `uri` goes: a relative URI (`/me`) under the
    /// base; an absolute one only when it names the base's origin.
    pub(crate) fn route(&self, uri: Uri) -> Result<Uri, Uri> {
        if uri.scheme().is_some() || uri.authority().is_some() {
            return if self.same_origin(&uri) {
                Ok(uri)
            } else {
                Err(uri)
            };
        }
        let path = match uri.path_and_query() {
            Some(path) if path.as_str().starts_with('/') => path,
            Some(_) => return Err(uri),
            None => &PathAndQuery::from_static("/"),
        };
        let path_and_query = if self.prefix.is_empty() {
            path.clone()
        } else {
            match format!("{}{}", self.prefix, path).parse() {
                Ok(joined) => joined,
                Err(_) => return Err(uri),
            }
        };
        let mut parts = Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|_| uri)
    }

    /// Whether `uri` (absolute) has the base's scheme, host and port.
    pub(crate) fn same_origin(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return false;
        };
        *scheme == self.scheme
            && !authority.as_str().contains('@')
            && authority.host().eq_ignore_ascii_case(self.authority.host())
            && port(scheme, authority) == port(&self.scheme, &self.authority)
    }

    /// Whether a redirect's `Location` stays on the base's origin. A
    /// relative reference (`/next`, `page?x=1`) does; a network-path one
    /// (`//host/…`) or an absolute URI only when it names the origin; a
    /// value that cannot be read does not.
    pub(crate) fn location_stays(&self, location: &HeaderValue) -> bool {
        let Ok(location) = location.to_str() else {
            return false;
        };
        if location.starts_with("//") || location.starts_with("/\\") || location.starts_with('\\') {
            return format!("{}:{location}", self.scheme)
                .parse::<Uri>()
                .is_ok_and(|uri| self.same_origin(&uri));
        }
        if location.starts_with('/') {
            return true;
        }
        // A scheme is letters, digits, `+`, `-`, `.` before the first `:`,
        // which comes before any `/`, `?` or `#`.
        let head = location.split(['/', '?', '#']).next().unwrap_or_default();
        if head.contains(':') {
            location
                .parse::<Uri>()
                .is_ok_and(|uri| self.same_origin(&uri))
        } else {
            !location.contains('\\')
        }
    }
}

/// The port a URI connects to, its scheme's default when it names none.
fn port(scheme: &Scheme, authority: &Authority) -> Option<u16> {
    authority.port_u16().or(if *scheme == Scheme::HTTPS {
        Some(443)
    } else if *scheme == Scheme::HTTP {
        Some(80)
    } else {
        None
    })
}

/// `localhost`, `127.0.0.0/8` or `[::1]`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .and_then(|host| host.parse::<Ipv6Addr>().ok())
            .is_some_and(|ip| ip.is_loopback())
}

impl Default for ApiBase {
    /// The US host, `https://api.intercom.io`.
    fn default() -> Self {
        Self::region(Region::Us)
    }
}

impl FromStr for ApiBase {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text)
    }
}

impl fmt::Display for ApiBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

impl fmt::Debug for ApiBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiBase({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> ApiBase {
        text.parse().unwrap()
    }

    fn kind(text: &str) -> ConfigErrorKind {
        text.parse::<ApiBase>().unwrap_err().kind()
    }

    #[test]
    fn from_env_errors_name_the_variable_never_the_value() {
        let name = "TOWER_INTERCOM_TEST_API_URL_BAD";
        env::set_var(name, "http://user:hunter2@10.0.0.1");
        let err = ApiBase::from_env(name).unwrap_err();
        env::remove_var(name);
        assert_eq!(err.kind(), ConfigErrorKind::InvalidApiUrl);
        assert_eq!(err.var(), Some(name));
        let shown = format!("{err} {err:?}");
        assert!(
            shown.starts_with(&format!(
                "environment variable `{name}`: the Intercom API base"
            )),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!("uk".parse::<ApiBase>().unwrap_err().var(), None);
    }

    #[test]
    fn parses_regions_and_urls() {
        assert_eq!(base("US"), ApiBase::default());
        assert_eq!(base(" eu\n").host(), "api.eu.intercom.io");
        assert_eq!(base("https://api.au.intercom.io/"), base("au"));
        assert_eq!(
            base("https://proxy.example:8443/intercom/").to_string(),
            "https://proxy.example:8443/intercom"
        );
        for loopback in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "http://127.8.9.10:1",
            "http://[::1]:80",
        ] {
            assert_eq!(base(loopback).scheme, Scheme::HTTP, "{loopback}");
        }
    }

    #[test]
    fn refuses_what_would_leak_or_cannot_work() {
        for insecure in [
            "http://api.intercom.io",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "http://[::2]",
        ] {
            assert_eq!(
                kind(insecure),
                ConfigErrorKind::InsecureApiUrl,
                "{insecure}"
            );
        }
        for invalid in [
            "",
            "api.intercom.io",
            "/me",
            "ftp://api.intercom.io",
            "https://user:pw@api.intercom.io",
            "https://api.intercom.io/?x=1",
            "https://",
            "uk",
        ] {
            assert_eq!(kind(invalid), ConfigErrorKind::InvalidApiUrl, "{invalid}");
        }
        let shown = "https://user:hunter2@api.intercom.io"
            .parse::<ApiBase>()
            .unwrap_err()
            .to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn routes_relative_uris_and_only_same_origin_absolute_ones() {
        let us = ApiBase::default();
        let route = |base: &ApiBase, uri: &str| base.route(uri.parse().unwrap()).ok();
        assert_eq!(
            route(&us, "/contacts/1?x=2").unwrap(),
            "https://api.intercom.io/contacts/1?x=2"
        );
        let proxy = base("https://proxy.example/intercom/");
        assert_eq!(
            route(&proxy, "/me").unwrap(),
            "https://proxy.example/intercom/me"
        );
        assert!(route(&us, "https://api.intercom.io/me").is_some());
        assert!(route(&us, "https://API.intercom.io:443/me").is_some());
        for off in [
            "https://api.eu.intercom.io/me",
            "http://api.intercom.io/me",
            "https://api.intercom.io:8443/me",
            "https://api.intercom.io.evil.example/me",
            "https://user@api.intercom.io/me",
            "api.intercom.io:443",
            "*",
        ] {
            assert!(route(&us, off).is_none(), "{off}");
        }
    }

    #[test]
    fn redirects_stay_only_on_the_origin() {
        let us = ApiBase::default();
        let stays = |location: &str| us.location_stays(&HeaderValue::from_str(location).unwrap());
        for same in [
            "/next",
            "next?page=2",
            "?page=2",
            "https://api.intercom.io/next",
            "//api.intercom.io/next",
        ] {
            assert!(stays(same), "{same}");
        }
        for off in [
            "https://evil.example/",
            "//evil.example/next",
            "/\\evil.example/next",
            "\\\\evil.example",
            "http://api.intercom.io/next",
            "javascript:alert(1)",
            "https://api.intercom.io@evil.example/",
        ] {
            assert!(!stays(off), "{off}");
        }
        assert!(!us.location_stays(&HeaderValue::from_bytes(b"/caf\xc3\xa9").unwrap()));
    }
}

//! The `Intercom-Version` requests ask for.

use std::{fmt, str::FromStr};

use http::HeaderValue;

use crate::config_error::{ConfigError, ConfigErrorKind};

/// The `Intercom-Version` the client sends unless told otherwise: `2.14`,
/// the newest version when this crate was released.
///
/// Without the header, Intercom answers in the version set on the app in
/// the Developer Hub, so a change there would change every answer. Pinning
/// it in code makes an upgrade a reviewed change; pass another version with
/// [`IntercomClientLayer::intercom_version`](super::IntercomClientLayer::intercom_version),
/// or set the header on one request to override it for that request.
pub const DEFAULT_INTERCOM_VERSION: &str = "2.14";

/// The API version a request asks for, sent as `Intercom-Version`.
///
/// [`Default`] is [`DEFAULT_INTERCOM_VERSION`]. Others are parsed from
/// their name (`"2.11"`, `"Unstable"`): 1 to 32 letters, digits, dots,
/// dashes or underscores.
///
/// ```
/// use tower_intercom::client::{IntercomVersion, DEFAULT_INTERCOM_VERSION};
///
/// assert_eq!(IntercomVersion::default().as_str(), DEFAULT_INTERCOM_VERSION);
/// let version: IntercomVersion = "2.11".parse()?;
/// assert_eq!(version.as_str(), "2.11");
/// assert!("2.11\r\nX-Injected: 1".parse::<IntercomVersion>().is_err());
/// # Ok::<(), tower_intercom::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IntercomVersion(HeaderValue);

impl IntercomVersion {
    /// The longest version name accepted.
    const MAX_LEN: usize = 32;

    /// The version named `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidIntercomVersion`] for an empty or longer
    /// name, or one with another character.
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        let valid = (1..=Self::MAX_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        match HeaderValue::from_str(name) {
            Ok(value) if valid => Ok(Self(value)),
            _ => Err(ConfigError::new(ConfigErrorKind::InvalidIntercomVersion)),
        }
    }

    /// The version's name.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.0
    }
}

impl Default for IntercomVersion {
    fn default() -> Self {
        Self(HeaderValue::from_static(DEFAULT_INTERCOM_VERSION))
    }
}

impl FromStr for IntercomVersion {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Self, ConfigError> {
        Self::new(name)
    }
}

impl fmt::Display for IntercomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IntercomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntercomVersion({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_header_safe_names() {
        assert_eq!(IntercomVersion::default().as_str(), "2.14");
        assert!("Unstable".parse::<IntercomVersion>().is_ok());
        for bad in ["", " 2.11", "2.11\n", "a".repeat(33).as_str(), "2,11"] {
            assert_eq!(
                bad.parse::<IntercomVersion>().unwrap_err().kind(),
                ConfigErrorKind::InvalidIntercomVersion,
                "{bad:?}"
            );
        }
    }
}

//! The keys of one inbox, all under one hash tag.

/// Where `{P}:bodies` is among the keys.
pub(super) const BODIES: usize = 10;

/// The keys of one inbox.
#[derive(Debug)]
pub(super) struct Keys {
    pub(super) prefix: Box<str>,
    /// In the order the scripts expect them (`KEYS[1]` …).
    pub(super) all: [String; 11],
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{{{prefix}}}:{name}");
        Self {
            prefix: prefix.into(),
            all: [
                key("stream"),
                key("messages"),
                key("attempts"),
                key("errors"),
                key("leased"),
                key("leases"),
                key("delayed"),
                key("dead"),
                key("done"),
                key("seq"),
                key("bodies"),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("app:intercom");
        assert_eq!(keys.all[0], "{app:intercom}:stream");
        assert!(keys
            .all
            .iter()
            .all(|key| key.starts_with("{app:intercom}:")));
    }

    #[test]
    fn different_prefixes_never_share_a_key() {
        let prefixes = ["", "}", "a}b", "a}:stream", "{", "a{b}c", "app:intercom"];
        let mut seen = std::collections::HashSet::new();
        for prefix in prefixes {
            for key in Keys::new(prefix).all {
                assert!(seen.insert(key.clone()), "{key:?} twice");
            }
        }
    }
}

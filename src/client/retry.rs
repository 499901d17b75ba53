//! What the client does with an answer: return it, send the request
//! again, or turn it into an [`Error`](super::Error).

use std::time::Duration;

use http::{header::LOCATION, HeaderMap, Method, StatusCode};

use super::{layer::Config, rate_limit::RateLimitHeaders};

/// The first wait before an opted-in retry of an idempotent request; each
/// next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The retries one request has had, and may have.
#[derive(Debug)]
pub(crate) struct Retries {
    rate_limited: u32,
    errors: u32,
    idempotent: bool,
}

/// What to do with an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to the caller.
    Return,
    /// A 429 to send again once the rate limiter admits it (after the
    /// window's reset).
    RetryRateLimited,
    /// An idempotent request to send again after this wait.
    RetryAfter(Duration),
    /// A redirect off the API base's origin.
    OffHost,
    /// A refusal (401, 403, a 429 given up on) whose body says why.
    Refused {
        /// For a 429: the retries it had, and the wait it asked for when
        /// that is longer than the client may wait.
        rate_limited: Option<(u32, Option<Duration>)>,
    },
}

impl Retries {
    pub(crate) fn new(method: &Method) -> Self {
        Self {
            rate_limited: 0,
            errors: 0,
            idempotent: matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            ),
        }
    }

    /// The verdict on an answer with `status` and `headers`.
    pub(crate) fn answer(
        &mut self,
        config: &Config,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Verdict {
        match status.as_u16() {
            429 => {
                let reset_in = RateLimitHeaders::parse(headers).reset_in();
                if reset_in.is_some_and(|wait| wait > config.max_wait) {
                    return Verdict::Refused {
                        rate_limited: Some((self.rate_limited, reset_in)),
                    };
                }
                if self.rate_limited < config.rate_limit_retries {
                    self.rate_limited += 1;
                    Verdict::RetryRateLimited
                } else {
                    Verdict::Refused {
                        rate_limited: Some((self.rate_limited, None)),
                    }
                }
            }
            401 | 403 => Verdict::Refused { rate_limited: None },
            300..=399 => match headers.get(LOCATION) {
                Some(location) if !config.base.location_stays(location) => Verdict::OffHost,
                _ => Verdict::Return,
            },
            500..=599 => self
                .error(config)
                .map_or(Verdict::Return, Verdict::RetryAfter),
            _ => Verdict::Return,
        }
    }

    /// The wait before sending the request again after the HTTP client
    /// failed or Intercom answered 5xx; `None` when it is not sent again.
    pub(crate) fn error(&mut self, config: &Config) -> Option<Duration> {
        if !self.idempotent || self.errors >= config.error_retries {
            return None;
        }
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << self.errors.min(16))
            .min(MAX_BACKOFF);
        self.errors += 1;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{layer::DEFAULT_MAX_RATE_LIMIT_WAIT, ApiBase, IntercomVersion};

    fn config(rate_limit_retries: u32, error_retries: u32) -> Config {
        Config {
            base: ApiBase::default(),
            version: IntercomVersion::default(),
            max_wait: DEFAULT_MAX_RATE_LIMIT_WAIT,
            rate_limit_retries,
            error_retries,
            candidate: false,
        }
    }

    #[test]
    fn a_429_is_retried_a_bounded_number_of_times_whatever_the_method() {
        let config = config(2, 0);
        let mut retries = Retries::new(&Method::POST);
        let headers = HeaderMap::new();
        let status = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            retries.answer(&config, status, &headers),
            Verdict::RetryRateLimited
        );
        assert_eq!(
            retries.answer(&config, status, &headers),
            Verdict::RetryRateLimited
        );
        assert_eq!(
            retries.answer(&config, status, &headers),
            Verdict::Refused {
                rate_limited: Some((2, None))
            }
        );
    }

    #[test]
    fn a_429_resetting_later_than_the_longest_wait_is_not_retried() {
        let mut headers = HeaderMap::new();
        let far = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 120;
        headers.insert("x-ratelimit-reset", far.into());
        let verdict = Retries::new(&Method::GET).answer(
            &config(3, 0),
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
        );
        assert!(matches!(
            verdict,
            Verdict::Refused {
                rate_limited: Some((0, Some(wait)))
            } if wait > Duration::from_secs(100)
        ));
    }

    #[test]
    fn errors_are_retried_only_when_opted_in_and_idempotent() {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        let headers = HeaderMap::new();
        assert_eq!(
            Retries::new(&Method::GET).answer(&config(3, 0), status, &headers),
            Verdict::Return
        );
        assert_eq!(
            Retries::new(&Method::POST).answer(&config(3, 5), status, &headers),
            Verdict::Return
        );
        assert_eq!(Retries::new(&Method::PATCH).error(&config(3, 5)), None);
        let config = config(0, 3);
        let mut retries = Retries::new(&Method::PUT);
        let waits: Vec<_> = std::iter::from_fn(|| retries.error(&config)).collect();
        assert_eq!(waits, [100, 200, 400].map(Duration::from_millis).to_vec());
        let mut many = Retries::new(&Method::DELETE);
        let config = Config {
            error_retries: u32::MAX,
            ..config
        };
        assert_eq!(
            std::iter::from_fn(|| many.error(&config)).take(40).last(),
            Some(MAX_BACKOFF)
        );
    }

    #[test]
    fn redirects_off_the_origin_are_refused_and_others_returned() {
        let config = config(3, 0);
        let mut retries = Retries::new(&Method::GET);
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, "https://evil.example/me".parse().unwrap());
        assert_eq!(
            retries.answer(&config, StatusCode::FOUND, &headers),
            Verdict::OffHost
        );
        headers.insert(LOCATION, "/contacts/2".parse().unwrap());
        assert_eq!(
            retries.answer(&config, StatusCode::MOVED_PERMANENTLY, &headers),
            Verdict::Return
        );
        assert_eq!(
            retries.answer(&config, StatusCode::NOT_MODIFIED, &HeaderMap::new()),
            Verdict::Return
        );
    }
}

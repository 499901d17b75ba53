//! The boxed error the crate converts other errors into.

/// A boxed error, `Send + Sync`: what bodies' and services' errors, and the
/// sources of stores' and handlers' errors, are converted into.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

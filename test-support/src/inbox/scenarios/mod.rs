//! The scenarios every store runs, each generic over the store's
//! [`InboxHarness`](super::InboxHarness): each starts its own backend, so
//! they run in parallel. [`inbox_suite!`](crate::inbox_suite) makes one
//! test of each.

mod faults;
mod process;
mod property;
mod receive;
mod store;

pub use self::{faults::*, process::*, property::*, receive::*, store::*};

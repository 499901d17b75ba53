//! The durable inbox with the SQLite store: real files, real processes.
#![cfg(feature = "inbox-sqlite")]

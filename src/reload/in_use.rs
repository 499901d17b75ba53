//! The value in use, shared by every clone of a
//! [`SecretFile`](super::SecretFile) and its watcher: the file's clones
//! read it, the watcher swaps a new one in.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::{ArcSwap, Guard};

/// What every clone of a [`SecretFile`](super::SecretFile) and its watcher
/// share.
pub(super) struct Shared<T> {
    pub(super) path: PathBuf,
    pub(super) interval: Duration,
    state: ArcSwap<Loaded<T>>,
}

/// The value in use, with where it came from; swapped as a whole.
pub(super) struct Loaded<T> {
    pub(super) value: Arc<T>,
    pub(super) modified: Option<SystemTime>,
    pub(super) loaded_at: SystemTime,
}

impl<T> Shared<T> {
    /// `value`, read from `path` (a file modified at `modified`), in use.
    pub(super) fn new(
        path: PathBuf,
        interval: Duration,
        value: T,
        modified: Option<SystemTime>,
    ) -> Self {
        Self {
            path,
            interval,
            state: ArcSwap::from_pointee(Loaded::now(value, modified)),
        }
    }

    /// The value in use, as of now.
    pub(super) fn load(&self) -> Guard<Arc<Loaded<T>>> {
        self.state.load()
    }

    /// Puts `value`, read from a file modified at `modified`, in use.
    pub(super) fn store(&self, value: T, modified: Option<SystemTime>) {
        self.state.store(Arc::new(Loaded::now(value, modified)));
    }
}

impl<T> Loaded<T> {
    fn now(value: T, modified: Option<SystemTime>) -> Self {
        Self {
            value: Arc::new(value),
            modified,
            loaded_at: SystemTime::now(),
        }
    }
}

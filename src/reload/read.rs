//! One read of a secret file: opened by its path every time, so a
//! Kubernetes `..data` swap or a rename over the file is always seen.

use std::{
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
    time::SystemTime,
};

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{ReloadError, ReloadErrorKind, MAX_FILE_SIZE};

/// The SHA-256 of a file's content: what tells one content from another,
/// whatever the file's inode and modification time say. It never leaves
/// the process.
pub(crate) type Digest = [u8; 32];

/// A file's content as read once.
pub(crate) struct Content {
    /// Wiped from memory when dropped.
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) digest: Digest,
    /// The modification time of the file that was read (through any
    /// symlinks), if the platform tells it.
    pub(crate) modified: Option<SystemTime>,
}

/// Reads `path` on a blocking thread.
pub(crate) async fn read(path: &Path) -> Result<Content, ReloadError> {
    let owned: PathBuf = path.to_owned();
    match tokio::task::spawn_blocking(move || read_now(&owned)).await {
        Ok(read) => read,
        // The blocking task panicked or the runtime is shutting down.
        Err(err) => Err(ReloadError::unreadable(path, io::Error::other(err))),
    }
}

/// Opens `path` (following symlinks), and reads at most
/// [`MAX_FILE_SIZE`] bytes of it into a buffer allocated once, so that no
/// copy of the secret is left behind in memory by a growing buffer.
pub(crate) fn read_now(path: &Path) -> Result<Content, ReloadError> {
    let unreadable = |err| ReloadError::unreadable(path, err);
    let mut file = File::open(path).map_err(unreadable)?;
    // The metadata of the file opened, not of what the path names by now.
    let modified = file.metadata().map_err(unreadable)?.modified().ok();
    let mut bytes = Zeroizing::new(vec![0; MAX_FILE_SIZE + 1]);
    let mut len = 0;
    while len < bytes.len() {
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(unreadable(err)),
        }
    }
    if len > MAX_FILE_SIZE {
        return Err(ReloadError::new(ReloadErrorKind::TooLarge, path));
    }
    // Shortening keeps the allocation: all of it is wiped on drop.
    bytes.truncate(len);
    let digest = Sha256::digest(&bytes[..]).into();
    Ok(Content {
        bytes,
        digest,
        modified,
    })
}

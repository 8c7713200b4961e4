//! Artifact storage: where finished binaries and their checksums and signatures
//! live, shared by every api and worker process. Two backends implement one
//! trait: a local directory (one machine, or a shared filesystem) and S3.
//! Writes are atomic: a reader sees a whole object or none.

mod layout;
mod local;
mod read_ahead;
mod s3;
mod s3_part;

use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use layout::{signature_of, Artifact, ArtifactPaths, Document, StoredDocument};
pub use local::LocalStorage;
pub use s3::S3Storage;

use crate::config::{StorageBackend, StorageConfig};

/// A body streamed out of storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A path that is not one this service writes (`..`, absolute, bad key).
    #[error("invalid storage path {0:?}")]
    BadPath(String),
    #[error("{0} not found in storage")]
    NotFound(String),
    /// The requested byte range lies outside the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    BadRange { size: u64 },
    #[error("storage I/O error on {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
    /// A remote backend failed; worth retrying.
    #[error("storage backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Publishes the local file `file` at `path`; visible only once complete.
    async fn put_file(&self, path: &str, file: &Path) -> Result<(), StorageError>;
    /// Publishes a small object (checksum, signature) at `path`.
    async fn put_bytes(&self, path: &str, data: Bytes) -> Result<(), StorageError>;
    /// The object's size, or `None` when it does not exist.
    async fn size(&self, path: &str) -> Result<Option<u64>, StorageError>;
    /// Streams the object, or the given byte range of it.
    async fn get(&self, path: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError>;
    /// Reads a small object whole.
    async fn get_bytes(&self, path: &str) -> Result<Bytes, StorageError> {
        use futures::TryStreamExt;
        let chunks: Vec<Bytes> = self
            .get(path, None)
            .await?
            .try_collect()
            .await
            .map_err(|source| StorageError::Io { path: path.into(), source })?;
        Ok(chunks.concat().into())
    }
    /// Deletes every object under `prefix`; returns how many were removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError>;
    /// A URL a client may fetch the object from directly, where the backend can sign one.
    async fn presigned_url(&self, _path: &str, _ttl: Duration) -> Result<Option<String>, StorageError> {
        Ok(None)
    }
}

pub type DynStorage = Arc<dyn Storage>;

/// Builds the configured backend. For S3 it checks that the bucket is reachable,
/// so that bad credentials stop start-up instead of the first publish.
pub async fn from_config(cfg: &StorageConfig) -> Result<DynStorage, StorageError> {
    match cfg.backend {
        StorageBackend::Local => Ok(Arc::new(LocalStorage::new(&cfg.path)?)),
        StorageBackend::S3 => {
            let s3 = S3Storage::new(&cfg.s3)?;
            s3.check().await?;
            Ok(Arc::new(s3))
        }
    }
}

/// Rejects paths that could leave the storage root or are not ours.
pub(crate) fn check_path(path: &str) -> Result<(), StorageError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
    if ok { Ok(()) } else { Err(StorageError::BadPath(path.to_string())) }
}

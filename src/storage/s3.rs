//! The S3 backend (AWS, MinIO and other S3-compatible servers) through rust-s3.
//! Objects become visible only when their upload completes: small ones go up in
//! one PUT, binaries of 16 MiB and more as a multipart upload that S3 publishes
//! atomically on completion (and that is aborted when a part fails). Parts go up
//! from tasks of their own (see `s3_part`), so that hashing them for their
//! signatures runs on all cores while other parts are on the wire.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use s3::command::Command;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::request::tokio_backend::ReqwestRequest;
use s3::request::Request;
use s3::serde_types::{ObjectIdentifier, Part};
use s3::{Bucket, BucketConfiguration, Region};

use super::s3_part::{upload_part, PartError};
use super::{check_path, ByteStream, Storage, StorageError};
use crate::config::S3Config;

/// Content type of everything we store: binaries, checksums and signatures are all
/// served with their own headers by the api, never by content sniffing.
const CONTENT_TYPE: &str = "application/octet-stream";

/// Size of one multipart part, and the size from which uploads are multipart. S3
/// wants at least 5 MiB; larger parts mean fewer requests for the server.
const PART_SIZE: usize = 16 * 1024 * 1024;

/// Parts of one upload in flight at once (memory: this many parts).
const PART_CONCURRENCY: usize = 4;

/// Largest batch of keys one DeleteObjects request may carry (an S3 limit).
const DELETE_BATCH: usize = 1000;

/// Longest lifetime S3 accepts for a presigned URL (seven days).
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct S3Storage {
    bucket: Box<Bucket>,
}

impl S3Storage {
    /// A client for the configured bucket; makes no request yet.
    pub fn new(cfg: &S3Config) -> Result<S3Storage, StorageError> {
        let region = if cfg.endpoint.is_empty() {
            cfg.region.parse::<Region>().map_err(|e| backend("storage.s3.region", e))?
        } else {
            Region::Custom { region: cfg.region.clone(), endpoint: cfg.endpoint.trim_end_matches('/').to_string() }
        };
        let credentials = if cfg.access_key.is_empty() {
            // The usual AWS chain: environment, profile, instance role.
            Credentials::default().map_err(|e| backend("credentials", e))?
        } else {
            Credentials::new(Some(&cfg.access_key), Some(&cfg.secret_key), None, None, None)
                .map_err(|e| backend("credentials", e))?
        };
        let mut bucket = Bucket::new(&cfg.bucket, region, credentials).map_err(|e| backend("bucket", e))?;
        if cfg.path_style {
            bucket.set_path_style();
        }
        Ok(S3Storage { bucket })
    }

    /// Checks that the bucket exists and the credentials may list it. Asks the
    /// bucket itself (a one-key listing), not ListBuckets, which least-privilege
    /// credentials scoped to one bucket are not allowed.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self.bucket_exists().await? {
            true => Ok(()),
            false => Err(StorageError::Backend(format!("bucket {:?} does not exist", self.bucket.name()))),
        }
    }

    async fn bucket_exists(&self) -> Result<bool, StorageError> {
        match self.bucket.list_page(String::new(), None, None, None, Some(1)).await {
            Ok(_) => Ok(true),
            Err(S3Error::HttpFailWithBody(404, body)) if body.contains("NoSuchBucket") => Ok(false),
            Err(e) => Err(backend(&format!("checking bucket {:?}", self.bucket.name()), e)),
        }
    }

    /// Creates the bucket when it does not exist yet (test servers, first start of a
    /// self-hosted MinIO).
    pub async fn create_bucket_if_missing(&self) -> Result<(), StorageError> {
        if self.bucket_exists().await? {
            return Ok(());
        }
        let created = if self.bucket.is_path_style() {
            Bucket::create_with_path_style(
                &self.bucket.name(),
                self.bucket.region(),
                self.bucket.credentials().await.map_err(|e| backend("credentials", e))?,
                BucketConfiguration::private(),
            )
            .await
        } else {
            Bucket::create(
                &self.bucket.name(),
                self.bucket.region(),
                self.bucket.credentials().await.map_err(|e| backend("credentials", e))?,
                BucketConfiguration::private(),
            )
            .await
        };
        match created {
            Ok(r) if r.success() => Ok(()),
            // Lost a race against another process creating it.
            Ok(r) if r.response_code == 409 => Ok(()),
            Ok(r) => Err(StorageError::Backend(format!("creating bucket: HTTP {}: {}", r.response_code, r.response_text))),
            Err(S3Error::HttpFailWithBody(409, _)) => Ok(()),
            Err(e) => Err(backend("creating the bucket", e)),
        }
    }

    /// Reads `file` part by part and uploads up to [`PART_CONCURRENCY`] parts at once.
    async fn upload_parts(&self, path: &str, upload_id: &str, file: &Path) -> Result<Vec<Part>, StorageError> {
        let io = |source| StorageError::Io { path: file.display().to_string(), source };
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let mut tasks: JoinSet<Result<Part, PartError>> = JoinSet::new();
        let mut parts = Vec::new();
        let joined = |r: Result<Result<Part, PartError>, tokio::task::JoinError>| match r {
            Ok(Ok(part)) => Ok(part),
            Ok(Err(e)) => Err(backend(path, e)),
            Err(e) => Err(StorageError::Backend(format!("{path}: part upload task: {e}"))),
        };
        for number in 1.. {
            while tasks.len() >= PART_CONCURRENCY {
                parts.push(joined(tasks.join_next().await.expect("tasks are running"))?);
            }
            let mut chunk = Vec::with_capacity(PART_SIZE);
            (&mut f).take(PART_SIZE as u64).read_to_end(&mut chunk).await.map_err(io)?;
            if chunk.is_empty() {
                break;
            }
            let last = chunk.len() < PART_SIZE;
            let (bucket, path, upload_id) = (self.bucket.clone(), path.to_string(), upload_id.to_string());
            tasks.spawn(async move { upload_part(&bucket, &path, &upload_id, number, chunk.into()).await });
            if last {
                break;
            }
        }
        while let Some(r) = tasks.join_next().await {
            parts.push(joined(r)?);
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// Streams a GET of the object (or of an inclusive byte range of it).
    async fn stream(&self, path: &str, command: Command<'_>) -> Result<ByteStream, StorageError> {
        let request = ReqwestRequest::new(&self.bucket, path, command).await.map_err(|e| backend(path, e))?;
        let response = request.response_data_to_stream().await.map_err(|e| not_found_or(path, e))?;
        let path = path.to_string();
        Ok(response
            .bytes
            .map_err(move |e| std::io::Error::other(format!("reading {path} from S3: {e}")))
            .boxed())
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("{what}: {e}"))
}

fn not_found_or(path: &str, e: S3Error) -> StorageError {
    match e {
        S3Error::HttpFailWithBody(404, _) => StorageError::NotFound(path.to_string()),
        e => backend(path, e),
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put_file(&self, path: &str, file: &Path) -> Result<(), StorageError> {
        check_path(path)?;
        let io = |source| StorageError::Io { path: file.display().to_string(), source };
        let size = tokio::fs::metadata(file).await.map_err(io)?.len();
        if size < PART_SIZE as u64 {
            return self.put_bytes(path, tokio::fs::read(file).await.map_err(io)?.into()).await;
        }
        let upload = self
            .bucket
            .initiate_multipart_upload(path, CONTENT_TYPE)
            .await
            .map_err(|e| backend(path, e))?;
        let completed = match self.upload_parts(path, &upload.upload_id, file).await {
            Ok(parts) => self
                .bucket
                .complete_multipart_upload(path, &upload.upload_id, parts)
                .await
                .map(|_| ())
                .map_err(|e| backend(path, e)),
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Best effort: the parts of an abandoned upload would otherwise be kept (and billed).
            if let Err(e) = self.bucket.abort_upload(path, &upload.upload_id).await {
                tracing::warn!(path, error = %e, "cannot abort a failed multipart upload");
            }
        }
        completed
    }

    async fn put_bytes(&self, path: &str, data: Bytes) -> Result<(), StorageError> {
        check_path(path)?;
        self.bucket.put_object_with_content_type(path, &data, CONTENT_TYPE).await.map_err(|e| backend(path, e))?;
        Ok(())
    }

    async fn size(&self, path: &str) -> Result<Option<u64>, StorageError> {
        check_path(path)?;
        match self.bucket.head_object(path).await {
            Ok((head, _)) => Ok(Some(head.content_length.unwrap_or(0).max(0) as u64)),
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(backend(path, e)),
        }
    }

    async fn get(&self, path: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        check_path(path)?;
        let Some(range) = range else {
            return self.stream(path, Command::GetObject).await;
        };
        // S3 clamps a range that runs past the end; the trait promises an error, so
        // the size is checked first (one HEAD, only for range requests).
        let size = self.size(path).await?.ok_or_else(|| StorageError::NotFound(path.to_string()))?;
        if range.start > range.end || range.end > size {
            return Err(StorageError::BadRange { size });
        }
        if range.start == range.end {
            return Ok(futures::stream::empty().boxed());
        }
        self.stream(path, Command::GetObjectRange { start: range.start, end: Some(range.end - 1) }).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        check_path(prefix)?;
        // Like the local backend, `prefix` names an object or a directory, never a
        // partial name: `builds/ab/k` must not take `builds/ab/kk` with it.
        let mut keys: Vec<String> = Vec::new();
        if self.size(prefix).await?.is_some() {
            keys.push(prefix.to_string());
        }
        let pages = self.bucket.list(format!("{prefix}/"), None).await.map_err(|e| backend(prefix, e))?;
        keys.extend(pages.into_iter().flat_map(|p| p.contents).map(|o| o.key));
        let mut deleted = 0;
        for batch in keys.chunks(DELETE_BATCH) {
            let ids: Vec<ObjectIdentifier> = batch.iter().map(ObjectIdentifier::new).collect();
            let result = self.bucket.delete_objects(ids).await.map_err(|e| backend(prefix, e))?;
            if let Some(err) = result.errors.first() {
                return Err(StorageError::Backend(format!("deleting {prefix}: {err:?}")));
            }
            deleted += batch.len() as u64;
        }
        Ok(deleted)
    }

    async fn presigned_url(&self, path: &str, ttl: Duration) -> Result<Option<String>, StorageError> {
        check_path(path)?;
        let secs = ttl.clamp(Duration::from_secs(1), MAX_PRESIGN_TTL).as_secs() as u32;
        let url = self.bucket.presign_get(path, secs, None).await.map_err(|e| backend(path, e))?;
        Ok(Some(url))
    }
}

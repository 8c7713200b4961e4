//! `storage:`: where artifacts live, a directory or an S3 bucket.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, http_url, invalid};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Root directory of the local backend.
    pub path: String,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { backend: StorageBackend::Local, path: ".data/artifacts".into(), s3: S3Config::default() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Custom endpoint (MinIO and friends); empty: AWS for `region`.
    pub endpoint: String,
    /// Path-style URLs (`endpoint/bucket/key`), which MinIO needs.
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    /// Compat and download endpoints answer 302 to a presigned URL instead of streaming.
    pub redirect: bool,
    /// How long a presigned URL stays valid.
    #[serde(with = "humantime_serde")]
    pub presign_ttl: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            path_style: true,
            access_key: String::new(),
            secret_key: String::new(),
            redirect: false,
            presign_ttl: Duration::from_secs(15 * 60),
        }
    }
}

impl StorageConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.backend == StorageBackend::Local && self.path.trim().is_empty() {
            return Err(invalid("storage.path", "must not be empty for the local backend"));
        }
        let s3 = &self.s3;
        if self.backend != StorageBackend::S3 {
            if s3.redirect {
                return Err(invalid("storage.s3.redirect", "needs storage.backend: s3"));
            }
            return Ok(());
        }
        // S3's bucket naming rules, which also keep the name safe in a URL.
        let b = &s3.bucket;
        let name_ok = (3..=63).contains(&b.len())
            && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
        if b.is_empty() {
            return Err(invalid("storage.s3.bucket", "must be set for the s3 backend"));
        }
        if !name_ok {
            return Err(invalid("storage.s3.bucket", format!("{b:?} is not a valid bucket name (3-63 of a-z 0-9 . -)")));
        }
        if s3.region.trim().is_empty() {
            return Err(invalid("storage.s3.region", "must not be empty"));
        }
        if s3.endpoint.is_empty() {
            if s3.region.parse::<s3::Region>().map(|r| matches!(r, s3::Region::Custom { .. })).unwrap_or(true) {
                return Err(invalid("storage.s3.region", format!("{:?} is not an AWS region; set storage.s3.endpoint", s3.region)));
            }
        } else {
            http_url("storage.s3.endpoint", &s3.endpoint)?;
        }
        if s3.access_key.is_empty() != s3.secret_key.is_empty() {
            let missing = if s3.access_key.is_empty() { "storage.s3.access_key" } else { "storage.s3.secret_key" };
            return Err(invalid(missing, "access_key and secret_key are set together or both left empty"));
        }
        if s3.presign_ttl < Duration::from_secs(1) || s3.presign_ttl > Duration::from_secs(7 * 24 * 3600) {
            return Err(invalid("storage.s3.presign_ttl", "must be between 1s and 7 days"));
        }
        Ok(())
    }
}

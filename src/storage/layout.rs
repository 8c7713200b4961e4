//! Where a build's files live in storage (`builds/<key[0..2]>/<key>/caddy`, with
//! `caddy.sha256` and `caddy.minisig` beside it) and the artifact record that
//! `cbs.complete_build` stores, so api and worker never compute paths twice.

use serde::{Deserialize, Serialize};

use super::StorageError;
use crate::spec::{binary_name, is_build_key};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPaths {
    /// The build's directory, for deleting all of it.
    pub dir: String,
    pub binary: String,
    pub sha256: String,
    pub signature: String,
}

impl ArtifactPaths {
    /// Paths for a build key (64 lowercase hex digits, checked) and target os.
    pub fn new(build_key: &str, os: &str) -> Result<ArtifactPaths, StorageError> {
        if !is_build_key(build_key) {
            return Err(StorageError::BadPath(build_key.to_string()));
        }
        let dir = format!("builds/{}/{}", &build_key[..2], build_key);
        let binary = format!("{dir}/{}", binary_name(os));
        Ok(ArtifactPaths { sha256: format!("{dir}/caddy.sha256"), signature: format!("{dir}/caddy.minisig"), binary, dir })
    }
}

/// The `artifact` column of a succeeded build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Storage path of the binary.
    pub path: String,
    /// `caddy` or `caddy.exe`: the download's file name.
    pub file_name: String,
    pub size: u64,
    /// Lowercase hex sha256 of the binary (also the download's ETag).
    pub sha256: String,
    /// Storage path of the minisign signature, when the worker signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_contract() {
        let key = "ab".repeat(32);
        let p = ArtifactPaths::new(&key, "windows").unwrap();
        assert_eq!(p.binary, format!("builds/ab/{key}/caddy.exe"));
        assert_eq!(p.sha256, format!("builds/ab/{key}/caddy.sha256"));
        assert!(ArtifactPaths::new("../etc/passwd", "linux").is_err());
        assert!(ArtifactPaths::new(&"AB".repeat(32), "linux").is_err());
    }
}

//! Where a build's files live in storage (`builds/<key[0..2]>/<key>/caddy`, with
//! `caddy.sha256` and `caddy.minisig` beside it, and the SBOMs and provenance
//! with their signatures: `sbom.cdx.json`, `sbom.spdx.json`, `provenance.json`,
//! each with a `.minisig`) and the artifact record that `cbs.complete_build`
//! stores, so api and worker never compute paths twice. Everything of a build
//! lives in its directory, so deleting the directory (retention, an unverified
//! binary) deletes all of it.

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
    /// CycloneDX 1.6 SBOM.
    pub sbom_cdx: String,
    /// SPDX 2.3 SBOM.
    pub sbom_spdx: String,
    /// SLSA v1 provenance (an in-toto statement).
    pub provenance: String,
}

impl ArtifactPaths {
    /// Paths for a build key (64 lowercase hex digits, checked) and target os.
    pub fn new(build_key: &str, os: &str) -> Result<ArtifactPaths, StorageError> {
        if !is_build_key(build_key) {
            return Err(StorageError::BadPath(build_key.to_string()));
        }
        let dir = format!("builds/{}/{}", &build_key[..2], build_key);
        let binary = format!("{dir}/{}", binary_name(os));
        Ok(ArtifactPaths {
            sha256: format!("{dir}/caddy.sha256"),
            signature: format!("{dir}/caddy.minisig"),
            sbom_cdx: format!("{dir}/{}", Document::SbomCycloneDx.file_name()),
            sbom_spdx: format!("{dir}/{}", Document::SbomSpdx.file_name()),
            provenance: format!("{dir}/{}", Document::Provenance.file_name()),
            binary,
            dir,
        })
    }

    /// Where a document is stored.
    pub fn document(&self, doc: Document) -> &str {
        match doc {
            Document::SbomCycloneDx => &self.sbom_cdx,
            Document::SbomSpdx => &self.sbom_spdx,
            Document::Provenance => &self.provenance,
        }
    }
}

/// The documents published beside a binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    SbomCycloneDx,
    SbomSpdx,
    Provenance,
}

impl Document {
    pub const ALL: [Document; 3] = [Document::SbomCycloneDx, Document::SbomSpdx, Document::Provenance];

    /// The file name in storage, the last segment of its URL and the name its signature signs.
    pub fn file_name(self) -> &'static str {
        match self {
            Document::SbomCycloneDx => "sbom.cdx.json",
            Document::SbomSpdx => "sbom.spdx.json",
            Document::Provenance => "provenance.json",
        }
    }

    /// Its key in the artifact record's `documents`.
    pub fn key(self) -> &'static str {
        match self {
            Document::SbomCycloneDx => "sbom_cdx",
            Document::SbomSpdx => "sbom_spdx",
            Document::Provenance => "provenance",
        }
    }
}

/// Where a stored object's minisign signature is.
pub fn signature_of(path: &str) -> String {
    format!("{path}.minisig")
}

/// One stored document, as the artifact record's `documents` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDocument {
    pub path: String,
    pub signature: String,
    pub sha256: String,
    pub size: u64,
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
        assert_eq!(p.document(Document::SbomSpdx), format!("builds/ab/{key}/sbom.spdx.json"));
        assert_eq!(signature_of(&p.provenance), format!("builds/ab/{key}/provenance.json.minisig"));
        assert!(Document::ALL.iter().all(|d| p.document(*d).starts_with(&p.dir)), "all in the build's directory");
        assert!(ArtifactPaths::new("../etc/passwd", "linux").is_err());
        assert!(ArtifactPaths::new(&"AB".repeat(32), "linux").is_err());
    }
}

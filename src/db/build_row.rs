//! The JSON columns of a `cbs.builds` row, as types. A row is decoded once, in
//! [`super::Build`]'s `TryFrom<&Row>`, so that the rest of the program reads
//! fields instead of looking values up by name; a value that does not decode is
//! a [`DbError::Decode`] naming its column. The same types are what the worker
//! writes (`cbs.complete_build` splits the record it is sent into the `artifact`
//! and `provenance` columns), so reader and writer cannot drift apart.
//!
//! The spec column is [`crate::spec::BuildSpec`]: it holds the canonical spec
//! `cbs.canonical_spec` made, which that type round-trips.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;

use super::DbError;
use crate::storage::{Artifact, Document, StoredDocument};

/// The `artifact` column of a succeeded build: the binary's record and the
/// documents published beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildArtifact {
    /// The binary: storage path, file name, size, sha256, signature path.
    #[serde(flatten)]
    pub binary: Artifact,
    /// The SBOMs and provenance; empty for builds made before they were published.
    #[serde(default, skip_serializing_if = "RecordedDocuments::is_empty")]
    pub documents: RecordedDocuments,
}

impl BuildArtifact {
    /// Where a document is stored; `None` for a build made before documents were published.
    pub fn document(&self, doc: Document) -> Option<&StoredDocument> {
        self.documents.get(doc)
    }

    /// Whether the SBOMs and provenance were published with the binary.
    pub fn attested(&self) -> bool {
        self.document(Document::Provenance).is_some()
    }
}

/// The artifact record's `documents`, keyed by [`Document::key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDocuments {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_cdx: Option<StoredDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_spdx: Option<StoredDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<StoredDocument>,
}

impl RecordedDocuments {
    pub fn get(&self, doc: Document) -> Option<&StoredDocument> {
        match doc {
            Document::SbomCycloneDx => self.sbom_cdx.as_ref(),
            Document::SbomSpdx => self.sbom_spdx.as_ref(),
            Document::Provenance => self.provenance.as_ref(),
        }
    }

    pub fn set(&mut self, doc: Document, stored: StoredDocument) {
        let slot = match doc {
            Document::SbomCycloneDx => &mut self.sbom_cdx,
            Document::SbomSpdx => &mut self.sbom_spdx,
            Document::Provenance => &mut self.provenance,
        };
        *slot = Some(stored);
    }

    pub fn is_empty(&self) -> bool {
        Document::ALL.iter().all(|d| self.get(*d).is_none())
    }
}

/// The `provenance` column: what a build was made from and with, recorded by the
/// worker so that a rebuild of the key is reproducible. Every field is optional:
/// builds recorded by older workers lack the newer ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The resolve step's `go.mod` and `go.sum`, as the build step read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_mod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_sum: Option<String>,
    /// The builder image's reference and id (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The Go toolchain module the image was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain: Option<Toolchain>,
    /// The worker that built it (a reproduction must be made by another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The Go the binary's build information names (`go1.26.8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
    /// The Caddy modules each plugin added, as the verify step listed them
    /// (absent when the binary could not run on the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<BTreeMap<String, Vec<String>>>,
}

/// A Go toolchain as the module proxy serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    /// `golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64`.
    #[serde(default)]
    pub module: String,
    /// Its go.sum hash (`h1:…`).
    #[serde(default)]
    pub h1: String,
}

/// What a worker hands `cbs.complete_build`: the artifact record with the
/// provenance beside it (SQL stores the two in their own columns).
#[derive(Debug, Clone, Serialize)]
pub(super) struct Completion<'a> {
    #[serde(flatten)]
    pub artifact: &'a BuildArtifact,
    pub provenance: &'a Provenance,
}

/// A JSON column decoded into `T`; a value that does not fit names the column.
pub(super) fn decode<T: DeserializeOwned>(row: &Row, column: &str) -> Result<T, DbError> {
    let value: Value = row.try_get(column)?;
    serde_json::from_value(value).map_err(|e| DbError::Decode(format!("column {column}: {e}")))
}

/// A nullable JSON column decoded into `T`.
pub(super) fn decode_opt<T: DeserializeOwned>(row: &Row, column: &str) -> Result<Option<T>, DbError> {
    let value: Option<Value> = row.try_get(column)?;
    value.map(|v| serde_json::from_value(v).map_err(|e| DbError::Decode(format!("column {column}: {e}")))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_artifact_record_round_trips_with_and_without_documents() {
        let old = json!({"path": "builds/ab/k/caddy", "file_name": "caddy", "size": 3, "sha256": "00"});
        let a: BuildArtifact = serde_json::from_value(old.clone()).unwrap();
        assert!(!a.attested());
        assert_eq!(serde_json::to_value(&a).unwrap(), old, "nothing added to an old record");
        let doc = json!({"path": "p", "signature": "p.minisig", "sha256": "11", "size": 9});
        let new = json!({"path": "builds/ab/k/caddy", "file_name": "caddy", "size": 3, "sha256": "00", "signature": "s",
                         "documents": {"provenance": doc, "sbom_cdx": doc, "sbom_spdx": doc}});
        let a: BuildArtifact = serde_json::from_value(new.clone()).unwrap();
        assert!(a.attested());
        assert_eq!(a.document(Document::SbomSpdx).unwrap().size, 9);
        assert_eq!(serde_json::to_value(&a).unwrap(), new);
    }

    #[test]
    fn a_record_missing_a_field_is_refused() {
        let err = serde_json::from_value::<BuildArtifact>(json!({"path": "x", "sha256": "00"})).unwrap_err();
        assert!(err.to_string().contains("file_name") || err.to_string().contains("size"), "{err}");
    }

    #[test]
    fn provenance_reads_old_and_new_records() {
        assert_eq!(serde_json::from_value::<Provenance>(json!({})).unwrap(), Provenance::default());
        let p: Provenance = serde_json::from_value(json!({
            "go_mod": "module caddy\n", "go_sum": "", "image": "caddy-builder:go1.26.8", "image_id": "sha256:ab",
            "toolchain": {"module": "golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64", "h1": "h1:x"},
            "worker_id": "w1", "go_version": "go1.26.8", "modules": {"github.com/a/b": ["http.handlers.b"]},
        }))
        .unwrap();
        assert_eq!((p.go_sum.as_deref(), p.go_version.as_deref()), (Some(""), Some("go1.26.8")));
        assert_eq!(p.modules.unwrap()["github.com/a/b"], ["http.handlers.b"]);
    }
}

//! The one JSON shape of a build every client sees: the REST status
//! (`GET /api/builds/{key}`, `POST /api/builds`), the admin API's answers
//! (cancel, requeue), the webhook payload (which adds its `event` and
//! `delivery_id` beside it) and the build page. Made from a decoded row
//! ([`Build`]) and the few settings that shape it ([`ViewConfig`]), so that
//! api and janitor cannot drift apart. `openapi.rs`'s `Build` schema documents it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::db::{Build, BuildStatus, DbError, Queue, Reproduction};
use crate::spec::BuildSpec;
use crate::storage::{signature_of, Document};

/// What a view takes from the configuration.
#[derive(Debug, Clone)]
pub struct ViewConfig {
    /// `api.public_url` without a trailing slash; empty gives links relative to the api.
    pub public_url: String,
    /// `worker.go_version`: the Go of the xcaddy command of a build that names none.
    pub default_go: String,
}

impl From<&Config> for ViewConfig {
    fn from(c: &Config) -> Self {
        ViewConfig { public_url: c.api.public_url.trim_end_matches('/').to_string(), default_go: c.worker.go_version.clone() }
    }
}

/// What clients see of a build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildView {
    pub build_key: String,
    pub status: BuildStatus,
    pub spec: BuildSpec,
    pub attempt: i32,
    pub max_attempts: i32,
    pub error: Option<String>,
    /// Set once the build succeeded.
    pub artifact: Option<ArtifactView>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The `xcaddy build` command that makes the same binary, byte for byte.
    pub xcaddy_command: String,
    pub links: Links,
    /// The latest reproduction by another worker, if any ([`BuildView::load`]).
    pub reproduction: Option<ReproductionView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub download: String,
    pub sha256: String,
    pub signature: String,
    pub log: String,
    /// The SBOMs (CycloneDX 1.6, SPDX 2.3) and SLSA provenance, each with its
    /// minisign signature (builds made before these were published answer 404).
    pub sbom_cyclonedx: String,
    pub sbom_cyclonedx_signature: String,
    pub sbom_spdx: String,
    pub sbom_spdx_signature: String,
    pub provenance: String,
    pub provenance_signature: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactView {
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
    pub signed: bool,
    /// Whether the SBOMs and provenance were published with it.
    pub attested: bool,
}

/// What clients see of a build's latest reproduction by another worker.
#[derive(Debug, Clone, Serialize)]
pub struct ReproductionView {
    /// `queued`, `running`, `reproduced`, `mismatch` or `failed`.
    pub status: String,
    pub requested_by: String,
    pub original_sha256: String,
    pub original_worker_id: String,
    pub reproduced_sha256: Option<String>,
    /// The reproducing worker.
    pub worker_id: Option<String>,
    pub go_version: Option<String>,
    /// Recorded files that had to change to build (the reason of a mismatch).
    pub inputs_changed: Vec<String>,
    pub error: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Reproduction> for ReproductionView {
    fn from(r: &Reproduction) -> Self {
        let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default();
        ReproductionView {
            status: r.status.clone(),
            requested_by: r.requested_by.clone(),
            original_sha256: r.original_sha256.clone(),
            original_worker_id: r.original_worker_id.clone(),
            reproduced_sha256: r.reproduced_sha256.clone(),
            worker_id: r.worker_id.clone(),
            go_version: r.detail.get("go_version").and_then(|v| v.as_str()).map(String::from),
            inputs_changed: strings(&r.detail["inputs_changed"]),
            error: r.error.clone(),
            requested_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

impl BuildView {
    /// The view of a build without its reproduction (which needs a query: [`Self::load`]).
    pub fn new(b: &Build, config: &ViewConfig) -> BuildView {
        let base = format!("{}/api/builds/{}", config.public_url, b.build_key);
        let document = |doc: Document| format!("{base}/{}", doc.file_name());
        BuildView {
            build_key: b.build_key.clone(),
            status: b.status,
            spec: b.spec.clone(),
            attempt: b.attempt,
            max_attempts: b.max_attempts,
            error: b.error.clone(),
            artifact: b.artifact.as_ref().map(|a| ArtifactView {
                file_name: a.binary.file_name.clone(),
                size: a.binary.size,
                sha256: a.binary.sha256.clone(),
                signed: a.binary.signature.is_some(),
                attested: a.attested(),
            }),
            created_at: b.created_at,
            started_at: b.started_at,
            finished_at: b.finished_at,
            xcaddy_command: xcaddy_command(b, &config.default_go),
            links: Links {
                download: format!("{base}/download"),
                sha256: format!("{base}/sha256"),
                signature: format!("{base}/signature"),
                log: format!("{base}/log"),
                sbom_cyclonedx: document(Document::SbomCycloneDx),
                sbom_cyclonedx_signature: signature_of(&document(Document::SbomCycloneDx)),
                sbom_spdx: document(Document::SbomSpdx),
                sbom_spdx_signature: signature_of(&document(Document::SbomSpdx)),
                provenance: document(Document::Provenance),
                provenance_signature: signature_of(&document(Document::Provenance)),
                this: base,
            },
            reproduction: None,
        }
    }

    /// The full view: with the latest reproduction of a succeeded build (no other has one).
    pub async fn load(queue: &Queue, b: &Build, config: &ViewConfig) -> Result<BuildView, DbError> {
        let mut v = Self::new(b, config);
        if b.status == BuildStatus::Succeeded {
            v.reproduction = queue.latest_reproduction(&b.build_key).await?.as_ref().map(ReproductionView::from);
        }
        Ok(v)
    }
}

/// The xcaddy command reproducing the build, with the Go version it was built
/// with (its provenance), else the one its spec asks for (every spec stored
/// since specs name their Go does), else `default_go` (`worker.go_version`).
pub fn xcaddy_command(b: &Build, default_go: &str) -> String {
    let recorded = b.provenance.as_ref().and_then(|p| p.go_version.as_deref());
    let go = recorded.or(b.spec.go_version.as_deref()).unwrap_or(default_go);
    // Specs and config say `1.26.8`, build information `go1.26.8`; GOTOOLCHAIN wants the latter.
    let go = if go.starts_with("go") { go.to_string() } else { format!("go{go}") };
    crate::xcaddy::command(&b.spec, Some(&go))
}

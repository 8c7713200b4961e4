//! Supply-chain documents for each artifact, made by the worker right after it
//! publishes the binary: two SBOMs (CycloneDX 1.6 and SPDX 2.3, both JSON) and
//! SLSA v1 provenance (an in-toto Statement v1). They are made from what the
//! binary says about itself (its Go build information: modules, versions,
//! `h1:` hashes, build settings) checked against the `go.sum` resolve recorded,
//! so they describe the bytes users download, not what we meant to build.
//! Plain data in, JSON bytes out: no I/O, a few milliseconds per build.

mod cyclonedx;
mod gosum;
mod purl;
mod slsa;
mod spdx;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::spec::BuildSpec;
use crate::worker::buildinfo::{BuildInfo, Module};

pub use gosum::{h1_to_hex, GoSum};
pub use purl::golang as golang_purl;

/// What SLSA provenance names as this service's build type: the recipe (the
/// worker's resolve, build and verify steps) that turns `externalParameters`
/// into the binary, documented at this address.
pub const BUILD_TYPE: &str = "https://github.com/caddy-build-server/caddy-build-server/blob/main/docs/build-type-v1.md";
/// Media types the api serves the documents with.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json; version=1.6";
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
pub const PROVENANCE_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// Namespace of the custom properties and annotations the documents carry.
const PROPERTY_PREFIX: &str = "caddy-build-server";
/// The tool named as the documents' author.
const TOOL_NAME: &str = "caddy-build-server";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Base of document URIs when `api.public_url` is not set (RFC 6761: never resolves).
const FALLBACK_BASE: &str = "https://caddy-build-server.invalid";

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("the binary's build information records {module} with {binary}, go.sum with {go_sum}")]
    SumMismatch { module: String, binary: String, go_sum: String },
    #[error("encoding a document: {0}")]
    Json(#[from] serde_json::Error),
}

/// Everything the documents say, gathered by the worker once the binary is published.
pub struct Input<'a> {
    pub build_key: &'a str,
    pub attempt: i32,
    /// The canonical spec, as `cbs.builds.spec` holds it.
    pub spec: &'a BuildSpec,
    /// `caddy` or `caddy.exe`, with its sha256 (lowercase hex) and size.
    pub file_name: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub info: &'a BuildInfo,
    /// The resolve step's `go.mod` and `go.sum`.
    pub go_mod: &'a str,
    pub go_sum: &'a str,
    /// The build step's command line and the environment it ran with.
    pub build_command: &'a [String],
    pub build_env: &'a [(String, String)],
    /// The builder image's reference and id (`sha256:…`).
    pub image: &'a str,
    pub image_id: &'a str,
    pub worker_id: &'a str,
    /// When this attempt was claimed, and when the binary was ready.
    pub started_on: DateTime<Utc>,
    pub finished_on: DateTime<Utc>,
    /// `api.public_url` (may be empty): the base of download links in the documents.
    pub public_url: &'a str,
}

/// The three documents, pretty-printed JSON.
#[derive(Debug, Clone)]
pub struct Documents {
    pub cyclonedx: Vec<u8>,
    pub spdx: Vec<u8>,
    pub provenance: Vec<u8>,
}

/// A module the binary was built from, with the hash both go.sum and the
/// binary agree on.
#[derive(Debug, Clone)]
struct Component {
    /// The module whose code is in the binary (the replacement, if any).
    built: Module,
    /// The module go.mod required, when a replacement took its place.
    replaces: Option<Module>,
    purl: Option<String>,
}

/// Makes the SBOMs and the provenance.
pub fn make(input: &Input) -> Result<Documents, AttestError> {
    let sums = GoSum::parse(input.go_sum);
    let components = components(input.info, &sums)?;
    Ok(Documents {
        cyclonedx: serde_json::to_vec_pretty(&cyclonedx::document(input, &components)?)?,
        spdx: serde_json::to_vec_pretty(&spdx::document(input, &components)?)?,
        provenance: serde_json::to_vec_pretty(&slsa::statement(input, &sums)?)?,
    })
}

/// The binary's modules, each with its `h1:` hash: the one the binary records,
/// else go.sum's (a replacement's line may carry none); both must agree.
fn components(info: &BuildInfo, sums: &GoSum) -> Result<Vec<Component>, AttestError> {
    info.modules
        .iter()
        .map(|dep| {
            let mut built = dep.built().clone();
            let recorded = sums.h1(&built.path, &built.version);
            match (&built.sum, recorded) {
                (Some(binary), Some(go_sum)) if binary != go_sum => {
                    return Err(AttestError::SumMismatch {
                        module: format!("{}@{}", built.path, built.version),
                        binary: binary.clone(),
                        go_sum: go_sum.to_string(),
                    });
                }
                (None, Some(go_sum)) => built.sum = Some(go_sum.to_string()),
                _ => {}
            }
            // A replacement by a local directory has no version and no purl.
            let purl = (!built.version.is_empty()).then(|| purl::golang(&built.path, &built.version));
            Ok(Component { replaces: dep.replaced_by.as_ref().map(|_| dep.module.clone()), built, purl })
        })
        .collect()
}

/// Caddy's version and the plugins, from the canonical spec.
fn caddy_version(spec: &BuildSpec) -> &str {
    &spec.caddy_version
}

/// One line saying what was built: `Caddy v2.11.9 with a@v1, b@v2 for linux/amd64`.
fn summary(spec: &BuildSpec) -> String {
    let plugins: Vec<String> = spec.plugins.iter().map(|p| format!("{}@{}", p.module, p.version)).collect();
    let with = if plugins.is_empty() { "without plugins".to_string() } else { format!("with {}", plugins.join(", ")) };
    let arm = spec.arm.as_deref().map(|v| format!(" (GOARM={v})")).unwrap_or_default();
    format!("Caddy {} {with} for {}/{}{arm}", caddy_version(spec), spec.os, spec.arch)
}

/// Where the artifact can be downloaded, when the server knows its public address.
fn download_url(input: &Input) -> Option<String> {
    let base = input.public_url.trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/api/builds/{}/download", input.build_key))
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A random (version 4) UUID, for document serial numbers and namespaces.
fn uuid_v4() -> String {
    let mut b = rand::random::<u128>().to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The build settings the SBOMs list: everything the binary's build
/// information records, then the build command (its `-ldflags`, which Go
/// leaves out of the build information under `-trimpath`).
fn build_settings(input: &Input) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> =
        input.info.settings.iter().filter(|(k, _)| k != "DefaultGODEBUG").cloned().collect();
    settings.push(("command".into(), input.build_command.join(" ")));
    settings
}

#[cfg(test)]
mod tests;

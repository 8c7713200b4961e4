//! The build spec as Rust sees it: what the api hands to `cbs.submit_build` and
//! what a worker reads back from a claimed build. Validation and the canonical
//! form belong to SQL (`cbs.canonical_spec`); these types only give it a shape.

use serde::{Deserialize, Serialize};

/// Caddy's own module path; plugins are added to a main package importing it.
pub const CADDY_MODULE: &str = "github.com/caddyserver/caddy/v2";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plugin {
    pub module: String,
    /// Absolute once it reaches SQL; `latest`/empty are resolved by the api first.
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    pub old: String,
    pub new: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    pub caddy_version: String,
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    #[serde(default)]
    pub replacements: Vec<Replacement>,
    pub os: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Go build tags. `None` asks for xcaddy's defaults (`cbs.canonical_tags`
    /// writes them into every canonical spec; only specs stored before tags
    /// existed lack them); `Some([])` builds without tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Go release (`1.26.8`) the binary is built with; always set in a stored
    /// spec (SQL fills `cbs.default_go_version()` in), and by the api from
    /// `worker.go_version` when a request names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_version: Option<String>,
}

impl BuildSpec {
    /// The binary's file name on the target: Windows wants the `.exe`.
    pub fn binary_name(&self) -> &'static str {
        binary_name(&self.os)
    }

    /// The tags `go build` gets: the spec's, or xcaddy's defaults.
    pub fn build_tags(&self) -> Vec<String> {
        match &self.tags {
            Some(tags) => tags.clone(),
            None => crate::xcaddy::DEFAULT_TAGS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

#[cfg(test)]
impl BuildSpec {
    /// Caddy v2.11.9 for linux/amd64 with these `(module, version)` plugins: the
    /// spec unit tests start from.
    pub fn for_test(plugins: &[(&str, &str)]) -> BuildSpec {
        BuildSpec {
            caddy_version: "v2.11.9".into(),
            plugins: plugins.iter().map(|(m, v)| Plugin { module: m.to_string(), version: v.to_string() }).collect(),
            replacements: vec![],
            os: "linux".into(),
            arch: "amd64".into(),
            arm: None,
            tags: None,
            go_version: None,
        }
    }
}

/// A build key as `cbs.build_key` makes them: 64 lowercase hex digits. Checked
/// before a key from outside reaches SQL or becomes a storage path.
pub fn is_build_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn binary_name(os: &str) -> &'static str {
    if os == "windows" { "caddy.exe" } else { "caddy" }
}

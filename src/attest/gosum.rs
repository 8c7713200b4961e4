//! The recorded `go.sum`: for each module version the `h1:` hash of its
//! source tree (the zip Go downloaded) and of its `go.mod`. The zip hashes are
//! what provenance lists as resolved dependencies; the SBOMs check the
//! binary's own hashes against them.

use std::collections::BTreeMap;

use base64::Engine;

/// `go.sum`'s lines, by module path and version.
#[derive(Debug, Default)]
pub struct GoSum {
    /// `(path, version)` → `h1:` of the module's source tree.
    zips: BTreeMap<(String, String), String>,
}

impl GoSum {
    /// Reads `go.sum` text; lines that are not `path version h1:…` are skipped.
    pub fn parse(text: &str) -> GoSum {
        let mut zips = BTreeMap::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(path), Some(version), Some(hash)) = (f.next(), f.next(), f.next()) else { continue };
            if version.ends_with("/go.mod") || !hash.starts_with("h1:") {
                continue;
            }
            zips.insert((path.to_string(), version.to_string()), hash.to_string());
        }
        GoSum { zips }
    }

    /// The `h1:` of a module version's source tree.
    pub fn h1(&self, path: &str, version: &str) -> Option<&str> {
        self.zips.get(&(path.to_string(), version.to_string())).map(String::as_str)
    }

    /// Every module version whose source the build downloaded: `(path, version, h1)`.
    pub fn modules(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.zips.iter().map(|((p, v), h)| (p.as_str(), v.as_str(), h.as_str()))
    }
}

/// An `h1:` hash (base64 of a SHA-256) as lowercase hex: in-toto's `dirHash`,
/// and the `SHA-256` the SBOMs list. `None` for anything else.
pub fn h1_to_hex(h1: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(h1.strip_prefix("h1:")?).ok()?;
    (raw.len() == 32).then(|| hex::encode(raw))
}

//! The `recipe` section: what the xcaddy command shown with each build says
//! before the build has run. A build that ran shows the Go version recorded in
//! its provenance instead; this is for the ones still queued or building.

use serde::Deserialize;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecipeConfig {
    /// The Go version the workers' builder image carries (`go1.26.8`), for the
    /// `GOTOOLCHAIN=` of builds not built yet. Empty: `GOTOOLCHAIN=local`.
    pub go_version: String,
}

impl RecipeConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.go_version.is_empty() && !is_go_version(&self.go_version) {
            return Err(invalid("recipe.go_version", format!("{:?} is not a Go version like go1.26.8", self.go_version)));
        }
        Ok(())
    }
}

/// `go1.N`, `go1.N.P` or a pre-release like `go1.27rc1`: what `GOTOOLCHAIN` takes.
fn is_go_version(v: &str) -> bool {
    v.strip_prefix("go1.").is_some_and(|rest| {
        !rest.is_empty() && rest.starts_with(|c: char| c.is_ascii_digit()) && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_versions() {
        for ok in ["go1.26.8", "go1.26", "go1.27rc1"] {
            assert!(is_go_version(ok), "{ok}");
        }
        for bad in ["1.26.8", "go1.", "go2.0", "go1.26 ; rm", "local"] {
            assert!(!is_go_version(bad), "{bad}");
        }
    }
}

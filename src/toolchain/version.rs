//! Go release versions as specs, config and image tags name them: `1.26.8`
//! (a `go` prefix is accepted on input and dropped). Only final releases from
//! Go 1.21.0 on: the module proxy serves toolchains as modules from then on,
//! and release candidates are not something to ship a web server with.

use std::fmt;

/// The oldest Go served as a `golang.org/toolchain` module in the `1.N.P` form.
const MIN_MINOR: u32 = 21;

/// A Go release, `1.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub minor: u32,
    pub patch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Go version {0:?} is not a Go release like 1.26.8 (1.21.0 or newer)")]
pub struct BadGoVersion(pub String);

impl GoVersion {
    /// Parses `1.26.8` or `go1.26.8`.
    pub fn parse(s: &str) -> Result<GoVersion, BadGoVersion> {
        let bad = || BadGoVersion(s.to_string());
        let rest = s.trim().strip_prefix("go").unwrap_or(s.trim());
        let mut parts = rest.split('.');
        let (Some("1"), Some(minor), Some(patch), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let number = |p: &str| {
            let plain = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
            if plain { p.parse::<u32>().ok() } else { None }
        };
        let (Some(minor), Some(patch)) = (number(minor), number(patch)) else { return Err(bad()) };
        if minor < MIN_MINOR {
            return Err(bad());
        }
        Ok(GoVersion { minor, patch })
    }

    /// Whether this Go satisfies a go.mod `go` directive (`1.26.0`, `1.25`,
    /// `1.26rc1`): a directive without a patch release is met by its `.0`.
    pub fn satisfies(&self, directive: &str) -> bool {
        let mut parts = directive.trim().split('.');
        let (Some("1"), Some(minor)) = (parts.next(), parts.next()) else { return true };
        let digits = |p: &str| p.bytes().take_while(u8::is_ascii_digit).fold(0u32, |n, b| n.saturating_mul(10).saturating_add((b - b'0') as u32));
        let want = (digits(minor), parts.next().map(digits).unwrap_or(0));
        (self.minor, self.patch) >= want
    }

    /// `go1.26.8`, as `go version` and a binary's build information say it.
    pub fn go_name(&self) -> String {
        format!("go{self}")
    }

    /// The toolchain module's version for a platform: `v0.0.1-go1.26.8.linux-amd64`.
    pub fn module_version(&self, goarch: &str) -> String {
        format!("v0.0.1-go{self}.linux-{goarch}")
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}.{}", self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases_and_refuses_the_rest() {
        assert_eq!(GoVersion::parse("1.26.8").unwrap().to_string(), "1.26.8");
        assert_eq!(GoVersion::parse("go1.26.10").unwrap(), GoVersion { minor: 26, patch: 10 });
        assert_eq!(GoVersion::parse("1.21.0").unwrap().go_name(), "go1.21.0");
        for bad in ["", "1.26", "1.26.8.1", "2.0.0", "1.20.14", "1.26rc1", "1.26.08", "go", "1.26.x", "1.26.8 ", "1.26.-1", "latest"] {
            assert!(GoVersion::parse(bad).is_err() || bad.ends_with(' '), "{bad:?}");
        }
        assert!(GoVersion::parse("1.25.14").unwrap() < GoVersion::parse("1.26.0").unwrap());
        assert_eq!(GoVersion::parse("1.26.8").unwrap().module_version("amd64"), "v0.0.1-go1.26.8.linux-amd64");
        let go = GoVersion::parse("1.26.7").unwrap();
        for met in ["1.26.0", "1.26", "1.26.7", "1.25", "1.26rc1", "1.21"] {
            assert!(go.satisfies(met), "{met}");
        }
        for unmet in ["1.26.8", "1.27", "1.27.0", "1.30rc1"] {
            assert!(!go.satisfies(unmet), "{unmet}");
        }
    }
}

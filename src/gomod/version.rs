//! Version queries and how one picks a version out of a proxy's `@v/list`:
//! semver order, releases before pre-releases, the module's major version.

use semver::Version;

/// What a caller asked for, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionQuery {
    /// Empty or `latest`: the newest release.
    Latest,
    /// `v2` or `v2.10`: the newest release with that major (and minor) version.
    Prefix { major: u64, minor: Option<u64> },
    /// A complete semver tag or pseudo-version: used as is once the proxy knows it.
    Exact(String),
    /// Anything else Go accepts (a branch or commit): the proxy resolves it.
    Other(String),
}

/// Characters a query may contain; keeps proxy URLs well-formed.
fn safe_query(q: &str) -> bool {
    !q.is_empty() && q.len() <= 128 && q.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
}

impl VersionQuery {
    /// `None` when the query cannot be a Go version query at all.
    pub fn parse(query: &str) -> Option<VersionQuery> {
        let q = query.trim();
        if q.is_empty() || q == "latest" {
            return Some(VersionQuery::Latest);
        }
        if !safe_query(q) {
            return None;
        }
        if is_absolute(q) {
            return Some(VersionQuery::Exact(q.to_string()));
        }
        if let Some(rest) = q.strip_prefix('v') {
            let parts: Vec<&str> = rest.split('.').collect();
            let num = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))).then(|| s.parse::<u64>().ok()).flatten();
            match parts.as_slice() {
                [ma] => if let Some(major) = num(ma) { return Some(VersionQuery::Prefix { major, minor: None }) },
                [ma, mi] => {
                    if let (Some(major), Some(minor)) = (num(ma), num(mi)) {
                        return Some(VersionQuery::Prefix { major, minor: Some(minor) });
                    }
                }
                _ => {}
            }
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
        }
        Some(VersionQuery::Other(q.to_string()))
    }
}

/// A semver tag (`v1.2.3`, `v1.2.3-rc.1`, `v2.0.0+incompatible`) or Go pseudo-version.
pub fn is_absolute(v: &str) -> bool {
    parse(v).is_some()
}

fn parse(v: &str) -> Option<Version> {
    let version = Version::parse(v.strip_prefix('v')?).ok()?;
    (version.build.is_empty() || version.build.as_str() == "incompatible").then_some(version)
}

/// The major version a module path implies: `Some(n)` for a `/vN` suffix (or
/// gopkg.in's `.vN`) with n >= 2, `None` for v0/v1.
pub fn path_major(module: &str) -> Option<u64> {
    let last = module.rsplit('/').next()?;
    let digits = if module.starts_with("gopkg.in/") {
        let (_, major) = last.rsplit_once(".v")?;
        major.strip_suffix("-unstable").unwrap_or(major)
    } else {
        last.strip_prefix('v')?
    };
    digits.parse::<u64>().ok().filter(|n| *n >= 2)
}

/// Picks the newest release in `list` (a proxy's `@v/list`) that matches the query,
/// for a module whose path implies `major`. Pre-releases are never picked here (only
/// asked for by name), and compatible versions win over `+incompatible` ones.
pub fn select(list: &str, query: &VersionQuery, major: Option<u64>) -> Option<String> {
    let candidates: Vec<(Version, &str)> = list
        .lines()
        .map(str::trim)
        .filter_map(|s| parse(s).map(|v| (v, s)))
        .filter(|(v, _)| match major {
            Some(m) => v.major == m && v.build.is_empty(),
            None => v.major <= 1 || !v.build.is_empty(),
        })
        .filter(|(v, _)| v.pre.is_empty())
        .filter(|(v, _)| match query {
            VersionQuery::Latest => true,
            VersionQuery::Prefix { major, minor } => v.major == *major && minor.is_none_or(|m| v.minor == m),
            _ => false,
        })
        .collect();
    let rank = |v: &Version| v.build.is_empty();
    candidates
        .iter()
        .max_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp_precedence(b)))
        .map(|(_, s)| s.to_string())
}

/// Whether `candidate` is a release (no pre-release, no pseudo-version) newer
/// than `current` in semver order: what release watching upgrades a spec to.
/// A `current` that is not a version at all is never upgraded.
pub fn is_newer_release(candidate: &str, current: &str) -> bool {
    match (parse(candidate), parse(current)) {
        (Some(c), Some(cur)) => c.pre.is_empty() && c.cmp_precedence(&cur).is_gt(),
        _ => false,
    }
}

/// The releases in `list` (a proxy's `@v/list`), newest first: no pre-releases,
/// no `+incompatible` versions, for a version picker.
pub fn releases(list: &str) -> Vec<String> {
    let mut versions: Vec<Version> = list
        .lines()
        .filter_map(|l| parse(l.trim()))
        .filter(|v| v.pre.is_empty() && v.build.is_empty())
        .collect();
    versions.sort_by(|a, b| b.cmp(a));
    versions.dedup();
    versions.iter().map(|v| format!("v{v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CADDY: &str = "v2.0.0\nv2.10.0\nv2.10.2\nv2.9.1\nv2.11.0-beta.1\nv2.2.0-rc.1\n";

    #[test]
    fn parses_queries() {
        assert_eq!(VersionQuery::parse(""), Some(VersionQuery::Latest));
        assert_eq!(VersionQuery::parse("latest"), Some(VersionQuery::Latest));
        assert_eq!(VersionQuery::parse("v2.10"), Some(VersionQuery::Prefix { major: 2, minor: Some(10) }));
        assert_eq!(VersionQuery::parse("v2"), Some(VersionQuery::Prefix { major: 2, minor: None }));
        assert_eq!(VersionQuery::parse("v2.10.2"), Some(VersionQuery::Exact("v2.10.2".into())));
        let pseudo = "v0.0.0-20191109021931-daa7c04131f5";
        assert_eq!(VersionQuery::parse(pseudo), Some(VersionQuery::Exact(pseudo.into())));
        assert_eq!(VersionQuery::parse("v2.0.0+incompatible"), Some(VersionQuery::Exact("v2.0.0+incompatible".into())));
        assert_eq!(VersionQuery::parse("master"), Some(VersionQuery::Other("master".into())));
        assert_eq!(VersionQuery::parse("../x"), None);
        assert_eq!(VersionQuery::parse("v2.x.y"), None);
        assert_eq!(VersionQuery::parse("v1.2.3+meta"), None);
    }

    #[test]
    fn selects_newest_release() {
        assert_eq!(select(CADDY, &VersionQuery::Latest, Some(2)).as_deref(), Some("v2.10.2"));
        let q = VersionQuery::Prefix { major: 2, minor: Some(9) };
        assert_eq!(select(CADDY, &q, Some(2)).as_deref(), Some("v2.9.1"));
        let q = VersionQuery::Prefix { major: 2, minor: Some(12) };
        assert_eq!(select(CADDY, &q, Some(2)), None);
        assert_eq!(select("v2.2.0-rc.1\nv2.2.0-beta.3\n", &VersionQuery::Latest, Some(2)), None);
        let q = VersionQuery::Prefix { major: 2, minor: Some(11) };
        assert_eq!(select(CADDY, &q, Some(2)), None, "v2.11 has only a pre-release");
        assert_eq!(select("", &VersionQuery::Latest, None), None);
    }

    #[test]
    fn newer_releases_only() {
        assert!(is_newer_release("v2.11.10", "v2.11.9"));
        assert!(!is_newer_release("v2.11.9", "v2.11.9"));
        assert!(!is_newer_release("v2.11.8", "v2.11.9"));
        assert!(!is_newer_release("v2.12.0-beta.1", "v2.11.9"), "pre-releases are ignored");
        assert!(is_newer_release("v2.12.0", "v2.12.0-beta.1"));
        assert!(is_newer_release("v1.0.0", "v0.0.0-20240101000000-abcdefabcdef"));
        assert!(!is_newer_release("v0.0.0-20250101000000-abcdefabcdef", "v0.0.0-20240101000000-abcdefabcdef"));
        assert!(!is_newer_release("v2.0.0", "master"));
    }

    #[test]
    fn respects_major_versions() {
        let list = "v1.4.0\nv2.0.0+incompatible\nv0.9.0\n";
        assert_eq!(select(list, &VersionQuery::Latest, None).as_deref(), Some("v1.4.0"));
        assert_eq!(select("v2.0.0+incompatible\nv3.1.0+incompatible", &VersionQuery::Latest, None).as_deref(), Some("v3.1.0+incompatible"));
        assert_eq!(select("v1.0.0\nv3.0.0", &VersionQuery::Latest, Some(3)).as_deref(), Some("v3.0.0"));
        assert_eq!(path_major("github.com/caddyserver/caddy/v2"), Some(2));
        assert_eq!(path_major("github.com/caddy-dns/cloudflare"), None);
        assert_eq!(path_major("gopkg.in/yaml.v3"), Some(3));
        assert_eq!(path_major("gopkg.in/yaml.v1"), None);
        assert_eq!(select("v3.0.0\nv3.0.1\nv2.4.0", &VersionQuery::Latest, path_major("gopkg.in/yaml.v3")).as_deref(), Some("v3.0.1"));
    }
}

//! The GOPROXY protocol's case encoding of paths and versions, and the guard
//! that keeps a module path a path below the proxy's URL. Go's module path
//! rules are not here: they are SQL's (`cbs.module_path_problem`), asked by the
//! api and the janitor before a path reaches the resolver.

/// Whether `path` can be put into a proxy URL as it is: only the characters of
/// module paths, and no empty, `.` or `..` element that would move the request
/// elsewhere on the proxy. Not Go's rule (which is stricter), a guard for what
/// the resolver sends.
pub fn is_url_safe(path: &str) -> bool {
    !path.is_empty()
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
        && path.split('/').all(|e| !e.is_empty() && e != "." && e != "..")
}

/// Case-encodes a path or version for a proxy URL: each capital becomes `!` and its lowercase.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_safe_paths_stay_below_the_proxy() {
        for p in ["github.com/caddyserver/caddy/v2", "github.com/BurntSushi/toml", "gopkg.in/yaml.v3", "example.com/a~b/c_d"] {
            assert!(is_url_safe(p), "{p}");
        }
        for p in ["", "github.com/", "/github.com/x", "github.com//x", "github.com/x/../y", "github.com/./y", "github.com/x y", "x?y", "x#y", "x%2fy", "x@v1"] {
            assert!(!is_url_safe(p), "{p:?}");
        }
    }

    #[test]
    fn escapes_capitals() {
        assert_eq!(escape("github.com/BurntSushi/toml"), "github.com/!burnt!sushi/toml");
        assert_eq!(escape("v1.0.0-RC1"), "v1.0.0-!r!c1");
    }
}

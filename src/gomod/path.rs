//! Go's module path rules (`golang.org/x/mod/module.CheckPath`) and the
//! GOPROXY protocol's case encoding of paths and versions.

/// Longest module path accepted; matches `cbs.module_path_problem`.
const MAX_PATH_LEN: usize = 300;

/// Element names Windows reserves; Go rejects them in module paths.
const WINDOWS_RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1",
    "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Checks a module path by Go's rules; the error says what is wrong.
pub fn check_module_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("is longer than {MAX_PATH_LEN} characters"));
    }
    if let Some(c) = path.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._~/".contains(*c))) {
        return Err(format!("contains the character {c:?} (allowed: letters, digits, '-', '.', '_', '~', '/')"));
    }
    let elems: Vec<&str> = path.split('/').collect();
    for elem in &elems {
        check_element(elem)?;
    }
    check_first_element(elems[0])?;
    check_major_suffix(path, &elems)
}

fn check_element(elem: &str) -> Result<(), String> {
    if elem.is_empty() {
        return Err("has an empty path element (leading, trailing or double slash)".into());
    }
    if elem.starts_with('.') || elem.ends_with('.') {
        return Err(format!("has a path element {elem:?} that begins or ends with a dot"));
    }
    let stem = elem.split('.').next().unwrap_or(elem);
    if WINDOWS_RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return Err(format!("has a path element {elem:?} that is a reserved file name on Windows"));
    }
    Ok(())
}

fn check_first_element(first: &str) -> Result<(), String> {
    let ok_chars = first.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !ok_chars || !first.contains('.') || first.starts_with('-') {
        return Err(format!("must begin with a lowercase domain name (like github.com), not {first:?}"));
    }
    Ok(())
}

/// A trailing `/vN` must have N >= 2 without leading zeros; `gopkg.in` paths use `.vN` instead.
fn check_major_suffix(path: &str, elems: &[&str]) -> Result<(), String> {
    let last = elems[elems.len() - 1];
    if path.starts_with("gopkg.in/") {
        let ok = last
            .rsplit_once(".v")
            .is_some_and(|(name, major)| !name.is_empty() && is_gopkg_major(major));
        return if ok { Ok(()) } else { Err("must end in a .vN major version suffix (gopkg.in paths)".into()) };
    }
    if elems.len() < 2 {
        return Ok(());
    }
    let Some(digits) = last.strip_prefix('v') else { return Ok(()) };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok(());
    }
    let valid = digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') && digits != "1";
    if valid { Ok(()) } else { Err(format!("has an invalid major version suffix /{last} (must be /v2 or higher)")) }
}

fn is_gopkg_major(major: &str) -> bool {
    let major = major.strip_suffix("-unstable").unwrap_or(major);
    !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()) && (major == "0" || !major.starts_with('0'))
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
    fn accepts_real_module_paths() {
        for p in [
            "github.com/caddyserver/caddy/v2",
            "github.com/caddy-dns/cloudflare",
            "github.com/BurntSushi/toml",
            "gopkg.in/yaml.v3",
            "golang.org/x/mod",
            "example.com/a~b/c_d",
        ] {
            assert_eq!(check_module_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for p in [
            "",
            "github.com/",
            "/github.com/x",
            "github.com//x",
            "localhost/x",
            "GitHub.com/x",
            "-x.com/y",
            "github.com/x/../y",
            "github.com/x/.hidden",
            "github.com/x/y/v1",
            "github.com/x/y/v0",
            "github.com/x/y/v02",
            "github.com/x/y/v2.1",
            "github.com/x y",
            "github.com/x/con",
            "github.com/x@v1",
            "gopkg.in/yaml",
            "gopkg.in/yaml.v03",
        ] {
            assert!(check_module_path(p).is_err(), "{p:?} should be rejected");
        }
        assert!(check_module_path(&format!("github.com/{}", "a".repeat(400))).is_err());
    }

    #[test]
    fn escapes_capitals() {
        assert_eq!(escape("github.com/BurntSushi/toml"), "github.com/!burnt!sushi/toml");
        assert_eq!(escape("v1.0.0-RC1"), "v1.0.0-!r!c1");
    }
}

//! Package URLs (`pkg:golang/…@…`) for Go modules, as the purl specification
//! writes them: each path segment and the version percent-encoded (a `+` of
//! `+incompatible` becomes `%2B`), the module path's case kept as Go keeps it.

/// The purl of a Go module at a version.
pub fn golang(path: &str, version: &str) -> String {
    let segments: Vec<String> = path.split('/').map(encode).collect();
    format!("pkg:golang/{}@{}", segments.join("/"), encode(version))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! The module list Go embeds in every binary it builds (what `go version -m`
//! prints), read on the worker's side from the file itself. It tells which
//! modules the binary was built from without running it, so a plugin missing
//! from the binary is caught for every target, cross-compiled ones included
//! (those cannot run on the worker to verify themselves).
//!
//! Layout (Go 1.18 and later): a 32-byte header starting with the magic
//! `\xff Go buildinf:`, aligned to 16 bytes, whose flags byte (offset 15) has
//! bit 2 set for the inline form; then two varint-length-prefixed strings, the
//! Go version and the module info. The module info is framed by 16 bytes of
//! sentinel on each side and holds tab-separated lines (`path`, `mod`, `dep`,
//! `=>` for a replacement, `build`).

use std::path::Path;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE: u8 = 0x2;
const SENTINEL_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BuildInfoError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: no Go build information found")]
    Missing(String),
    #[error("{0}: Go build information in a format older than Go 1.18")]
    OldFormat(String),
    #[error("{0}: truncated Go build information")]
    Truncated(String),
}

/// The binary's Go version and the module paths of its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub go_version: String,
    pub deps: Vec<String>,
}

/// Reads the build information of the Go binary at `path`.
pub async fn read(path: &Path) -> Result<BuildInfo, BuildInfoError> {
    let owned = path.to_path_buf();
    let name = path.display().to_string();
    let io = |source| BuildInfoError::Io { path: name.clone(), source };
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(owned)).await.map_err(std::io::Error::other).and_then(|r| r).map_err(io)?;
    parse(&bytes, &name)
}

fn parse(bytes: &[u8], name: &str) -> Result<BuildInfo, BuildInfoError> {
    let start = memchr::memmem::find_iter(bytes, MAGIC)
        .find(|at| at % 16 == 0 && bytes.len() >= at + HEADER_LEN)
        .ok_or_else(|| BuildInfoError::Missing(name.into()))?;
    if bytes[start + 15] & FLAG_INLINE == 0 {
        return Err(BuildInfoError::OldFormat(name.into()));
    }
    let truncated = || BuildInfoError::Truncated(name.into());
    let mut rest = &bytes[start + HEADER_LEN..];
    let go_version = read_string(&mut rest).ok_or_else(truncated)?;
    let modinfo = read_string(&mut rest).ok_or_else(truncated)?;
    let modinfo = if modinfo.len() >= 2 * SENTINEL_LEN { &modinfo[SENTINEL_LEN..modinfo.len() - SENTINEL_LEN] } else { "" };
    let deps = modinfo
        .lines()
        .filter_map(|l| l.strip_prefix("dep\t"))
        .filter_map(|l| l.split('\t').next())
        .map(String::from)
        .collect();
    Ok(BuildInfo { go_version: go_version.to_string(), deps })
}

/// A uvarint length, then that many bytes of (lossy) UTF-8.
fn read_string<'a>(rest: &mut &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
    let (mut len, mut shift, mut used) = (0u64, 0u32, 0usize);
    loop {
        let b = *rest.get(used)?;
        used += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    let s = rest.get(used..used.checked_add(len)?)?;
    *rest = &rest[used + len..];
    Some(String::from_utf8_lossy(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(modinfo: &str) -> Vec<u8> {
        let mut b = vec![0u8; 48];
        let mut header = MAGIC.to_vec();
        header.extend([8, FLAG_INLINE]);
        header.resize(HEADER_LEN, 0);
        b.extend(header);
        for s in ["go1.26.0".to_string(), format!("{}{modinfo}{}", "S".repeat(16), "E".repeat(16))] {
            let mut n = s.len();
            while n >= 0x80 {
                b.push((n as u8) | 0x80);
                n >>= 7;
            }
            b.push(n as u8);
            b.extend(s.as_bytes());
        }
        b.extend([0u8; 7]);
        b
    }

    #[test]
    fn reads_the_dependencies() {
        // Long enough for a two-byte length.
        let modinfo = format!(
            "path\tcaddy\nmod\tcaddy\t(devel)\t\ndep\tgithub.com/caddy-dns/cloudflare\tv0.2.1\th1:abc=\n\
             dep\tgithub.com/caddyserver/caddy/v2\tv2.11.9\th1:def=\n=>\tgithub.com/x/y\tv1.0.0\t\nbuild\t-trimpath=true\n{}",
            "build\tpadding\n".repeat(20)
        );
        let info = parse(&blob(&modinfo), "caddy").unwrap();
        assert_eq!(info.go_version, "go1.26.0");
        assert_eq!(info.deps, vec!["github.com/caddy-dns/cloudflare", "github.com/caddyserver/caddy/v2"]);
    }

    #[test]
    fn rejects_what_is_not_a_go_binary() {
        assert!(matches!(parse(b"#!/bin/sh\necho not go\n", "x"), Err(BuildInfoError::Missing(_))));
        let mut cut = blob("dep\ta\tv1\n");
        cut.truncate(48 + HEADER_LEN + 4);
        assert!(matches!(parse(&cut, "x"), Err(BuildInfoError::Truncated(_))));
        let mut old = blob("");
        old[48 + 15] = 0;
        assert!(matches!(parse(&old, "x"), Err(BuildInfoError::OldFormat(_))));
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfo {
    pub go_version: String,
    pub deps: Vec<String>,
    /// The main package's path (`path` line).
    pub path: String,
    /// The main module (`mod` line); `caddy (devel)` for our builds.
    pub main: Option<Module>,
    /// Every dependency (`dep` lines) with what replaced it (`=>` lines), in
    /// the order Go lists them (sorted by path): what the SBOMs list.
    pub modules: Vec<Dep>,
    /// Build settings (`build` lines) as `key`, `value`, unquoted: `-tags`,
    /// `-trimpath`, `CGO_ENABLED`, `GOOS`, `GOARCH`, `GOARM`, … (Go leaves
    /// `-ldflags` out when `-trimpath` is set).
    pub settings: Vec<(String, String)>,
}

/// A module as the build information names it: path, version and, where Go
/// recorded one, its `h1:` hash from `go.sum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub version: String,
    pub sum: Option<String>,
}

/// A dependency and, when go.mod replaced it, the module whose code was built instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub module: Module,
    pub replaced_by: Option<Module>,
}

impl Dep {
    /// The module whose code is in the binary: the replacement where there is one.
    pub fn built(&self) -> &Module {
        self.replaced_by.as_ref().unwrap_or(&self.module)
    }
}

impl BuildInfo {
    /// A build setting's value (`GOOS`, `-tags`, …).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Reads the build information of the Go binary at `path`.
pub async fn read(path: &Path) -> Result<BuildInfo, BuildInfoError> {
    let owned = path.to_path_buf();
    let name = path.display().to_string();
    let io = |source| BuildInfoError::Io { path: name.clone(), source };
    let blob = crate::blocking::io(move || find_blob(&owned)).await.map_err(io)?;
    parse(&blob.ok_or_else(|| BuildInfoError::Missing(name.clone()))?, &name)
}

/// Scans the file in chunks for the header (it sits in the data segment, well
/// before the end) and returns the bytes from there on, at most `WINDOW`.
fn find_blob(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Read, Seek, SeekFrom};
    const CHUNK: usize = 1 << 20;
    /// Far more than the module list of any build.
    const WINDOW: u64 = 4 << 20;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK + MAGIC.len()];
    let (mut carried, mut base) = (0usize, 0u64);
    loop {
        let mut filled = carried;
        while filled < buf.len() {
            match f.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let found = memchr::memmem::find_iter(&buf[..filled], MAGIC).map(|i| base + i as u64).find(|at| at % 16 == 0);
        if let Some(at) = found {
            f.seek(SeekFrom::Start(at))?;
            let mut blob = Vec::new();
            f.take(WINDOW).read_to_end(&mut blob)?;
            return Ok(Some(blob));
        }
        if filled < buf.len() {
            return Ok(None);
        }
        // Keep the tail: the magic may straddle two chunks.
        carried = MAGIC.len() - 1;
        buf.copy_within(filled - carried..filled, 0);
        base += (filled - carried) as u64;
    }
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
    let mut info = BuildInfo { go_version: go_version.to_string(), ..BuildInfo::default() };
    for line in modinfo.lines() {
        let Some((kind, rest)) = line.split_once('\t') else { continue };
        match kind {
            "path" => info.path = rest.to_string(),
            "mod" => info.main = Some(module(rest)),
            "dep" => {
                let m = module(rest);
                info.deps.push(m.path.clone());
                info.modules.push(Dep { module: m, replaced_by: None });
            }
            // A replacement follows the line it replaces (a dep, or the main module).
            "=>" => {
                if let Some(dep) = info.modules.last_mut() {
                    dep.replaced_by = Some(module(rest));
                }
            }
            "build" => {
                if let Some((k, v)) = split_setting(rest) {
                    info.settings.push((k, v));
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// `path\tversion\tsum` (version and sum may be missing or empty).
fn module(rest: &str) -> Module {
    let mut f = rest.split('\t');
    let path = f.next().unwrap_or_default().to_string();
    let version = f.next().unwrap_or_default().to_string();
    let sum = f.next().filter(|s| !s.is_empty()).map(String::from);
    Module { path, version, sum }
}

/// `key=value`, either side Go-quoted when it holds spaces, tabs, quotes or `=`
/// (`-ldflags="-w -s"`).
fn split_setting(rest: &str) -> Option<(String, String)> {
    let (key, value) = if rest.starts_with('"') {
        let (key, used) = unquote(rest)?;
        (key, rest[used..].strip_prefix('=')?)
    } else {
        let (k, v) = rest.split_once('=')?;
        (k.to_string(), v)
    };
    let value = if value.starts_with('"') { unquote(value)?.0 } else { value.to_string() };
    Some((key, value))
}

/// A Go double-quoted string at the start of `s`: its value and the bytes it took.
/// Handles the escapes `strconv.Quote` writes for settings' text.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => out.push(match chars.next()?.1 {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            }),
            c => out.push(c),
        }
    }
    None
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
        assert_eq!(info.path, "caddy");
        assert_eq!(info.main, Some(Module { path: "caddy".into(), version: "(devel)".into(), sum: None }));
        let caddy = &info.modules[1];
        assert_eq!(caddy.module, Module { path: "github.com/caddyserver/caddy/v2".into(), version: "v2.11.9".into(), sum: Some("h1:def=".into()) });
        assert_eq!(caddy.built(), &Module { path: "github.com/x/y".into(), version: "v1.0.0".into(), sum: None });
        assert_eq!(info.modules[0].built(), &info.modules[0].module);
        assert_eq!(info.setting("-trimpath"), Some("true"));
    }

    #[test]
    fn reads_quoted_build_settings() {
        let info = parse(&blob("build\t-ldflags=\"-w -s\"\nbuild\t-tags=nobadger,nomysql\nbuild\tGOOS=linux\nbuild\t\"a=b\"=\"say \\\"hi\\\"\"\n"), "x").unwrap();
        assert_eq!(info.setting("-ldflags"), Some("-w -s"));
        assert_eq!(info.setting("-tags"), Some("nobadger,nomysql"));
        assert_eq!(info.setting("GOOS"), Some("linux"));
        assert_eq!(info.setting("a=b"), Some("say \"hi\""));
    }

    #[tokio::test]
    async fn finds_the_header_anywhere_in_a_large_file() {
        let dir = std::env::temp_dir().join(format!("cbs-buildinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A decoy magic at an unaligned offset, then the real one where a read chunk ends.
        for at in [(1 << 20) - 16, 1 << 20, 3 << 20] {
            let mut file = vec![0u8; at - 48];
            file.splice(1000..1000, MAGIC.iter().copied());
            file.truncate(at - 48);
            file.extend(blob("dep\tgithub.com/a/b\tv1.0.0\th1:x=\n"));
            file.extend(vec![0u8; 5000]);
            let path = dir.join(format!("bin-{at}"));
            std::fs::write(&path, &file).unwrap();
            assert_eq!(read(&path).await.unwrap().deps, vec!["github.com/a/b"], "header at {at}");
        }
        let plain = dir.join("plain");
        std::fs::write(&plain, vec![7u8; 3 << 20]).unwrap();
        assert!(matches!(read(&plain).await, Err(BuildInfoError::Missing(_))));
        std::fs::remove_dir_all(&dir).ok();
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

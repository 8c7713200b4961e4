//! The builder image's root filesystem as one tar stream for `docker import`:
//! Debian's static busybox (for `/bin/sh` and the applets the steps use), the
//! host's CA bundle, a passwd/group with the build user (uid 1000), `/tmp`,
//! the cache and work directories owned by that user (fresh named volumes
//! mounted there inherit the ownership), and the Go toolchain unpacked from its
//! module zip into `/usr/local/go`. Blocking code: run it on the blocking pool.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use super::ToolchainError;

/// A fixed mtime for every entry: the same zip gives the same tarball.
const MTIME: u64 = 946_684_800;
/// Where the toolchain lives in the image (the steps' PATH names its bin).
pub const GOROOT: &str = "usr/local/go";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/home/builder:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nbuilder:x:1000:\nnogroup:x:65534:\n";
const BUILD_UID: u64 = 1000;

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ToolchainError {
    move |e| ToolchainError::Io(format!("{what}: {e}"))
}

/// Writes the root filesystem to `dest`: busybox from `busybox` (its applets
/// listed by `applets`), the toolchain from `zip` (whose entries start with `prefix`).
pub fn write(dest: &Path, busybox: &Path, applets: &[String], zip: &Path, prefix: &str) -> Result<(), ToolchainError> {
    let out = BufWriter::with_capacity(1 << 20, File::create(dest).map_err(io(dest.display()))?);
    let mut tar = tar::Builder::new(out);
    let dir = |tar: &mut tar::Builder<_>, path: &str, mode: u32, uid: u64| -> Result<(), ToolchainError> {
        let mut h = header(tar::EntryType::Directory, mode, uid, 0);
        tar.append_data(&mut h, path, std::io::empty()).map_err(io(path))
    };
    for d in ["bin", "etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/local", GOROOT, "home"] {
        dir(&mut tar, d, 0o755, 0)?;
    }
    dir(&mut tar, "tmp", 0o1777, 0)?;
    for d in ["cache", "cache/gomod", "cache/gobuild", "work", "home/builder"] {
        dir(&mut tar, d, 0o755, BUILD_UID)?;
    }
    file(&mut tar, "bin/busybox", 0o755, &std::fs::read(busybox).map_err(io(busybox.display()))?)?;
    for applet in applets.iter().filter(|a| a.as_str() != "busybox" && !a.contains('/')) {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox").map_err(io(applet))?;
    }
    file(&mut tar, "etc/ssl/certs/ca-certificates.crt", 0o644, &std::fs::read(CA_BUNDLE).map_err(io(CA_BUNDLE))?)?;
    file(&mut tar, "etc/passwd", 0o644, PASSWD.as_bytes())?;
    file(&mut tar, "etc/group", 0o644, GROUP.as_bytes())?;
    file(&mut tar, "etc/nsswitch.conf", 0o644, b"hosts: files dns\n")?;
    append_toolchain(&mut tar, zip, prefix)?;
    let mut out = tar.into_inner().map_err(io(dest.display()))?;
    out.flush().map_err(io(dest.display()))?;
    out.into_inner().map_err(|e| ToolchainError::Io(e.to_string()))?.sync_all().map_err(io(dest.display()))
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_size(size);
    h.set_mtime(MTIME);
    h
}

fn file<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32, data: &[u8]) -> Result<(), ToolchainError> {
    file_under(tar, path, mode, data)
}

fn file_under<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32, data: &[u8]) -> Result<(), ToolchainError> {
    let mut h = header(tar::EntryType::Regular, mode, 0, data.len() as u64);
    tar.append_data(&mut h, path, data).map_err(io(path))
}

/// Whether a toolchain file must be executable: module zips carry no modes, so
/// `go` marks these executable when it switches to a downloaded toolchain
/// (cmd/go/internal/toolchain: `pkg/tool`, `bin`, and `lib`'s `go_*_*_exec`).
fn executable(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let exec_helper = rel.starts_with("lib/") && name.starts_with("go_") && name.ends_with("_exec") && name.matches('_').count() >= 3;
    rel.starts_with("bin/") || rel.starts_with("pkg/tool/") || exec_helper
}

/// The toolchain's files under [`GOROOT`], without its own test suite (`test/`,
/// a fifth of the files, never used by a build), directories made as needed.
fn append_toolchain<W: Write>(tar: &mut tar::Builder<W>, zip: &Path, prefix: &str) -> Result<(), ToolchainError> {
    let mut archive = zip::ZipArchive::new(File::open(zip).map_err(io(zip.display()))?)
        .map_err(|e| ToolchainError::Checksum(format!("unreadable toolchain zip: {e}")))?;
    let mut dirs = std::collections::HashSet::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| ToolchainError::Checksum(format!("toolchain zip: {e}")))?;
        let name = entry.name().to_string();
        let Some(rel) = name.strip_prefix(prefix) else {
            return Err(ToolchainError::Checksum(format!("toolchain zip entry {name:?} outside {prefix}")));
        };
        if entry.is_dir() || rel.is_empty() || rel.starts_with("test/") {
            continue;
        }
        if rel.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(ToolchainError::Checksum(format!("toolchain zip entry {name:?} has an unsafe path")));
        }
        let mut parent = String::new();
        for part in rel.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            if dirs.insert(parent.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, 0);
                tar.append_data(&mut h, format!("{GOROOT}/{parent}"), std::io::empty()).map_err(io(&parent))?;
            }
        }
        let mode = if executable(rel) { 0o755 } else { 0o644 };
        if let Some(dir) = rel.strip_suffix("_go.mod").filter(|d| d.is_empty() || d.ends_with('/')) {
            // A module zip cannot hold the go.mod files of GOROOT's own modules
            // (src/go.mod, src/cmd/go.mod): they travel as _go.mod, and `go`
            // copies each to go.mod when it unpacks a toolchain. So do we.
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data).map_err(io(rel))?;
            file_under(tar, &format!("{GOROOT}/{rel}"), mode, &data)?;
            file_under(tar, &format!("{GOROOT}/{dir}go.mod"), mode, &data)?;
            continue;
        }
        let mut h = header(tar::EntryType::Regular, mode, 0, entry.size());
        let mut reader: &mut dyn Read = &mut entry;
        tar.append_data(&mut h, format!("{GOROOT}/{rel}"), &mut reader).map_err(io(rel))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::executable;

    #[test]
    fn executable_files_as_go_marks_them() {
        for yes in ["bin/go", "bin/gofmt", "pkg/tool/linux_amd64/compile", "lib/wasm/go_js_wasm_exec", "lib/wasm/go_wasip1_wasm_exec"] {
            assert!(executable(yes), "{yes}");
        }
        for no in ["src/go.mod", "VERSION", "lib/time/zoneinfo.zip", "misc/wasm/go_js_wasm_exec", "lib/wasm/wasm_exec.js"] {
            assert!(!executable(no), "{no}");
        }
    }
}

//! The static busybox of the builder image: a configured file, else Debian's
//! `busybox-static` package fetched with `apt-get download` (the host's own
//! busybox, if any, is left alone), unpacked once into the scratch directory.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::ToolchainError;

/// A static busybox and the applets it provides.
pub async fn find(configured: &str, scratch: &Path) -> Result<(PathBuf, Vec<String>), ToolchainError> {
    let path = if configured.is_empty() { debian(scratch).await? } else { PathBuf::from(configured) };
    let out = Command::new(&path)
        .arg("--list")
        .output()
        .await
        .map_err(|e| ToolchainError::Busybox(format!("{}: {e}", path.display())))?;
    if !out.status.success() {
        return Err(ToolchainError::Busybox(format!("{} --list failed: {}", path.display(), String::from_utf8_lossy(&out.stderr))));
    }
    let applets = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    Ok((path, applets))
}

async fn debian(scratch: &Path) -> Result<PathBuf, ToolchainError> {
    let dir = scratch.join("busybox-static");
    let binary = dir.join("root/bin/busybox");
    if binary.exists() {
        return Ok(binary);
    }
    let fail = |what: &str, detail: String| ToolchainError::Busybox(format!("{what}: {detail}"));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| fail("scratch directory", e.to_string()))?;
    let mut download = run(Command::new("apt-get").args(["download", "-qq", "busybox-static"]).current_dir(&dir)).await;
    if download.is_err() {
        // A fresh machine has no package lists yet.
        run(Command::new("apt-get").args(["update", "-qq"])).await.map_err(|e| fail("apt-get update", e))?;
        download = run(Command::new("apt-get").args(["download", "-qq", "busybox-static"]).current_dir(&dir)).await;
    }
    download.map_err(|e| fail("apt-get download busybox-static", e))?;
    let mut debs = tokio::fs::read_dir(&dir).await.map_err(|e| fail("scratch directory", e.to_string()))?;
    while let Ok(Some(entry)) = debs.next_entry().await {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("busybox-static_") && name.ends_with(".deb") {
            run(Command::new("dpkg-deb").arg("-x").arg(entry.path()).arg(dir.join("root"))).await.map_err(|e| fail("dpkg-deb -x", e))?;
            let _ = tokio::fs::remove_file(entry.path()).await;
            return Ok(binary);
        }
    }
    Err(fail("apt-get download busybox-static", "no package file".into()))
}

async fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().await.map_err(|e| e.to_string())?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

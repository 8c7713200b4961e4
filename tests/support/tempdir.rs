//! The one way tests make scratch directories: a new directory under the
//! system temp dir, named `cbs-<tag>-<pid>-<random>`, removed when dropped
//! (artifacts are tens of MB each; a failing test keeps nothing either).

use std::path::{Path, PathBuf};

/// A scratch directory, removed with everything in it on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory tagged `tag` (the tag only helps a human reading `/tmp`).
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("cbs-{tag}-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory, created as a directory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        p
    }

    /// Keeps the directory past this value's life: for a directory that must
    /// outlive its owner (e.g. one shared by the whole test process).
    pub fn keep(self) -> PathBuf {
        let p = self.0.clone();
        std::mem::forget(self);
        p
    }
}

/// A `&TempDir` goes where a `&Path` does.
impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! The local directory backend: temp file in the target directory, fsync, rename,
//! fsync of the directory. A reader never sees a partial file, and a crash leaves
//! at worst a stray `.tmp-*` file that the next put of the same path ignores.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{check_path, ByteStream, Storage, StorageError};

pub struct LocalStorage {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.display().to_string(), source }
}

impl LocalStorage {
    pub fn new(root: impl AsRef<Path>) -> Result<LocalStorage, StorageError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        Ok(LocalStorage { root: root.canonicalize().map_err(io_err(root))? })
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, StorageError> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    /// Writes through a temp file and renames it into place. Blocking file calls
    /// on one blocking thread: tokio's file adapter would hop threads per chunk.
    async fn publish(&self, path: &str, write: impl FnOnce(&Path) -> std::io::Result<()> + Send + 'static) -> Result<(), StorageError> {
        let target = self.resolve(path)?;
        let written = target.clone();
        crate::blocking::io(move || publish_blocking(&written, write)).await.map_err(io_err(&target))
    }
}

fn publish_blocking(target: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    let dir = target.parent().expect("storage paths have a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        write(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl Storage for LocalStorage {
    async fn put_file(&self, path: &str, file: &Path) -> Result<(), StorageError> {
        // A missing source is the source's error, not the target's.
        tokio::fs::metadata(file).await.map_err(io_err(file))?;
        let src = file.to_path_buf();
        // std::fs::copy lets the kernel copy the bytes (copy_file_range).
        self.publish(path, move |tmp| std::fs::copy(&src, tmp).map(|_| ())).await
    }

    async fn put_bytes(&self, path: &str, data: Bytes) -> Result<(), StorageError> {
        self.publish(path, move |tmp| std::fs::write(tmp, &data)).await
    }

    async fn size(&self, path: &str) -> Result<Option<u64>, StorageError> {
        let p = self.resolve(path)?;
        match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    async fn get(&self, path: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let p = self.resolve(path)?;
        let mut f = match tokio::fs::File::open(&p).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(path.into())),
            Err(e) => return Err(io_err(&p)(e)),
        };
        let size = f.metadata().await.map_err(io_err(&p))?.len();
        let Some(range) = range else {
            return Ok(ReaderStream::with_capacity(f, 256 * 1024).boxed());
        };
        if range.start > range.end || range.end > size {
            return Err(StorageError::BadRange { size });
        }
        f.seek(SeekFrom::Start(range.start)).await.map_err(io_err(&p))?;
        Ok(ReaderStream::with_capacity(f.take(range.end - range.start), 256 * 1024).boxed())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let p = self.resolve(prefix)?;
        let count = walk_files(&p).await.map_err(io_err(&p))?;
        match tokio::fs::remove_dir_all(&p).await {
            Ok(()) => Ok(count),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                tokio::fs::remove_file(&p).await.map_err(io_err(&p))?;
                Ok(1)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&p)(e)),
        }
    }
}

/// Counts regular files below `dir` (0 when it does not exist).
async fn walk_files(dir: &Path) -> std::io::Result<u64> {
    let mut stack = vec![dir.to_path_buf()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        let mut entries = match tokio::fs::read_dir(&d).await {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => continue,
            Err(e) => return Err(e),
        };
        while let Some(e) = entries.next_entry().await? {
            if e.file_type().await?.is_dir() { stack.push(e.path()) } else { n += 1 }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_range_delete() {
        let dir = std::env::temp_dir().join(format!("cbs-local-{}", rand::random::<u64>()));
        let s = LocalStorage::new(&dir).unwrap();
        s.put_bytes("builds/ab/k/caddy", Bytes::from_static(b"hello world")).await.unwrap();
        assert_eq!(s.size("builds/ab/k/caddy").await.unwrap(), Some(11));
        assert_eq!(&s.get_bytes("builds/ab/k/caddy").await.unwrap()[..], b"hello world");
        let part: Vec<Bytes> = s.get("builds/ab/k/caddy", Some(6..11)).await.unwrap().map(|c| c.unwrap()).collect().await;
        assert_eq!(part.concat(), b"world");
        assert!(matches!(s.get("builds/ab/k/caddy", Some(5..20)).await, Err(StorageError::BadRange { size: 11 })));
        assert!(matches!(s.size("../x").await, Err(StorageError::BadPath(_))));
        assert!(matches!(s.get("builds/none", None).await, Err(StorageError::NotFound(_))));
        assert_eq!(s.delete_prefix("builds/ab/k").await.unwrap(), 1);
        assert_eq!(s.size("builds/ab/k/caddy").await.unwrap(), None);
        let leftovers = std::fs::read_dir(dir.join("builds/ab")).unwrap().count();
        assert_eq!(leftovers, 0, "no temp files left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

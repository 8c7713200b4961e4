//! The local directory backend: temp file in the target directory, fsync, rename,
//! fsync of the directory. A reader never sees a partial file, and a crash leaves
//! at worst a stray `.tmp-*` file that the next put of the same path ignores.

use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::read_ahead::ReadAhead;
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
        let (opened, wanted) = (p.clone(), range.clone());
        let open = move || -> std::io::Result<(std::fs::File, u64)> {
            let mut f = std::fs::File::open(&opened)?;
            let size = f.metadata()?.len();
            if let Some(r) = &wanted
                && r.start <= r.end
                && r.end <= size
            {
                f.seek(SeekFrom::Start(r.start))?;
            }
            Ok((f, size))
        };
        let (f, size) = match crate::blocking::io(open).await {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(path.into())),
            Err(e) => return Err(io_err(&p)(e)),
        };
        let len = match range {
            None => size,
            Some(r) if r.start <= r.end && r.end <= size => r.end - r.start,
            Some(_) => return Err(StorageError::BadRange { size }),
        };
        Ok(ReadAhead::new(f, len).boxed())
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

    /// Files of several read chunks come out whole, and ranges that start, end
    /// or cross at chunk boundaries come out exact.
    #[tokio::test]
    async fn large_files_and_ranges_across_chunks() {
        use crate::storage::read_ahead::READ_CHUNK;
        let dir = std::env::temp_dir().join(format!("cbs-local-{}", rand::random::<u64>()));
        let s = LocalStorage::new(&dir).unwrap();
        let c = READ_CHUNK;
        let data: Vec<u8> = (0..3 * c + 12_345).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        s.put_bytes("builds/ab/k/caddy", Bytes::from(data.clone())).await.unwrap();
        let whole = s.get_bytes("builds/ab/k/caddy").await.unwrap();
        assert_eq!(<sha2::Sha256 as sha2::Digest>::digest(&whole), <sha2::Sha256 as sha2::Digest>::digest(&data));
        let chunks: Vec<usize> = s.get("builds/ab/k/caddy", None).await.unwrap().map(|b| b.unwrap().len()).collect().await;
        assert_eq!(chunks, [c as usize, c as usize, c as usize, 12_345]);
        let len = data.len() as u64;
        for range in [0..0, 0..c, c - 1..c + 1, c..2 * c, c + 1..3 * c - 1, 2 * c..len, len - 1..len, len..len] {
            let part: Vec<Bytes> = s.get("builds/ab/k/caddy", Some(range.clone())).await.unwrap().map(|b| b.unwrap()).collect().await;
            assert_eq!(part.concat(), &data[range.start as usize..range.end as usize], "{range:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

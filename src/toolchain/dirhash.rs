//! Go's module hash (`h1:`, golang.org/x/mod/sumdb/dirhash `Hash1`) of a module
//! zip, as go.sum lines and the checksum database record it: the sha256 of a
//! summary listing the sha256 and name of every file, sorted by name.

use std::io::Read;

use base64::Engine;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum DirhashError {
    #[error("unreadable module zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("reading the module zip: {0}")]
    Io(#[from] std::io::Error),
    #[error("module zip has a file name with a newline: {0:?}")]
    BadName(String),
}

/// The `h1:` hash of a module zip (blocking: reads the whole archive).
pub fn hash_zip(path: &std::path::Path) -> Result<String, DirhashError> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    let mut files = Vec::with_capacity(archive.len());
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        if name.contains('\n') {
            return Err(DirhashError::BadName(name));
        }
        let mut h = Sha256::new();
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        files.push((name, hex::encode(h.finalize())));
    }
    Ok(hash_files(files))
}

/// `h1:` of (name, hex sha256) pairs.
pub fn hash_files(mut files: Vec<(String, String)>) -> String {
    files.sort();
    let mut summary = Sha256::new();
    for (name, sum) in &files {
        summary.update(format!("{sum}  {name}\n"));
    }
    format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(summary.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_of_a_known_module_zip() {
        // Built like the module proxy's zips: two files under module@version/.
        let dir = std::env::temp_dir().join(format!("cbs-dirhash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("example.com/m@v1.0.0/go.mod", opts).unwrap();
        std::io::Write::write_all(&mut w, b"module example.com/m\n").unwrap();
        w.start_file("example.com/m@v1.0.0/a.go", opts).unwrap();
        std::io::Write::write_all(&mut w, b"package m\n").unwrap();
        w.finish().unwrap();
        let sum = |b: &[u8]| hex::encode(Sha256::digest(b));
        let expected = hash_files(vec![
            ("example.com/m@v1.0.0/a.go".into(), sum(b"package m\n")),
            ("example.com/m@v1.0.0/go.mod".into(), sum(b"module example.com/m\n")),
        ]);
        assert_eq!(hash_zip(&path).unwrap(), expected);
        // Go's own value for this file set (order of files does not matter).
        let mut summary = Sha256::new();
        summary.update(format!("{}  example.com/m@v1.0.0/a.go\n{}  example.com/m@v1.0.0/go.mod\n", sum(b"package m\n"), sum(b"module example.com/m\n")));
        assert_eq!(expected, format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(summary.finalize())));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! Publishing a finished binary: sha256, optional signature, atomic puts to
//! storage in the contract's layout, and the `Artifact` record for
//! `cbs.complete_build`. Signing plugs in through [`ArtifactSigner`].

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::storage::{Artifact, ArtifactPaths, DynStorage, StorageError};

/// Signs a binary; the signature is stored beside it (`caddy.minisig`).
#[async_trait]
pub trait ArtifactSigner: Send + Sync {
    async fn sign(&self, binary: &Path) -> Result<Bytes, String>;
}

#[async_trait]
impl ArtifactSigner for crate::signing::Signer {
    async fn sign(&self, binary: &Path) -> Result<Bytes, String> {
        self.sign_file_async(binary).await.map(Bytes::from).map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct Publisher {
    pub storage: DynStorage,
    pub signer: Option<Arc<dyn ArtifactSigner>>,
}

impl Publisher {
    /// Stores the binary, its checksum (and signature), binary first so that a
    /// checksum is never visible without the file it describes. The record is
    /// only written (by the caller) once every object is in place.
    pub async fn publish(&self, build_key: &str, os: &str, binary: &Path) -> Result<Artifact, StorageError> {
        let paths = ArtifactPaths::new(build_key, os)?;
        // Hashing and the upload each read the whole file: do both at once.
        let (hashed, put) = tokio::join!(sha256_file(binary), self.storage.put_file(&paths.binary, binary));
        let ((sha256, size), ()) = (hashed?, put?);
        let file_name = crate::spec::binary_name(os).to_string();
        self.storage.put_bytes(&paths.sha256, Bytes::from(format!("{sha256}  {file_name}\n"))).await?;
        let signature = match &self.signer {
            Some(signer) => {
                let sig = signer.sign(binary).await.map_err(StorageError::Backend)?;
                self.storage.put_bytes(&paths.signature, sig).await?;
                Some(paths.signature.clone())
            }
            None => None,
        };
        Ok(Artifact { path: paths.binary, file_name, size, sha256, signature })
    }
}

/// Lowercase hex sha256 and size of a file.
pub async fn sha256_file(path: &Path) -> Result<(String, u64), StorageError> {
    let io = |source| StorageError::Io { path: path.display().to_string(), source };
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(&hasher.finalize()[..]), size))
}

//! Publishing a finished binary: sha256 and minisign signature, atomic puts to
//! storage in the contract's layout, and the `Artifact` record for
//! `cbs.complete_build`; then its SBOMs and provenance, each signed the same way.

use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::attest::Documents;
use crate::db::RecordedDocuments;
use crate::signing::{Signer, SigningError};
use crate::storage::{signature_of, Artifact, ArtifactPaths, Document, DynStorage, StorageError, StoredDocument};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("signing: {0}")]
    Signing(#[from] SigningError),
}

#[derive(Clone)]
pub struct Publisher {
    pub storage: DynStorage,
    pub signer: Signer,
}

impl Publisher {
    /// Stores the binary, its checksum and signature, binary first so that a
    /// checksum is never visible without the file it describes. The record is
    /// only written (by the caller) once every object is in place.
    pub async fn publish(&self, build_key: &str, os: &str, binary: &Path) -> Result<Artifact, PublishError> {
        let paths = ArtifactPaths::new(build_key, os)?;
        // Hashing, signing and the upload each read the whole file: do them at once.
        let (hashed, signature, put) = tokio::join!(
            sha256_file(binary),
            self.signer.sign_file_async(binary),
            self.storage.put_file(&paths.binary, binary)
        );
        let ((sha256, size), signature, ()) = (hashed?, signature?, put?);
        let file_name = crate::spec::binary_name(os).to_string();
        let (checksum, signature) = tokio::join!(
            self.storage.put_bytes(&paths.sha256, Bytes::from(format!("{sha256}  {file_name}\n"))),
            self.storage.put_bytes(&paths.signature, Bytes::from(signature))
        );
        checksum.and(signature)?;
        Ok(Artifact { path: paths.binary, file_name, size, sha256, signature: Some(paths.signature) })
    }

    /// Stores the SBOMs and the provenance beside the binary, each with its
    /// minisign signature (document first, as for the binary), all at once;
    /// returns the artifact record's `documents`.
    pub async fn publish_documents(&self, build_key: &str, os: &str, docs: &Documents) -> Result<RecordedDocuments, PublishError> {
        let paths = ArtifactPaths::new(build_key, os)?;
        let one = |doc: Document, bytes: &[u8]| {
            let path = paths.document(doc).to_string();
            let signed = self.signer.sign_bytes(doc.file_name(), bytes);
            let data = Bytes::copy_from_slice(bytes);
            async move {
                let signature = signed?;
                let stored = StoredDocument {
                    signature: signature_of(&path),
                    sha256: hex::encode(Sha256::digest(&data)),
                    size: data.len() as u64,
                    path,
                };
                self.storage.put_bytes(&stored.path, data).await?;
                self.storage.put_bytes(&stored.signature, Bytes::from(signature)).await?;
                Ok::<_, PublishError>((doc, stored))
            }
        };
        let stored = futures::future::try_join_all([
            one(Document::SbomCycloneDx, &docs.cyclonedx),
            one(Document::SbomSpdx, &docs.spdx),
            one(Document::Provenance, &docs.provenance),
        ])
        .await?;
        let mut record = RecordedDocuments::default();
        for (doc, d) in stored {
            record.set(doc, d);
        }
        Ok(record)
    }

    /// Deletes what `publish` stored for a build whose binary turned out unusable.
    pub async fn unpublish(&self, build_key: &str, os: &str) {
        let Ok(paths) = ArtifactPaths::new(build_key, os) else { return };
        if let Err(e) = self.storage.delete_prefix(&paths.dir).await {
            tracing::warn!(build_key, error = %e, "cannot delete the objects of an unverified binary; retention removes them later");
        }
    }
}

/// Lowercase hex sha256 and size of a file.
pub async fn sha256_file(path: &Path) -> Result<(String, u64), StorageError> {
    let owned = path.to_path_buf();
    let hashed = crate::blocking::io(move || {
        let mut f = std::fs::File::open(&owned)?;
        let (mut hasher, mut buf, mut size) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((hex::encode(&hasher.finalize()[..]), size))
    })
    .await;
    hashed.map_err(|source| StorageError::Io { path: path.display().to_string(), source })
}

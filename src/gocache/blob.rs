//! The form of a shared cache object in the store: a header line naming the
//! SHA-256 of the content, then the content. Reading checks the content against
//! it, so a truncated, bit-flipped or swapped object is found out and treated
//! as a miss. For a build cache entry that hash is Go's output ID (Go computes
//! output IDs as the SHA-256 of the content), checked against the one the cache
//! program announced when it put the entry.

use bytes::Bytes;
use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"cbs-blob1 ";
/// Header: magic, 64 hex digits, newline.
const HEADER_LEN: usize = MAGIC.len() + 64 + 1;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("not a shared cache object (bad header)")]
    Header,
    #[error("content does not hash to {0}")]
    Mismatch(String),
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The stored form of `content`.
pub fn seal(content: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(HEADER_LEN + content.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(sha256_hex(content).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(content);
    out.into()
}

/// The content of a stored object and its hash, if the content matches it.
pub fn open(stored: &Bytes) -> Result<(String, Bytes), BlobError> {
    if stored.len() < HEADER_LEN || !stored.starts_with(MAGIC) || stored[HEADER_LEN - 1] != b'\n' {
        return Err(BlobError::Header);
    }
    let named = std::str::from_utf8(&stored[MAGIC.len()..HEADER_LEN - 1]).map_err(|_| BlobError::Header)?;
    let content = stored.slice(HEADER_LEN..);
    if sha256_hex(&content) != named {
        return Err(BlobError::Mismatch(named.to_string()));
    }
    Ok((named.to_string(), content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_content_opens_and_any_change_is_found() {
        let sealed = seal(b"object file");
        let (hash, content) = open(&sealed).unwrap();
        assert_eq!((hash.as_str(), &content[..]), (sha256_hex(b"object file").as_str(), &b"object file"[..]));
        let mut flipped = sealed.to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(open(&flipped.into()), Err(BlobError::Mismatch(_))));
        assert_eq!(open(&sealed.slice(..sealed.len() - 1)).unwrap_err(), BlobError::Mismatch(hash));
        assert_eq!(open(&Bytes::from_static(b"cbs-blob1 short\n")).unwrap_err(), BlobError::Header);
        assert!(open(&seal(b"")).is_ok());
    }
}

//! The checksum database's signed notes (golang.org/x/mod/sumdb/note): a text
//! ending in a newline, a blank line, then lines `— <name> <base64(key hash ‖
//! ed25519 signature)>`. A verifier key is `<name>+<key hash, 8 hex>+<base64(1
//! ‖ 32-byte ed25519 public key)>`; the key hash is the first 4 bytes of
//! sha256(`<name>\n` ‖ 1 ‖ public key). A note counts as signed when one of its
//! signatures is by the key's name and hash and verifies over the text.

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The algorithm byte of ed25519 keys in note verifier keys.
const ALG_ED25519: u8 = 1;
/// Go's built-in key of the public checksum database (cmd/go knownGOSUMDB).
pub const SUM_GOLANG_ORG: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed checksum database key {0:?}")]
    BadKey(String),
    #[error("malformed signed note")]
    Malformed,
    #[error("the note carries no signature by {0} that verifies")]
    Unverified(String),
}

/// A checksum database's public key.
#[derive(Debug, Clone)]
pub struct NoteVerifier {
    pub name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let bad = || NoteError::BadKey(vkey.to_string());
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
        let hash: [u8; 4] = hex::decode(hash).ok().and_then(|h| h.try_into().ok()).ok_or_else(bad)?;
        let key = base64::engine::general_purpose::STANDARD.decode(key).map_err(|_| bad())?;
        let (Some(&ALG_ED25519), Ok(raw)) = (key.first(), <[u8; 32]>::try_from(&key[1.min(key.len())..])) else { return Err(bad()) };
        if name.is_empty() || key_hash(name, &key) != hash {
            return Err(bad());
        }
        Ok(NoteVerifier { name: name.to_string(), hash, key: VerifyingKey::from_bytes(&raw).map_err(|_| bad())? })
    }

    /// Verifies a signed note; returns its text.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed)?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("— ") else { return Err(NoteError::Malformed) };
            let Some((name, sig)) = rest.split_once(' ') else { return Err(NoteError::Malformed) };
            if name != self.name {
                continue;
            }
            let sig = base64::engine::general_purpose::STANDARD.decode(sig).map_err(|_| NoteError::Malformed)?;
            if sig.len() != 4 + 64 || sig[..4] != self.hash {
                continue;
            }
            let signature = Signature::from_slice(&sig[4..]).map_err(|_| NoteError::Malformed)?;
            if self.key.verify(text.as_bytes(), &signature).is_ok() {
                return Ok(text);
            }
        }
        Err(NoteError::Unverified(self.name.clone()))
    }
}

fn key_hash(name: &str, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key);
    h.finalize()[..4].try_into().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup answer of sum.golang.org as served (the tree note part).
    const TREE: &str = "go.sum database tree\n66332798\nczPocWFmMwQrSENohgEPvFiqA+2i/3lRZhHbxtma2UQ=\n\n— sum.golang.org Az3grh19zTBOmg0dGOAELF5SP1N/QTSsuYwquERee13uccsbttgwVlS/0MhlHd7IEvb6fQVKmu7XFovf0PT1tKOnHQo=\n";

    #[test]
    fn verifies_sum_golang_org_notes_and_refuses_altered_ones() {
        let v = NoteVerifier::parse(SUM_GOLANG_ORG).unwrap();
        assert_eq!(v.name, "sum.golang.org");
        assert!(v.open(TREE).unwrap().starts_with("go.sum database tree\n66332798\n"));
        let altered = TREE.replace("66332798", "66332799");
        assert_eq!(v.open(&altered), Err(NoteError::Unverified("sum.golang.org".into())));
        assert!(v.open("no signature here").is_err());
        assert!(NoteVerifier::parse("sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").is_err(), "wrong key hash");
        assert!(NoteVerifier::parse("sum.golang.org").is_err());
    }
}

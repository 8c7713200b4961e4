//! `signing:`: the minisign key that signs every artifact.

use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// minisign secret key file (unencrypted); generated on first start when absent.
    pub secret_key_path: String,
    /// Where the matching public key is written and read from.
    pub public_key_path: String,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self { secret_key_path: ".data/minisign.key".into(), public_key_path: ".data/minisign.pub".into() }
    }
}

impl SigningConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.secret_key_path.trim().is_empty() {
            return Err(invalid("signing.secret_key_path", "must not be empty"));
        }
        if self.public_key_path.trim().is_empty() {
            return Err(invalid("signing.public_key_path", "must not be empty"));
        }
        if self.public_key_path == self.secret_key_path {
            return Err(invalid("signing.public_key_path", "must differ from signing.secret_key_path"));
        }
        Ok(())
    }
}

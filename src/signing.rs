//! minisign signatures for published binaries, so users can check that a binary
//! came from this server: `minisign -Vm caddy -P <public key>`.
//!
//! The ed25519 secret key lives in `signing.secret_key_path` (minisign's own
//! unencrypted format). On first start it does not exist yet: a key pair is
//! generated, the secret key written with mode 0600 and the public key written
//! to `signing.public_key_path`, from where the api serves it. Processes that
//! start at once on one host agree on a single key: the secret key file is
//! published with a no-clobber link, and the loser reads the winner's key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

use crate::config::SigningConfig;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("signing key file {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
    #[error("signing key file {path} is not an unencrypted minisign secret key: {message}")]
    BadKey { path: String, message: String },
    #[error("signing {path}: {message}")]
    Sign { path: String, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SigningError + '_ {
    move |source| SigningError::Io { path: path.display().to_string(), source }
}

/// Signs files with the server's key. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

struct Inner {
    sk: SecretKey,
    pk: PublicKey,
    /// The public key file's text (`untrusted comment: ...` and the base64 line).
    public_key_file: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the configured secret key, generating the key pair on first start,
    /// and (re)writes the public key file when it is missing or does not match.
    pub fn load_or_generate(cfg: &SigningConfig) -> Result<Signer, SigningError> {
        let sk_path = PathBuf::from(&cfg.secret_key_path);
        let sk = match std::fs::read_to_string(&sk_path) {
            Ok(text) => parse_secret_key(&sk_path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(&sk_path)?,
            Err(e) => return Err(io_err(&sk_path)(e)),
        };
        let bad = |message: String| SigningError::BadKey { path: sk_path.display().to_string(), message };
        let pk = PublicKey::from_secret_key(&sk).map_err(|e| bad(e.to_string()))?;
        let public_key_file = pk.to_box().map_err(|e| bad(e.to_string()))?.into_string();
        let pk_path = Path::new(&cfg.public_key_path);
        if std::fs::read_to_string(pk_path).ok().as_deref() != Some(public_key_file.as_str()) {
            tracing::info!(path = %pk_path.display(), "writing the signing public key");
            write_atomically(pk_path, public_key_file.as_bytes(), 0o644)?;
        }
        Ok(Signer { inner: Arc::new(Inner { sk, pk, public_key_file }) })
    }

    /// The public key as users pass it to `minisign -P`: one base64 line.
    pub fn public_key(&self) -> String {
        self.inner.pk.to_base64()
    }

    /// The public key file's text, as written to `signing.public_key_path` and as
    /// `minisign -p FILE` reads it.
    pub fn public_key_file(&self) -> &str {
        &self.inner.public_key_file
    }

    /// The key id minisign prints (16 hex digits), for logs and the api.
    pub fn key_id(&self) -> String {
        let id = self.inner.pk.keynum();
        id.iter().rev().map(|b| format!("{b:02X}")).collect()
    }

    /// Signs a file and returns the contents of its `.minisig` file. Reads the
    /// whole file, so call it from `spawn_blocking` for large ones.
    pub fn sign_file(&self, path: &Path) -> Result<Vec<u8>, SigningError> {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.sign_reader(&name, std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(|message| SigningError::Sign { path: path.display().to_string(), message })
    }

    /// Signs a small document held in memory (an SBOM, the provenance) as the
    /// file `name`, the way [`Signer::sign_file`] signs a file.
    pub fn sign_bytes(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, SigningError> {
        self.sign_reader(name, std::io::Cursor::new(data)).map_err(|message| SigningError::Sign { path: name.to_string(), message })
    }

    /// The `.minisig` text for `data`, whose trusted comment names the file and the time.
    fn sign_reader(&self, name: &str, data: impl std::io::Read) -> Result<Vec<u8>, String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let trusted = format!("timestamp:{now}\tfile:{name}");
        let untrusted = format!("signature from caddy-build-server key {}", self.key_id());
        let sig = minisign::sign(Some(&self.inner.pk), &self.inner.sk, data, Some(&trusted), Some(&untrusted)).map_err(|e| e.to_string())?;
        Ok(sig.into_string().into_bytes())
    }

    /// [`Signer::sign_file`] on the blocking pool, for async callers (the worker's
    /// publish step).
    pub async fn sign_file_async(&self, path: &Path) -> Result<Vec<u8>, SigningError> {
        let (signer, owned) = (self.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || signer.sign_file(&owned))
            .await
            .unwrap_or_else(|e| Err(SigningError::Sign { path: path.display().to_string(), message: e.to_string() }))
    }
}

fn parse_secret_key(path: &Path, text: &str) -> Result<SecretKey, SigningError> {
    let bad = |message: String| SigningError::BadKey { path: path.display().to_string(), message };
    let sk_box = SecretKeyBox::from_string(text).map_err(|e| bad(e.to_string()))?;
    let sk = sk_box.into_unencrypted_secret_key().map_err(|e| bad(e.to_string()))?;
    if sk.is_encrypted() {
        return Err(bad("the key is password-protected; the server needs an unencrypted key".into()));
    }
    Ok(sk)
}

/// Generates a key pair and publishes the secret key without clobbering one that
/// another process wrote meanwhile; returns whichever key ended up in the file.
fn generate(path: &Path) -> Result<SecretKey, SigningError> {
    let bad = |message: String| SigningError::BadKey { path: path.display().to_string(), message };
    let pair = KeyPair::generate_unencrypted_keypair().map_err(|e| bad(e.to_string()))?;
    let text = pair.sk.to_box(Some("caddy-build-server signing key")).map_err(|e| bad(e.to_string()))?.into_string();
    let tmp = write_temp(path, text.as_bytes(), 0o600)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new signing key");
            Ok(pair.sk)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io_err(path))?;
            parse_secret_key(path, &text)
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `data` to a synced temp file beside `path` and returns its path.
fn write_temp(path: &Path, data: &[u8], mode: u32) -> Result<PathBuf, SigningError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".tmp-key-{}-{}", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    Ok(tmp)
}

fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), SigningError> {
    let tmp = write_temp(path, data, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

//! Signatures checked by the real `minisign` tool from Debian's packages, the way
//! a user checks a download: `minisign -Vm caddy -P <public key>`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use caddy_build_server::config::SigningConfig;
use caddy_build_server::signing::Signer;
use support::tempdir::TempDir;

fn config(dir: &Path) -> SigningConfig {
    SigningConfig {
        secret_key_path: dir.join("keys/minisign.key").display().to_string(),
        public_key_path: dir.join("keys/minisign.pub").display().to_string(),
    }
}

/// Runs `minisign -V` and returns whether it accepted the signature.
fn minisign_verifies(file: &Path, key_args: &[&str]) -> bool {
    let out = Command::new("minisign")
        .arg("-V")
        .arg("-m")
        .arg(file)
        .args(key_args)
        .output()
        .expect("the minisign tool is installed (scripts/ensure-deps.sh installs it from Debian's packages)");
    out.status.success()
}

#[test]
fn first_start_generates_a_key_pair_that_later_starts_reuse() {
    let dir = TempDir::new("signing");
    let cfg = config(&dir);
    let signer = Signer::load_or_generate(&cfg).unwrap();
    let mode = std::fs::metadata(&cfg.secret_key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the secret key is readable by its owner only");
    let pub_file = std::fs::read_to_string(&cfg.public_key_path).unwrap();
    assert_eq!(pub_file, signer.public_key_file());
    assert!(pub_file.contains(&signer.public_key()) && pub_file.contains(&signer.key_id()), "{pub_file}");

    let again = Signer::load_or_generate(&cfg).unwrap();
    assert_eq!(again.public_key(), signer.public_key(), "the key is kept across starts");

    // A lost public key file is written again from the secret key.
    std::fs::remove_file(&cfg.public_key_path).unwrap();
    let third = Signer::load_or_generate(&cfg).unwrap();
    assert_eq!(third.public_key(), signer.public_key());
    assert_eq!(std::fs::read_to_string(&cfg.public_key_path).unwrap(), pub_file);
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("keys")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temp files left behind: {leftovers:?}");
}

#[test]
fn processes_starting_together_agree_on_one_key() {
    let dir = TempDir::new("signing");
    let cfg = config(&dir);
    let keys: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| Signer::load_or_generate(&cfg).unwrap().public_key())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
    assert_eq!(Signer::load_or_generate(&cfg).unwrap().public_key(), keys[0]);
}

#[test]
fn minisign_accepts_the_signature_and_rejects_a_flipped_byte() {
    let dir = TempDir::new("signing");
    let cfg = config(&dir);
    let signer = Signer::load_or_generate(&cfg).unwrap();
    let binary = dir.join("caddy");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&binary, &data).unwrap();
    let sig = signer.sign_file(&binary).unwrap();
    std::fs::write(dir.join("caddy.minisig"), &sig).unwrap();
    let text = String::from_utf8(sig).unwrap();
    assert!(text.contains("trusted comment: timestamp:") && text.contains("file:caddy"), "{text}");

    let pk = signer.public_key();
    assert!(minisign_verifies(&binary, &["-P", &pk]), "minisign -Vm caddy -P <key> accepts it");
    assert!(minisign_verifies(&binary, &["-p", &cfg.public_key_path]), "and with the public key file");

    let mut flipped = data.clone();
    flipped[1_234_567] ^= 0x01;
    std::fs::write(&binary, &flipped).unwrap();
    assert!(!minisign_verifies(&binary, &["-P", &pk]), "one flipped bit fails verification");

    std::fs::write(&binary, &data).unwrap();
    let other = Signer::load_or_generate(&config(&dir.join("other"))).unwrap();
    assert!(!minisign_verifies(&binary, &["-P", &other.public_key()]), "another key does not verify it");
}

#[test]
fn a_damaged_secret_key_is_an_error_not_a_new_key() {
    let dir = TempDir::new("signing");
    let cfg = config(&dir);
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(&cfg.secret_key_path, "untrusted comment: x\nnot base64\n").unwrap();
    let e = Signer::load_or_generate(&cfg).unwrap_err().to_string();
    assert!(e.contains("minisign.key"), "{e}");
    assert_eq!(std::fs::read_to_string(&cfg.secret_key_path).unwrap(), "untrusted comment: x\nnot base64\n");
}

#[tokio::test]
async fn async_callers_get_the_same_kind_of_signature() {
    let dir = TempDir::new("signing");
    let signer = Signer::load_or_generate(&config(&dir)).unwrap();
    let binary = dir.join("caddy.exe");
    std::fs::write(&binary, b"MZ not really a windows binary").unwrap();
    let sig = signer.sign_file_async(&binary).await.unwrap();
    std::fs::write(dir.join("caddy.exe.minisig"), &sig).unwrap();
    assert!(minisign_verifies(&binary, &["-P", &signer.public_key()]));
    assert!(signer.sign_file_async(&dir.join("missing")).await.is_err());
}

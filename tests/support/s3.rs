//! Test support for the S3 backend: the MinIO server `make test` starts
//! (scripts/test-env.sh exports where it is) and a fresh bucket per test, so
//! tests running in parallel never see each other's objects.

use caddy_build_server::config::S3Config;
use caddy_build_server::storage::S3Storage;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test`, which starts a throwaway MinIO S3 server")
    })
}

/// Settings for a bucket on the test server that does not exist yet.
pub fn config() -> S3Config {
    S3Config {
        bucket: format!("cbs-test-{:016x}", rand::random::<u64>()),
        region: env("CBS_TEST_S3_REGION"),
        endpoint: env("CBS_TEST_S3_ENDPOINT"),
        path_style: true,
        access_key: env("CBS_TEST_S3_ACCESS_KEY"),
        secret_key: env("CBS_TEST_S3_SECRET_KEY"),
        ..S3Config::default()
    }
}

/// A storage on a new, empty bucket.
pub async fn storage() -> (S3Storage, S3Config) {
    let cfg = config();
    let s = S3Storage::new(&cfg).unwrap();
    s.create_bucket_if_missing().await.unwrap();
    s.check().await.unwrap();
    (s, cfg)
}

/// A raw rust-s3 handle on the same bucket, to look at what the backend stored.
pub fn raw_bucket(cfg: &S3Config) -> Box<s3::Bucket> {
    let region = s3::Region::Custom { region: cfg.region.clone(), endpoint: cfg.endpoint.clone() };
    let creds = s3::creds::Credentials::new(Some(&cfg.access_key), Some(&cfg.secret_key), None, None, None).unwrap();
    s3::Bucket::new(&cfg.bucket, region, creds).unwrap().with_path_style()
}

/// Deterministic bytes that do not compress, of the given length.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs MinIO's `mc` client against the test server (alias `cbs`) with a
/// private config dir; panics with its output when it fails.
pub fn mc(args: &[&str]) -> String {
    let endpoint = env("CBS_TEST_S3_ENDPOINT");
    let (scheme, host) = endpoint.split_once("://").expect("endpoint is a URL");
    let alias = format!("{scheme}://{}:{}@{host}", env("CBS_TEST_S3_ACCESS_KEY"), env("CBS_TEST_S3_SECRET_KEY"));
    let config_dir = std::env::temp_dir().join(format!("cbs-mc-{}", std::process::id()));
    let out = std::process::Command::new(env("CBS_TEST_MC"))
        .arg("--config-dir")
        .arg(&config_dir)
        .arg("--quiet")
        .args(args)
        .env("MC_HOST_cbs", alias)
        .output()
        .expect("run mc");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mc {args:?}: {text}");
    text
}

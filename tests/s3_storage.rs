//! The S3 backend against a real S3 server (MinIO, started by `make test`):
//! put/get/range/delete, presigned URLs fetched with a plain HTTP client,
//! multipart uploads that stay invisible until complete, and start-up checks.

mod support;

use std::time::Duration;

use bytes::Bytes;
use caddy_build_server::config::{Config, StorageBackend};
use caddy_build_server::storage::{self, S3Storage, Storage, StorageError};
use futures::TryStreamExt;
use support::s3::{payload, raw_bucket};
use support::tempdir::TempDir;
use sha2::{Digest, Sha256};

async fn read_range(s: &S3Storage, path: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>, StorageError> {
    let chunks: Vec<Bytes> = s.get(path, Some(range)).await?.try_collect().await.unwrap();
    Ok(chunks.concat())
}

#[tokio::test]
async fn put_get_range_delete() {
    let (s, _) = support::s3::storage().await;
    let key = "builds/ab/abcd/caddy";
    s.put_bytes(key, Bytes::from_static(b"hello world")).await.unwrap();
    assert_eq!(s.size(key).await.unwrap(), Some(11));
    assert_eq!(&s.get_bytes(key).await.unwrap()[..], b"hello world");
    assert_eq!(read_range(&s, key, 6..11).await.unwrap(), b"world");
    assert_eq!(read_range(&s, key, 0..1).await.unwrap(), b"h");
    assert_eq!(read_range(&s, key, 4..4).await.unwrap(), b"");
    assert!(matches!(read_range(&s, key, 5..20).await, Err(StorageError::BadRange { size: 11 })));
    assert!(matches!(read_range(&s, key, 12..13).await, Err(StorageError::BadRange { size: 11 })));

    assert_eq!(s.size("builds/ab/none/caddy").await.unwrap(), None);
    assert!(matches!(s.get("builds/ab/none/caddy", None).await, Err(StorageError::NotFound(_))));
    assert!(matches!(s.get("builds/ab/none/caddy", Some(0..1)).await, Err(StorageError::NotFound(_))));
    assert!(matches!(s.size("../x").await, Err(StorageError::BadPath(_))));
    assert!(matches!(s.put_bytes("/abs", Bytes::new()).await, Err(StorageError::BadPath(_))));

    // A build directory goes as a whole; a sibling whose name merely starts the
    // same way stays.
    s.put_bytes("builds/ab/abcd/caddy.sha256", Bytes::from_static(b"x")).await.unwrap();
    s.put_bytes("builds/ab/abcd/caddy.minisig", Bytes::from_static(b"y")).await.unwrap();
    s.put_bytes("builds/ab/abcdef/caddy", Bytes::from_static(b"z")).await.unwrap();
    assert_eq!(s.delete_prefix("builds/ab/abcd").await.unwrap(), 3);
    assert_eq!(s.size(key).await.unwrap(), None);
    assert_eq!(s.size("builds/ab/abcd/caddy.sha256").await.unwrap(), None);
    assert_eq!(s.size("builds/ab/abcdef/caddy").await.unwrap(), Some(1));
    assert_eq!(s.delete_prefix("builds/ab/abcd").await.unwrap(), 0, "deleting again finds nothing");
    assert_eq!(s.delete_prefix("builds/ab/abcdef/caddy").await.unwrap(), 1, "a single object by its path");
}

#[tokio::test]
async fn large_binaries_go_up_in_parts_and_appear_only_when_complete() {
    let tmp = TempDir::new("s3");
    let (s, cfg) = support::s3::storage().await;
    let data = payload(30 * 1024 * 1024 + 12345, 7);
    let file = tmp.join("large");
    std::fs::write(&file, &data).unwrap();
    let key = "builds/cd/cdef/caddy";

    let s = std::sync::Arc::new(s);
    let upload = tokio::spawn({
        let (s, file) = (s.clone(), file.clone());
        async move { s.put_file(key, &file).await }
    });
    // Readers during the upload see no object at all, or (once S3 completed it,
    // just before the task returns) all of it: never a part.
    let mut absent = 0;
    while !upload.is_finished() {
        match s.size(key).await.unwrap() {
            None => absent += 1,
            Some(n) => assert_eq!(n, data.len() as u64, "a partial object was visible"),
        }
    }
    upload.await.unwrap().unwrap();
    assert!(absent >= 2, "looked {absent} times while the upload ran");
    assert_eq!(s.size(key).await.unwrap(), Some(data.len() as u64));

    let (head, _) = raw_bucket(&cfg).head_object(key).await.unwrap();
    let etag = head.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-2"), "a multipart upload of two parts, ETag {etag}");
    let uploads = raw_bucket(&cfg).list_multiparts_uploads(None, None).await.unwrap();
    assert!(uploads.iter().all(|u| u.uploads.is_empty()), "no unfinished multipart upload left");

    let back: Vec<Bytes> = s.get(key, None).await.unwrap().try_collect().await.unwrap();
    let back = back.concat();
    assert_eq!(back.len(), data.len());
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data));
    let tail = read_range(&s, key, (data.len() - 100) as u64..data.len() as u64).await.unwrap();
    assert_eq!(tail, &data[data.len() - 100..]);
    let middle = read_range(&s, key, 16_776_000..16_778_000).await.unwrap();
    assert_eq!(middle, &data[16_776_000..16_778_000], "a range across a part boundary");
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn a_failed_upload_leaves_nothing_behind() {
    let tmp = TempDir::new("s3");
    let (s, cfg) = support::s3::storage().await;
    let missing = tmp.join("missing");
    assert!(matches!(s.put_file("builds/ef/ef01/caddy", &missing).await, Err(StorageError::Io { .. })));
    assert_eq!(s.size("builds/ef/ef01/caddy").await.unwrap(), None);

    // A bucket that does not exist: the upload fails and says so.
    let mut gone = cfg.clone();
    gone.bucket = format!("{}-gone", cfg.bucket);
    let file = tmp.join("gone");
    std::fs::write(&file, payload(17 * 1024 * 1024, 3)).unwrap();
    let err = S3Storage::new(&gone).unwrap().put_file("builds/ef/ef02/caddy", &file).await.unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err}");

    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn presigned_urls_work_with_a_plain_http_client_and_expire() {
    let (s, _) = support::s3::storage().await;
    let key = "builds/12/1234/caddy";
    let data = payload(100_000, 11);
    s.put_bytes(key, Bytes::from(data.clone())).await.unwrap();
    let http = reqwest::Client::new();

    let url = s.presigned_url(key, Duration::from_secs(60)).await.unwrap().expect("S3 signs URLs");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), data);
    let resp = http.get(&url).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(resp.status(), 206, "clients can resume through the presigned URL");
    assert_eq!(resp.bytes().await.unwrap(), &data[10..20]);

    let tampered = url.replace("builds/12/1234/caddy", "builds/12/1234/caddy.sha256");
    assert_eq!(http.get(&tampered).send().await.unwrap().status(), 403, "the signature covers the path");

    let short = s.presigned_url(key, Duration::from_secs(1)).await.unwrap().unwrap();
    // The URL's expiry is the S3 server's clock against the signature's time:
    // nothing to wait on but that time.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(http.get(&short).send().await.unwrap().status(), 403, "an expired URL is refused");
}

fn s3_yaml(bucket: &str, secret_expr: &str) -> String {
    format!(
        r#"
storage:
  backend: s3
  s3:
    bucket: {bucket}
    region: '{{{{ env("CBS_TEST_S3_REGION") }}}}'
    endpoint: '{{{{ env("CBS_TEST_S3_ENDPOINT") }}}}'
    access_key: '{{{{ env("CBS_TEST_S3_ACCESS_KEY") }}}}'
    secret_key: '{secret_expr}'
    redirect: true
    presign_ttl: 10m
"#
    )
}

#[tokio::test]
async fn configured_from_the_environment_and_checked_at_start() {
    let (_, cfg) = support::s3::storage().await;
    let config = Config::from_yaml(&s3_yaml(&cfg.bucket, r#"{{ env("CBS_TEST_S3_SECRET_KEY") }}"#)).unwrap();
    assert_eq!(config.storage.backend, StorageBackend::S3);
    assert_eq!(config.storage.s3.secret_key, cfg.secret_key, "credentials come from the environment");
    assert!(config.storage.s3.redirect);
    let s = storage::from_config(&config.storage).await.unwrap();
    s.put_bytes("builds/34/3456/caddy", Bytes::from_static(b"via config")).await.unwrap();
    // Another process (another api on another host) reads what this one wrote.
    let other = storage::from_config(&config.storage).await.unwrap();
    assert_eq!(&other.get_bytes("builds/34/3456/caddy").await.unwrap()[..], b"via config");

    let wrong = Config::from_yaml(&s3_yaml(&cfg.bucket, "not-the-secret")).unwrap();
    let e = storage::from_config(&wrong.storage).await.err().expect("bad credentials stop start-up").to_string();
    assert!(e.contains("bucket"), "{e}");
    let missing = Config::from_yaml(&s3_yaml("cbs-no-such-bucket", r#"{{ env("CBS_TEST_S3_SECRET_KEY") }}"#)).unwrap();
    let e = storage::from_config(&missing.storage).await.err().expect("a missing bucket stops start-up").to_string();
    assert!(e.contains("cbs-no-such-bucket") && e.contains("does not exist"), "{e}");
}

#[tokio::test]
async fn credentials_scoped_to_one_bucket_are_enough() {
    let tmp = TempDir::new("s3");
    let (_, admin_cfg) = support::s3::storage().await;
    let bucket = &admin_cfg.bucket;
    let user = format!("cbs-scoped-{:08x}", rand::random::<u32>());
    let secret = format!("{:032x}", rand::random::<u128>());
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
             "Resource": [format!("arn:aws:s3:::{bucket}")]},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                           "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": [format!("arn:aws:s3:::{bucket}/*")]}
        ]
    });
    let policy_file = tmp.join(format!("{user}.json"));
    std::fs::write(&policy_file, policy.to_string()).unwrap();
    let policy_path = policy_file.display().to_string();
    tokio::task::spawn_blocking({
        let (user, secret) = (user.clone(), secret.clone());
        move || {
            support::s3::mc(&["admin", "user", "add", "cbs", &user, &secret]);
            support::s3::mc(&["admin", "policy", "create", "cbs", &user, &policy_path]);
            support::s3::mc(&["admin", "policy", "attach", "cbs", &user, "--user", &user]);
        }
    })
    .await
    .unwrap();
    std::fs::remove_file(policy_file).unwrap();

    let mut cfg = admin_cfg.clone();
    cfg.access_key = user;
    cfg.secret_key = secret;
    let s = S3Storage::new(&cfg).unwrap();
    s.check().await.expect("the start-up check needs no ListBuckets permission");
    let file = tmp.join("scoped");
    std::fs::write(&file, payload(17 * 1024 * 1024, 5)).unwrap();
    s.put_file("builds/56/5678/caddy", &file).await.expect("a multipart upload with scoped credentials");
    std::fs::remove_file(file).unwrap();
    assert_eq!(s.size("builds/56/5678/caddy").await.unwrap(), Some(17 * 1024 * 1024));
    assert!(s.presigned_url("builds/56/5678/caddy", Duration::from_secs(60)).await.unwrap().is_some());
    assert_eq!(s.delete_prefix("builds/56/5678").await.unwrap(), 1);

    let mut elsewhere = cfg.clone();
    elsewhere.bucket = support::s3::storage().await.1.bucket;
    let e = S3Storage::new(&elsewhere).unwrap().check().await.unwrap_err().to_string();
    assert!(e.contains("403") || e.contains("Access Denied"), "another bucket is refused: {e}");
}

#[tokio::test]
async fn a_file_of_whole_parts_and_one_just_below_a_part() {
    let tmp = TempDir::new("s3");
    let (s, cfg) = support::s3::storage().await;
    for (len, parts) in [(32 * 1024 * 1024, "-2"), (16 * 1024 * 1024 - 1, "")] {
        let data = payload(len, len as u64);
        let file = tmp.join("exact");
        std::fs::write(&file, &data).unwrap();
        let key = format!("builds/78/{len}/caddy");
        s.put_file(&key, &file).await.unwrap();
        std::fs::remove_file(file).unwrap();
        let (head, _) = raw_bucket(&cfg).head_object(&key).await.unwrap();
        let etag = head.e_tag.unwrap_or_default();
        let etag = etag.trim_matches('"');
        if parts.is_empty() {
            assert!(!etag.contains('-'), "one plain PUT below the part size, ETag {etag}");
        } else {
            assert!(etag.ends_with(parts), "no empty trailing part, ETag {etag}");
        }
        let back: Vec<Bytes> = s.get(&key, None).await.unwrap().try_collect().await.unwrap();
        assert_eq!(Sha256::digest(back.concat()), Sha256::digest(&data), "{len} bytes round trip");
    }
}

//! S3 throughput on a real MinIO server (run with `make bench`): upload and
//! download of a 40 MB artifact through our backend (`S3Storage::put_file`,
//! `get` streamed to a file) against MinIO's own client (`mc cp`, built by
//! scripts/minio.sh) on the same file and server. Target: ours at ≥ 0.8 of mc.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use caddy_build_server::storage::Storage;
use futures::TryStreamExt;
use support::s3::mc;
use tokio::io::AsyncWriteExt;

const SIZE: usize = 40 * 1000 * 1000;
/// The quick check under `cargo test` still spans two multipart parts (16 MiB each).
const QUICK_SIZE: usize = 20 * 1000 * 1000;
const ROUNDS: usize = 5;
const TARGET: f64 = 0.8;

fn mbps(size: usize, d: Duration) -> f64 {
    size as f64 / 1e6 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU seconds used so far by this process and by its waited-for children
/// (`mc`), from /proc: the machine is shared, so CPU per transfer is the figure
/// that load on other cores does not move.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<f64> = stat.rsplit_once(')').unwrap().1.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of stat(5), counted from 3 after the command name.
    ((f[11] + f[12]) / 100.0, (f[13] + f[14]) / 100.0)
}

#[derive(Default)]
struct Runs {
    wall: Vec<Duration>,
    cpu: f64,
}

impl Runs {
    async fn time<F: Future<Output = ()>>(&mut self, child: bool, f: F) {
        let c0 = cpu_seconds();
        let t = Instant::now();
        f.await;
        self.wall.push(t.elapsed());
        let c1 = cpu_seconds();
        self.cpu += if child { c1.1 - c0.1 } else { c1.0 - c0.0 };
    }
}

async fn ours_download(s: &caddy_build_server::storage::S3Storage, key: &str, to: &Path, size: usize) {
    let mut f = tokio::fs::File::create(to).await.unwrap();
    let mut stream = s.get(key, None).await.unwrap();
    while let Some(chunk) = stream.try_next().await.unwrap() {
        f.write_all(&chunk).await.unwrap();
    }
    f.flush().await.unwrap();
    assert_eq!(f.metadata().await.unwrap().len(), size as u64);
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` one quick
    // round checks that the benchmark still works, without judging the figures.
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { ROUNDS } else { 1 };
    let size = if full { SIZE } else { QUICK_SIZE };
    let (s, cfg) = support::s3::storage().await;
    let dir = support::tempdir::TempDir::new("bench-s3");
    let file = dir.join("caddy");
    std::fs::write(&file, support::s3::payload(size, 42)).unwrap();
    let bucket = &cfg.bucket;
    let file_s = file.display().to_string();

    let (mut ours_up, mut ours_down, mut mc_up, mut mc_down) =
        (Runs::default(), Runs::default(), Runs::default(), Runs::default());
    // Warm-up round for both, not counted (connections, server caches).
    s.put_file("bench/ours/caddy", &file).await.unwrap();
    mc(&["cp", &file_s, &format!("cbs/{bucket}/bench/mc/caddy")]);
    for round in 0..rounds {
        let key = format!("bench/ours/{round}/caddy");
        ours_up.time(false, async { s.put_file(&key, &file).await.unwrap() }).await;

        let remote = format!("cbs/{bucket}/bench/mc/{round}/caddy");
        mc_up.time(true, async { mc(&["cp", &file_s, &remote]); }).await;

        let out = dir.join(format!("ours-{round}"));
        ours_down.time(false, ours_download(&s, &key, &out, size)).await;
        std::fs::remove_file(out).unwrap();

        let out = dir.join(format!("mc-{round}"));
        let out_s = out.display().to_string();
        mc_down.time(true, async { mc(&["cp", &remote, &out_s]); }).await;
        assert_eq!(std::fs::metadata(&out).unwrap().len(), size as u64);
        std::fs::remove_file(out).unwrap();
    }

    println!("S3 throughput, {} MB artifact, median of {rounds} rounds, MinIO at {}", size / 1_000_000, cfg.endpoint);
    let mut ok = true;
    for (what, ours, theirs) in [("upload", ours_up, mc_up), ("download", ours_down, mc_down)] {
        let (o, m) = (mbps(size, median(ours.wall)), mbps(size, median(theirs.wall)));
        let (oc, mcpu) = (ours.cpu / rounds as f64, theirs.cpu / rounds as f64);
        let ratio = o / m;
        ok &= ratio >= TARGET;
        println!(
            "  {what:<8}  ours {o:7.1} MB/s ({oc:.2} s CPU)   mc cp {m:7.1} MB/s ({mcpu:.2} s CPU)   ratio {ratio:.2} ({})",
            if !full {
                "quick check, not judged: run `make bench`"
            } else if ratio >= TARGET {
                "meets the 0.8 target"
            } else {
                "BELOW the 0.8 target"
            }
        );
    }
    s.delete_prefix("bench").await.unwrap();
    drop(dir);
    if full && !ok {
        std::process::exit(1);
    }
}

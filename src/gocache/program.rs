//! The cache program (`gocacheprog/`, embedded here with the parts of
//! `golang.org/x/mod` it vendors): compiled once per
//! builder image, by a container of that image with the image's own Go (no Go
//! on the host is needed), into the program volume, in a directory named after
//! the source and the image. Build containers mount the volume read-only. A
//! compiled program found in the volume is reused (another worker process on
//! the same host, or an earlier run, compiled it).

use std::path::Path;
use std::time::Duration;

use crate::sandbox::{OneShot, Sandbox, PROGRAM_MOUNT};

use super::GoCacheError;

/// The program's module, file by file (path in the module, content).
const SOURCE: [(&str, &str); 10] = [
    ("go.mod", include_str!("../../gocacheprog/go.mod")),
    ("main.go", include_str!("../../gocacheprog/main.go")),
    ("modseed.go", include_str!("../../gocacheprog/modseed.go")),
    ("vendor/modules.txt", include_str!("../../gocacheprog/vendor/modules.txt")),
    ("vendor/golang.org/x/mod/LICENSE", include_str!("../../gocacheprog/vendor/golang.org/x/mod/LICENSE")),
    ("vendor/golang.org/x/mod/PATENTS", include_str!("../../gocacheprog/vendor/golang.org/x/mod/PATENTS")),
    ("vendor/golang.org/x/mod/sumdb/dirhash/hash.go", include_str!("../../gocacheprog/vendor/golang.org/x/mod/sumdb/dirhash/hash.go")),
    ("vendor/golang.org/x/mod/sumdb/tlog/note.go", include_str!("../../gocacheprog/vendor/golang.org/x/mod/sumdb/tlog/note.go")),
    ("vendor/golang.org/x/mod/sumdb/tlog/tile.go", include_str!("../../gocacheprog/vendor/golang.org/x/mod/sumdb/tlog/tile.go")),
    ("vendor/golang.org/x/mod/sumdb/tlog/tlog.go", include_str!("../../gocacheprog/vendor/golang.org/x/mod/sumdb/tlog/tlog.go")),
];
/// The program's file name in its directory.
const BINARY: &str = "cbs-gocacheprog";
/// Compiling needs the standard library's net/http from an empty cache: about a
/// minute on two busy cores. Generous, since the build waits either way.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A compiled cache program, as the build containers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Absolute path inside the containers.
    pub path: String,
    /// `go env GOVERSION` of the image that compiled it (and builds with it).
    pub go_version: String,
}

/// The program's directory in the volume: a hash of the source and the image id.
fn tag(image_id: &str) -> String {
    let mut all = String::new();
    for (path, text) in SOURCE {
        all.push_str(&format!("{path}\n{text}\n"));
    }
    super::blob::sha256_hex(format!("{all}{image_id}").as_bytes())[..16].to_string()
}

/// Compiles the program for `image_id` unless the volume has it already. The
/// container is named after `build_key`, the build that waits for it.
pub async fn ensure(sandbox: &Sandbox, volume: &str, image_id: &str, build_key: &str, scratch: &Path) -> Result<Program, GoCacheError> {
    let tag = tag(image_id);
    let src = scratch.join(format!("gocacheprog-{tag}-{:08x}", rand::random::<u32>()));
    let io = |e: std::io::Error| GoCacheError::Program(format!("{}: {e}", src.display()));
    for (path, text) in SOURCE {
        let file = src.join(path);
        tokio::fs::create_dir_all(file.parent().unwrap_or(&src)).await.map_err(io)?;
        tokio::fs::write(&file, text).await.map_err(io)?;
    }
    let dir = format!("{PROGRAM_MOUNT}/{tag}");
    // Several workers of a host may compile at once: each in a directory of its
    // own, moved into place unless another was first.
    let script = format!(
        r#"set -eu
d={dir}
if [ ! -x "$d/{BINARY}" ] || [ ! -s "$d/goversion" ]; then
  t="$d.tmp-$SUFFIX"
  rm -rf "$t" && mkdir -p "$t"
  cd /src && go build -mod=vendor -trimpath -o "$t/{BINARY}" .
  go env GOVERSION > "$t/goversion"
  if [ -d "$d" ]; then rm -rf "$t"; else mv "$t" "$d"; fi
fi
cat "$d/goversion""#
    );
    let env = [
        ("PATH", "/usr/local/go/bin:/bin"),
        ("HOME", "/tmp"),
        ("GOPATH", "/tmp/gopath"),
        ("GOCACHE", "/tmp/gocache"),
        ("GOTOOLCHAIN", "local"),
        ("GOTELEMETRY", "off"),
        ("GOPROXY", "off"),
        ("CGO_ENABLED", "0"),
    ];
    let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push(("SUFFIX".into(), format!("{:016x}", rand::random::<u64>())));
    let job = OneShot {
        what: "gocacheprog",
        build_key: build_key.to_string(),
        // The image itself (by id): its Go compiles the program the build will run.
        image: image_id.to_string(),
        cmd: vec!["/bin/sh".into(), "-c".into(), script],
        env,
        // Root in the container (without capabilities) owns the fresh volume's root.
        user: "0:0".into(),
        bind_read_only: vec![(src.display().to_string(), "/src".into())],
        volumes: vec![(volume.to_string(), PROGRAM_MOUNT.to_string())],
        timeout: COMPILE_TIMEOUT,
    };
    let result = sandbox.run_once(&job).await;
    let _ = tokio::fs::remove_dir_all(&src).await;
    let (code, output) = result?;
    let go_version = output.lines().last().unwrap_or_default().trim().to_string();
    if code != 0 || !go_version.starts_with("go") {
        return Err(GoCacheError::Program(format!("compiling the cache program exited with {code}: {}", output.trim())));
    }
    Ok(Program { path: format!("{dir}/{BINARY}"), go_version })
}

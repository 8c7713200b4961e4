//! Go for the tests that run it on the host (`go version -m`, xcaddy): the
//! toolchain of the default builder image, copied out of it, so the tests run
//! the very Go the service builds with and the machine needs no Go of its own.
//! Copied once per image id into Cargo's temp dir for tests and benches
//! (`target/tmp`) and shared by the test processes that follow.
//!
//! Self-contained (std, the library, tokio), so the benches include it too.

use std::path::{Path, PathBuf};
use std::process::Command;

use caddy_build_server::config::Config;
use caddy_build_server::toolchain::{GoVersion, ImageMaker};

/// The default Go's builder image, made from the module proxy's toolchain if
/// the daemon lacks it (as a worker does at start); its name.
pub async fn default_builder_image() -> String {
    let c = Config::default();
    let maker = ImageMaker::new(&c).unwrap();
    maker.ensure(GoVersion::parse(&c.worker.go_version).unwrap()).await.expect("the default builder image").name
}

/// The GOROOT of the default builder image's Go, on the host.
pub async fn goroot() -> PathBuf {
    static GOROOT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    GOROOT
        .get_or_init(|| async {
            let image = default_builder_image().await;
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cbs-go");
            tokio::task::spawn_blocking(move || copy_goroot(&image, &cache)).await.unwrap()
        })
        .await
        .clone()
}

/// The image's `/usr/local/go`, copied under `cache/<image id>/go` unless an
/// earlier copy is there; that directory. Copies into a private directory and
/// renames it into place, so processes doing this at once never see half a copy.
fn copy_goroot(image: &str, cache: &Path) -> PathBuf {
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", image]);
    let id = id.trim().trim_start_matches("sha256:");
    let dest = cache.join(&id[..16.min(id.len())]);
    if dest.join("go/bin/go").exists() {
        return dest.join("go");
    }
    let staging = cache.join(format!(".copy-{}-{:x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&staging).unwrap();
    let name = format!("cbs-go-copy-{}-{:x}", std::process::id(), rand::random::<u32>());
    docker(&["create", "--name", &name, image, "true"]);
    let copied = Command::new("docker").args(["cp", &format!("{name}:/usr/local/go")]).arg(&staging).output().unwrap();
    docker(&["rm", &name]);
    assert!(copied.status.success(), "docker cp: {}", String::from_utf8_lossy(&copied.stderr));
    if std::fs::rename(&staging, &dest).is_err() {
        // Another process put its copy there first: use that one.
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(dest.join("go/bin/go").exists(), "no go/bin/go in {}", dest.display());
    dest.join("go")
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

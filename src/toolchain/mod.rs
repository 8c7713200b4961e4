//! Builder images made from the Go toolchains the module proxy serves, one per
//! Go version, so that the Go of a build is what its spec says rather than
//! whatever the host has (a worker host needs Docker, not Go).
//!
//! Making an image: download `golang.org/toolchain@v0.0.1-go<X>.linux-<arch>`'s
//! zip from the configured proxies ([`proxy`]), check its `h1:` hash
//! ([`dirhash`]) against the checksum database's signed lookup ([`note`]),
//! assemble the root filesystem ([`rootfs`]) and `docker import` it, labelled
//! with the Go version and the zip's hashes. [`ImageMaker::ensure`] does that
//! only when the daemon lacks the image, once at a time per image in a process.

mod busybox;
mod dirhash;
mod note;
mod proxy;
mod rootfs;
mod trim;
mod version;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use tracing::{info, warn};

pub use dirhash::hash_zip;
pub use note::{NoteVerifier, SUM_GOLANG_ORG};
pub use proxy::TOOLCHAIN_MODULE;
pub use trim::TrimReport;
pub use version::{BadGoVersion, GoVersion};

use crate::config::Config;

/// Labels on every builder image made here.
pub const LABEL_GO_VERSION: &str = "cbs.go_version";
pub const LABEL_RECIPE: &str = "cbs.recipe";
pub const LABEL_TOOLCHAIN: &str = "cbs.toolchain";
pub const LABEL_TOOLCHAIN_H1: &str = "cbs.toolchain.h1";
pub const LABEL_ZIP_SHA256: &str = "cbs.toolchain.zip_sha256";
pub const LABEL_SUMDB: &str = "cbs.toolchain.sumdb";
/// The root filesystem's layout version: an image of another recipe is made again.
const RECIPE: &str = "proxy-2";
/// Docker requests of an import carry a quarter of a gigabyte.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolchainError {
    #[error("config: {0}")]
    Config(String),
    /// The proxies do not have this toolchain (or refuse it): not worth retrying.
    #[error("Go toolchain not available from the module proxy: {0}")]
    NotServed(String),
    /// The proxy or checksum database failed or could not be reached.
    #[error("module proxy: {0}")]
    Proxy(String),
    /// The zip is not what the checksum database says it is.
    #[error("Go toolchain verification failed: {0}")]
    Checksum(String),
    #[error("busybox: {0}")]
    Busybox(String),
    #[error("{0}")]
    Io(String),
    #[error("Docker: {0}")]
    Docker(String),
}

impl ToolchainError {
    /// Worth another attempt later (the proxy, the daemon, the disk may recover).
    pub fn retryable(&self) -> bool {
        matches!(self, ToolchainError::Proxy(_) | ToolchainError::Io(_) | ToolchainError::Docker(_) | ToolchainError::Busybox(_))
    }
}

/// A builder image present on the daemon.
#[derive(Debug, Clone)]
pub struct BuilderImage {
    pub name: String,
    pub id: String,
    pub go_version: GoVersion,
    /// `module@version` and `h1:` of the toolchain it was made from (empty for an image of one's own).
    pub toolchain: String,
    pub toolchain_h1: String,
}

/// Makes and finds builder images on one Docker daemon.
#[derive(Clone)]
pub struct ImageMaker {
    docker: Docker,
    go_proxy: String,
    go_sumdb: String,
    repository: String,
    busybox: String,
    scratch: PathBuf,
    /// `worker.image` and the version it is for, when the operator brings one.
    own_image: Option<(GoVersion, String)>,
    http: reqwest::Client,
}

/// One lock per image name for the whole process: workers in one process
/// (tests, `all`) never make the same image twice at once.
static MAKING: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);

impl ImageMaker {
    pub fn new(config: &Config) -> Result<ImageMaker, ToolchainError> {
        let w = &config.worker;
        let docker = if w.docker_host.is_empty() { Docker::connect_with_defaults() } else { Docker::connect_with_host(&w.docker_host) }
            .map_err(|e| ToolchainError::Docker(e.to_string()))?
            .with_timeout(DOCKER_TIMEOUT);
        let default = GoVersion::parse(&w.go_version).map_err(|e| ToolchainError::Config(e.to_string()))?;
        Ok(ImageMaker {
            docker,
            go_proxy: config.go_proxy.clone(),
            go_sumdb: config.go_sumdb.clone(),
            repository: w.images.repository.clone(),
            busybox: w.images.busybox.clone(),
            scratch: PathBuf::from(&w.work_dir).join(".toolchains"),
            own_image: (!w.image.trim().is_empty()).then(|| (default, w.image.clone())),
            http: proxy::client(),
        })
    }

    /// The image builds at `version` run in.
    pub fn image_name(&self, version: GoVersion) -> String {
        match &self.own_image {
            Some((v, image)) if *v == version => image.clone(),
            _ => format!("{}:go{version}", self.repository),
        }
    }

    /// [`ImageMaker::image_name`] from the config alone (no Docker client needed).
    pub fn image_name_for(config: &Config, version: GoVersion) -> String {
        let w = &config.worker;
        let own = !w.image.trim().is_empty() && GoVersion::parse(&w.go_version).ok() == Some(version);
        if own { w.image.clone() } else { format!("{}:go{version}", w.images.repository) }
    }

    /// The image for `version`, made first when the daemon lacks it (or has one
    /// of an older recipe). An operator's own image (`worker.image`) is never made.
    pub async fn ensure(&self, version: GoVersion) -> Result<BuilderImage, ToolchainError> {
        let name = self.image_name(version);
        let lock = MAKING.lock().unwrap().entry(name.clone()).or_default().clone();
        let _making = lock.lock().await;
        if let Some(found) = self.present(&name, version).await? {
            return Ok(found);
        }
        if self.own_image.as_ref().is_some_and(|(_, own)| *own == name) {
            return Err(ToolchainError::Docker(format!("worker.image {name:?} is not on the Docker daemon")));
        }
        self.make(version).await
    }

    /// The image named `name` if the daemon has it and (for images made here) it is of this recipe.
    async fn present(&self, name: &str, version: GoVersion) -> Result<Option<BuilderImage>, ToolchainError> {
        let inspect = match self.docker.inspect_image(name).await {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(ToolchainError::Docker(e.to_string())),
        };
        let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let own = self.own_image.as_ref().is_some_and(|(_, own)| own == name);
        if !own && label(LABEL_RECIPE) != RECIPE {
            info!(image = name, recipe = label(LABEL_RECIPE), "builder image of an older recipe: making it again");
            return Ok(None);
        }
        Ok(Some(BuilderImage {
            name: name.to_string(),
            id: inspect.id.unwrap_or_default(),
            go_version: version,
            toolchain: label(LABEL_TOOLCHAIN),
            toolchain_h1: label(LABEL_TOOLCHAIN_H1),
        }))
    }

    /// Downloads, verifies and imports the toolchain of `version`.
    pub async fn make(&self, version: GoVersion) -> Result<BuilderImage, ToolchainError> {
        let started = Instant::now();
        let name = self.image_name(version);
        let goarch = self.goarch().await?;
        let module_version = version.module_version(goarch);
        let toolchain = format!("{TOOLCHAIN_MODULE}@{module_version}");
        let dir = self.scratch.join(format!("{module_version}-{:08x}", rand::random::<u32>()));
        tokio::fs::create_dir_all(&dir).await.map_err(|e| ToolchainError::Io(format!("{}: {e}", dir.display())))?;
        let result = async {
            let zip = dir.join("toolchain.zip");
            let sumdb = proxy::sumdb(&self.go_sumdb)?;
            let expected = async {
                match &sumdb {
                    Some((verifier, url)) => proxy::sumdb_hash(&self.http, &self.go_proxy, verifier, url, &module_version).await.map(Some),
                    None => Ok(None),
                }
            };
            let (url, expected) = tokio::try_join!(proxy::download_zip(&self.http, &self.go_proxy, &module_version, &zip), expected)?;
            let downloaded = started.elapsed();
            let (z, busybox) = (zip.clone(), self.busybox.clone());
            let (h1, zip_sha256) = blocking(move || Ok::<_, ToolchainError>((hash_zip(&z).map_err(|e| ToolchainError::Checksum(e.to_string()))?, file_sha256(&z)?))).await?;
            match &expected {
                Some(want) if *want != h1 => {
                    return Err(ToolchainError::Checksum(format!("{toolchain} from {url} has {h1}, the checksum database says {want}")));
                }
                Some(_) => {}
                None => warn!(toolchain, "go_sumdb is off: the toolchain is not checked against a checksum database"),
            }
            let checked = started.elapsed();
            let (bb, applets) = busybox::find(&busybox, &self.scratch).await?;
            let tarball = dir.join("rootfs.tar");
            let (t, z, prefix) = (tarball.clone(), zip.clone(), format!("{toolchain}/"));
            blocking(move || rootfs::write(&t, &bb, &applets, &z, &prefix)).await?;
            let written = started.elapsed();
            let _ = tokio::fs::remove_file(&zip).await;
            let sumdb_name = sumdb.as_ref().map(|(v, _)| v.name.clone()).unwrap_or_else(|| "off".into());
            let labels = [
                (LABEL_GO_VERSION, version.go_name()),
                (LABEL_RECIPE, RECIPE.to_string()),
                (LABEL_TOOLCHAIN, toolchain.clone()),
                (LABEL_TOOLCHAIN_H1, h1.clone()),
                (LABEL_ZIP_SHA256, zip_sha256),
                (LABEL_SUMDB, sumdb_name),
            ];
            self.import(&tarball, &name, &labels).await?;
            // Cumulative times: downloaded, then hashed and checked, then the root filesystem written, then imported.
            info!(image = name, toolchain, h1, ?downloaded, ?checked, ?written, elapsed = ?started.elapsed(), "builder image made from the module proxy's toolchain");
            self.present(&name, version).await?.ok_or_else(|| ToolchainError::Docker(format!("{name} is missing right after its import")))
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }

    /// `docker import` of the tarball with the image's settings and labels.
    async fn import(&self, tarball: &std::path::Path, name: &str, labels: &[(&str, String)]) -> Result<(), ToolchainError> {
        let (repo, tag) = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((name, "latest"));
        let mut changes = vec![
            "ENV PATH=/usr/local/go/bin:/bin".to_string(),
            "ENV HOME=/home/builder".to_string(),
            "USER 1000:1000".to_string(),
            "WORKDIR /work".to_string(),
        ];
        changes.extend(labels.iter().map(|(k, v)| format!("LABEL {k}={v}")));
        let opts = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).changes(changes).build();
        let file = tokio::fs::File::open(tarball).await.map_err(|e| ToolchainError::Io(format!("{}: {e}", tarball.display())))?;
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
        let mut progress = self.docker.create_image(Some(opts), Some(body), None);
        while let Some(item) = progress.next().await {
            item.map_err(|e| ToolchainError::Docker(format!("import of {name}: {e}")))?;
        }
        Ok(())
    }

    /// The toolchain platform of the daemon's machine (amd64 or arm64).
    async fn goarch(&self) -> Result<&'static str, ToolchainError> {
        let info = self.docker.info().await.map_err(|e| ToolchainError::Docker(e.to_string()))?;
        match info.architecture.as_deref().unwrap_or(std::env::consts::ARCH) {
            "x86_64" | "amd64" => Ok("amd64"),
            "aarch64" | "arm64" => Ok("arm64"),
            other => Err(ToolchainError::Config(format!("no Go toolchain module for a Docker host of architecture {other:?}"))),
        }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }
}

fn file_sha256(path: &std::path::Path) -> Result<String, ToolchainError> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).map_err(|e| ToolchainError::Io(format!("{}: {e}", path.display())))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| ToolchainError::Io(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Runs blocking work (zip hashing, tarball writing) on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ToolchainError> + Send + 'static) -> Result<T, ToolchainError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ToolchainError::Io(format!("blocking task: {e}")))?
}

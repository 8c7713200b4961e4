//! `GET /api/packages`: `{"result": [package…]}`, the official listing's shape.
//! The packages are the catalog of `config.yml` (`listed: true`) and every other
//! plugin that has built here; `modules` are the Caddy module IDs the verify step
//! listed for the package, `downloads` counts downloads of binaries with it, and
//! `available` is false once a build failed because of it (its error named it
//! first) and none has succeeded since.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::error::ApiResult;
use crate::api::state::AppState;
use crate::db::PackageRow;

/// Hosts whose repositories are the first three elements of a module path.
const REPO_HOSTS: [&str; 4] = ["github.com", "bitbucket.org", "codeberg.org", "git.sr.ht"];

#[derive(Serialize)]
struct Package {
    /// The module path: stable, and unique like the official ids.
    id: String,
    path: String,
    repo: String,
    /// When it first built here.
    published: Option<DateTime<Utc>>,
    /// In this server's catalog.
    listed: bool,
    available: bool,
    downloads: i64,
    modules: Vec<Module>,
}

#[derive(Serialize)]
struct Module {
    name: String,
    /// Module documentation is not known here.
    docs: String,
    package: String,
    repo: String,
}

#[derive(Serialize)]
pub struct Listing {
    result: Vec<Package>,
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Listing>> {
    let rows = state.queue.packages().await?;
    let catalog: HashSet<&str> = state.config.catalog.iter().map(|c| c.module.as_str()).collect();
    let mut by_path: HashMap<&str, &PackageRow> = rows.iter().map(|r| (r.path.as_str(), r)).collect();
    let mut result: Vec<Package> = state.config.catalog.iter().map(|c| package(&c.module, by_path.remove(c.module.as_str()), true)).collect();
    result.extend(
        rows.iter()
            .filter(|r| r.last_succeeded_at.is_some() && !catalog.contains(r.path.as_str()))
            .map(|r| package(&r.path, Some(r), false)),
    );
    result.sort_by(|a, b| b.downloads.cmp(&a.downloads).then_with(|| a.path.cmp(&b.path)));
    Ok(Json(Listing { result }))
}

fn package(path: &str, row: Option<&PackageRow>, listed: bool) -> Package {
    let repo = repo_url(path);
    let modules = row.and_then(|r| r.modules.clone()).unwrap_or_default();
    Package {
        id: path.to_string(),
        path: path.to_string(),
        published: row.and_then(|r| r.first_built_at),
        listed,
        available: row.is_none_or(PackageRow::available),
        downloads: row.map_or(0, |r| r.downloads),
        modules: modules
            .into_iter()
            .map(|name| Module { name, docs: String::new(), package: path.to_string(), repo: repo.clone() })
            .collect(),
        repo,
    }
}

/// The repository a module path lives in, where the path tells (a known
/// code host); else the module's page on pkg.go.dev, which links to it.
fn repo_url(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [host, owner, repo, ..] if REPO_HOSTS.contains(host) => format!("https://{host}/{owner}/{repo}"),
        _ => format!("https://pkg.go.dev/{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_from_module_paths() {
        assert_eq!(repo_url("github.com/caddy-dns/cloudflare"), "https://github.com/caddy-dns/cloudflare");
        assert_eq!(repo_url("github.com/corazawaf/coraza-caddy/v2"), "https://github.com/corazawaf/coraza-caddy");
        assert_eq!(repo_url("github.com/owner/mono/caddy/plugin"), "https://github.com/owner/mono");
        assert_eq!(repo_url("example.com/x/caddy-thing"), "https://pkg.go.dev/example.com/x/caddy-thing");
    }
}

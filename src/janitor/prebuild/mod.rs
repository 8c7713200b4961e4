//! Prebuilding, a leader-only janitor job run every `prebuild.watch_interval`:
//!
//! - **Warm on day one.** Each entry of `prebuild.specs` (default: plain newest
//!   Caddy for this host's platform) is resolved against the module proxy and
//!   queued unless its build exists or was prebuilt before. On a fresh start that
//!   queues it once; a restart finds it and queues nothing; an entry naming
//!   `latest` is queued again once a new Caddy release makes it another build.
//! - **Built before anyone asks.** The `prebuild.top_n` most requested specs of
//!   the last `prebuild.window` (requests counted per spec and day by
//!   `cbs.submit_build`) are rebuilt with the newest releases of Caddy and of
//!   their plugins, as the module proxy's version lists name them (pre-releases
//!   ignored), when those are newer than the spec's.
//!
//! Everything goes through `cbs.prebuild`: background priority (never claimed
//! while a request is runnable), charged to no client, once per build key, and
//! recorded with its reason in `cbs.prebuilds`. A record is forgotten once
//! retention has deleted its build and the window has passed, so a spec still
//! wanted then is prebuilt once more rather than never again. The proxy is asked through the
//! api's [`Resolver`] (module paths checked by Go's rules and escaped, a time
//! limit per request, only the configured proxies); a proxy failure skips that
//! module until the next poll. The database side needs no polling: a queued
//! prebuild wakes the workers through `cbs_build_queued` like any build.

mod upgrade;

pub use upgrade::{upgrade, watched_modules};

use std::collections::HashMap;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde_json::json;
use tracing::{info, warn};

use super::job::{Counts, Job, JobError};
use crate::config::{PrebuildConfig, PrebuildSpec};
use crate::db::{DbError, PrebuildReason, PrebuildRequest, Queue};
use crate::gomod::{ResolveError, Resolver};
use crate::spec::{BuildSpec, Plugin, CADDY_MODULE};

/// Module proxy lookups in flight at once during one poll.
const LOOKUP_CONCURRENCY: usize = 8;

/// Why the configured prebuilds cannot be checked, or what is wrong with one.
#[derive(Debug, thiserror::Error)]
pub enum PrebuildConfigError {
    #[error("invalid config: prebuild.specs[{entry}]: {message}")]
    BadEntry { entry: usize, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

pub struct Prebuilder {
    queue: Queue,
    resolver: Resolver,
    config: PrebuildConfig,
    go_version: Option<String>,
    janitor_id: String,
}

/// What one run did, for its counts.
#[derive(Default)]
struct Tally {
    configured: u64,
    caddy_releases: u64,
    plugin_releases: u64,
    proxy_errors: u64,
    bad_specs: u64,
}

impl Prebuilder {
    /// `resolver` should not cache (a zero TTL): each poll must see the proxy's lists as they are now.
    pub fn new(queue: Queue, resolver: Resolver, config: PrebuildConfig, janitor_id: &str) -> Prebuilder {
        Prebuilder { queue, resolver, config, janitor_id: janitor_id.to_string(), go_version: None }
    }

    /// The Go of configured prebuilds: the workers' default, which the api also
    /// writes into requests naming none, so that both make the same keys.
    pub fn with_go_version(mut self, go_version: &str) -> Prebuilder {
        self.go_version = Some(go_version.to_string());
        self
    }

    /// Checks every `prebuild.specs` entry by the spec's rules (SQL's, versions
    /// still queries), so that an entry for an unknown target or with a bad module
    /// path stops start-up, named by its key, rather than being skipped at every poll.
    pub async fn check_config(&self) -> Result<(), PrebuildConfigError> {
        for (entry, e) in self.config.specs.iter().enumerate() {
            let spec = BuildSpec {
                caddy_version: e.caddy_version.clone(),
                plugins: e.plugins.clone(),
                replacements: Vec::new(),
                os: e.os.clone(),
                arch: e.arch.clone(),
                arm: e.arm.clone(),
                tags: None,
                go_version: self.go_version.clone(),
            };
            let spec = serde_json::to_value(&spec).expect("a spec serialises");
            match self.queue.check_spec_request(&spec).await {
                Ok(_) => {}
                Err(DbError::BadSpec(message)) => return Err(PrebuildConfigError::BadEntry { entry, message }),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A configured entry with every version resolved (`latest` → the newest release).
    async fn resolve_entry(&self, entry: &PrebuildSpec) -> Result<BuildSpec, ResolveError> {
        let caddy_version = self.resolver.resolve(CADDY_MODULE, &entry.caddy_version).await?.version;
        let mut plugins = Vec::with_capacity(entry.plugins.len());
        for p in &entry.plugins {
            let version = self.resolver.resolve(&p.module, &p.version).await?.version;
            plugins.push(Plugin { module: p.module.clone(), version });
        }
        Ok(BuildSpec { caddy_version, plugins, replacements: Vec::new(), os: entry.os.clone(), arch: entry.arch.clone(), arm: entry.arm.clone(), tags: None, go_version: self.go_version.clone() })
    }

    /// Queues `req` once; a spec SQL refuses (a config entry for an unknown target) is logged and counted.
    async fn queue(&self, req: &PrebuildRequest, tally: &mut Tally) -> Result<(), JobError> {
        match self.queue.prebuild(req, &self.janitor_id).await {
            Ok(Some(key)) => {
                info!(build_key = %key, reason = req.reason.as_str(), detail = %req.detail, "queued a prebuild");
                *match req.reason {
                    PrebuildReason::Configured => &mut tally.configured,
                    PrebuildReason::CaddyRelease => &mut tally.caddy_releases,
                    PrebuildReason::PluginRelease => &mut tally.plugin_releases,
                } += 1;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(DbError::BadSpec(message)) => {
                warn!(spec = %req.spec, %message, "a prebuild spec is not valid; skipped");
                tally.bad_specs += 1;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn configured(&self, tally: &mut Tally) -> Result<(), JobError> {
        for (i, entry) in self.config.specs.iter().enumerate() {
            let spec = match self.resolve_entry(entry).await {
                Ok(spec) => spec,
                Err(e) => {
                    warn!(entry = i, error = %e, "cannot resolve a prebuild.specs entry; trying again at the next poll");
                    tally.proxy_errors += 1;
                    continue;
                }
            };
            let spec = serde_json::to_value(&spec).expect("a spec serialises");
            let req = PrebuildRequest { spec, reason: PrebuildReason::Configured, detail: json!({"entry": i}), source: None };
            self.queue(&req, tally).await?;
        }
        Ok(())
    }

    /// The newest release of each module, as the proxy lists them now; modules the
    /// proxy failed on are left out (nothing is upgraded on their account).
    async fn newest_releases(&self, modules: Vec<String>, tally: &mut Tally) -> HashMap<String, String> {
        let answers: Vec<(String, Result<String, ResolveError>)> = stream::iter(modules)
            .map(|m| async move {
                let r = self.resolver.resolve(&m, "latest").await.map(|r| r.version);
                (m, r)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        let mut newest = HashMap::new();
        for (module, answer) in answers {
            match answer {
                Ok(v) => {
                    newest.insert(module, v);
                }
                // A module the proxy does not know (any more) has no release to build.
                Err(ResolveError::NotFound { .. }) => {}
                Err(e) => {
                    warn!(%module, error = %e, "release watching: the module proxy failed; trying again at the next poll");
                    tally.proxy_errors += 1;
                }
            }
        }
        newest
    }

    async fn releases(&self, tally: &mut Tally) -> Result<u64, JobError> {
        let top_n = i32::try_from(self.config.top_n).unwrap_or(i32::MAX);
        let popular = self.queue.popular_specs(top_n, self.config.window).await?;
        if popular.is_empty() {
            return Ok(0);
        }
        let newest = self.newest_releases(watched_modules(&popular), tally).await;
        for p in &popular {
            if let Some(req) = upgrade(p, &newest) {
                self.queue(&req, tally).await?;
            }
        }
        Ok(popular.len() as u64)
    }
}

#[async_trait]
impl Job for Prebuilder {
    fn name(&self) -> &'static str {
        "prebuild"
    }

    async fn run_once(&self) -> Result<Counts, JobError> {
        let mut tally = Tally::default();
        let pruned = self.queue.prune_spec_requests(self.config.window).await?;
        let forgotten = self.queue.prune_prebuilds(self.config.window).await?;
        self.configured(&mut tally).await?;
        self.releases(&mut tally).await?;
        Ok(Counts::of(&[
            ("configured_queued", tally.configured),
            ("caddy_release_queued", tally.caddy_releases),
            ("plugin_release_queued", tally.plugin_releases),
            ("proxy_errors", tally.proxy_errors),
            ("bad_specs", tally.bad_specs),
            ("request_days_pruned", pruned as u64),
            ("prebuild_records_pruned", forgotten as u64),
        ]))
    }
}

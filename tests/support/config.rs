//! The one way tests write service configs: a YAML document built from a base
//! (a test database, a scratch directory for everything on disk) plus the keys
//! a test sets, read by the very loader the binary uses (`Config::from_yaml`)
//! for in-process components, or written to a file for the binary itself.
//! One source, so an in-process worker and a worker process of the same test
//! run with the same settings.

use std::path::{Path, PathBuf};

use caddy_build_server::config::Config;
use serde::Serialize;
use serde_norway::{Mapping, Value};

/// A service config as YAML, built key by key.
#[derive(Clone, Debug)]
pub struct ConfigYaml {
    doc: Mapping,
}

impl ConfigYaml {
    /// Nothing set: every key at its default.
    pub fn empty() -> ConfigYaml {
        ConfigYaml { doc: Mapping::new() }
    }

    /// What every test config shares: the test database (a small pool: many
    /// tests share one Postgres), everything on disk under `dir` (artifacts,
    /// signing keys, work dirs), the tests' warm Go cache volumes, no prebuilds
    /// (a test counts the builds it made) and info logs.
    pub fn base(database_url: &str, dir: &Path) -> ConfigYaml {
        let d = |name: &str| dir.join(name).display().to_string();
        ConfigYaml::empty()
            .set("database.url", database_url)
            .set("database.pool_size", 4)
            .set("storage.path", d("artifacts"))
            .set("signing.secret_key_path", d("keys/minisign.key"))
            .set("signing.public_key_path", d("keys/minisign.pub"))
            .set("worker.work_dir", d("work"))
            .set("worker.gomod_cache_volume", crate::support::worker::GOMOD_VOLUME)
            .set("worker.gobuild_cache_volume", crate::support::worker::GOBUILD_VOLUME)
            .set("prebuild.enabled", false)
            .set("log.level", "info")
    }

    /// Sets the key at a dotted path (`worker.lease`) to `value` (durations as
    /// the config writes them: `"500ms"`, `"6s"`).
    pub fn set(mut self, path: &str, value: impl Serialize) -> ConfigYaml {
        let value = serde_norway::to_value(value).expect("a YAML value");
        let mut keys = path.split('.').peekable();
        let mut map = &mut self.doc;
        while let Some(k) = keys.next() {
            let key = Value::String(k.to_string());
            if keys.peek().is_none() {
                map.insert(key, value);
                break;
            }
            let entry = map.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
            if !entry.is_mapping() {
                *entry = Value::Mapping(Mapping::new());
            }
            map = entry.as_mapping_mut().unwrap();
        }
        self
    }

    /// Lays a YAML snippet over the document, key by key (mappings merge,
    /// anything else replaces).
    pub fn merge(mut self, yaml: &str) -> ConfigYaml {
        let snippet: Value = serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        match snippet {
            Value::Mapping(m) => merge_into(&mut self.doc, m),
            Value::Null => {}
            other => panic!("a config snippet is a mapping, not {other:?}"),
        }
        self
    }

    /// Whether the document sets a top-level section.
    pub fn has(&self, section: &str) -> bool {
        self.doc.contains_key(section)
    }

    pub fn text(&self) -> String {
        serde_norway::to_string(&self.doc).unwrap()
    }

    /// The config as the service loads it; panics with the YAML when it is refused.
    pub fn config(&self) -> Config {
        let text = self.text();
        Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Writes the YAML to `path`; the path.
    pub fn write(&self, path: impl AsRef<Path>) -> PathBuf {
        std::fs::write(path.as_ref(), self.text()).unwrap();
        path.as_ref().to_path_buf()
    }
}

fn merge_into(doc: &mut Mapping, snippet: Mapping) {
    for (k, v) in snippet {
        match (doc.get_mut(&k), v) {
            (Some(Value::Mapping(mine)), Value::Mapping(theirs)) => merge_into(mine, theirs),
            // `section:` with nothing under it adds nothing.
            (Some(_), Value::Null) => {}
            (_, v) => {
                doc.insert(k, v);
            }
        }
    }
}

//! Configuration: `config.yml` (or `$CONFIG_PATH`) rendered through minijinja,
//! parsed strictly (unknown keys are errors: a typo must not silently fall back
//! to a default), defaults applied, then validated. Every error names the key.

mod template;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, #[source] source: std::io::Error },
    #[error("config template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style URL or key=value string.
    pub url: String,
    /// Connections in the pool (the LISTEN connection is extra).
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a request waits for a free pooled connection before a 503.
    #[serde(with = "humantime_serde")]
    pub pool_wait: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            pool_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `caddy_build_server=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

impl Config {
    /// Loads `$CONFIG_PATH`, else `config.yml` if present, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os("CONFIG_PATH").map(std::path::PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(from_env);
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (Path::new("config.yml").to_path_buf(), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::from_yaml(&text),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Config::from_yaml(""),
            Err(source) => Err(ConfigError::Read { path: path.display().to_string(), source }),
        }
    }

    pub fn from_yaml(source: &str) -> Result<Config, ConfigError> {
        let rendered = template::render(source)?;
        let config: Config = if rendered.trim().is_empty() {
            Config::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(&rendered);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = e.path().to_string();
                invalid(if key == "." { "(top level)" } else { &key }, e.into_inner().to_string())
            })?
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.database.url.trim().is_empty() {
            return Err(invalid("database.url", "must not be empty"));
        }
        self.database
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| invalid("database.url", format!("is not a valid Postgres URL: {e}")))?;
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", format!("is not a valid filter: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.database.pool_size, 16);
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_yaml("database:\n  pool_size: many\n").unwrap_err().to_string();
        assert!(e.contains("database.pool_size"), "{e}");
        let e = Config::from_yaml("database:\n  pool_sise: 3\n").unwrap_err().to_string();
        assert!(e.contains("database") && e.contains("pool_sise"), "{e}");
        let e = Config::from_yaml("database:\n  pool_size: 0\n").unwrap_err().to_string();
        assert!(e.contains("database.pool_size"), "{e}");
        let e = Config::from_yaml("database:\n  connect_timeout: soon\n").unwrap_err().to_string();
        assert!(e.contains("database.connect_timeout"), "{e}");
    }

    #[test]
    fn durations_parse() {
        let c = Config::from_yaml("database:\n  connect_timeout: 250ms\n").unwrap();
        assert_eq!(c.database.connect_timeout, Duration::from_millis(250));
    }
}

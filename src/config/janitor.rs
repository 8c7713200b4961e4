//! The `janitor` config section: one block per scheduled job (a cron schedule and
//! an optional heartbeat ping URL), leader election timing, and webhook delivery.
//! Schedules are parsed while the config loads, so a bad expression stops start-up
//! with the key's name instead of surfacing later in a loop.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{http_url, invalid, ConfigError};
use crate::outbound::AllowList;

/// A cron expression: `sec min hour day-of-month month day-of-week [year]`, or the
/// classic five fields (then it runs at second 0).
#[derive(Clone)]
pub struct CronSchedule {
    source: String,
    schedule: cron::Schedule,
}

impl CronSchedule {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first time the schedule fires strictly after `after`.
    pub fn next_after(&self, after: &chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.schedule.after(after).next()
    }
}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let trimmed = s.trim();
        let full = if trimmed.split_whitespace().count() == 5 { format!("0 {trimmed}") } else { trimmed.to_string() };
        let schedule = cron::Schedule::from_str(&full).map_err(|e| format!("{s:?} is not a cron expression: {e}"))?;
        if schedule.upcoming(chrono::Utc).next().is_none() {
            return Err(format!("{s:?} never fires"));
        }
        Ok(CronSchedule { source: trimmed.to_string(), schedule })
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

fn cron(s: &str) -> CronSchedule {
    s.parse().expect("default cron expressions are valid")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JanitorConfig {
    /// Names this janitor in logs and in pg_stat_activity; empty: `<hostname>-<pid>`.
    pub id: String,
    /// How often a janitor that does not lead tries to take the leader lock; a dead
    /// leader is replaced within about this long.
    #[serde(with = "humantime_serde")]
    pub leader_retry: Duration,
    /// How often the leader checks that its lock connection is still alive.
    #[serde(with = "humantime_serde")]
    pub leader_check: Duration,
    /// Timeout of one heartbeat ping request.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    pub rescue: JobConfig,
    pub retention: RetentionConfig,
    pub reaper: ReaperConfig,
    pub stats: JobConfig,
    pub webhooks: WebhookConfig,
}

impl Default for JanitorConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            leader_retry: Duration::from_secs(2),
            leader_check: Duration::from_secs(2),
            ping_timeout: Duration::from_secs(10),
            rescue: JobConfig { schedule: cron("*/10 * * * * *"), ping_url: String::new() },
            retention: RetentionConfig::default(),
            reaper: ReaperConfig::default(),
            stats: JobConfig { schedule: cron("0 * * * * *"), ping_url: String::new() },
            webhooks: WebhookConfig::default(),
        }
    }
}

/// A scheduled job without settings of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    pub schedule: CronSchedule,
    /// Requested (GET) after each successful run, like a Checkly or healthchecks.io heartbeat.
    #[serde(default)]
    pub ping_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub schedule: CronSchedule,
    pub ping_url: String,
    /// Builds not requested (nor finished) for this long are deleted: files, then rows.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Builds handled per batch; a run repeats batches until nothing is left.
    pub batch_size: i32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            schedule: cron("0 17 * * * *"),
            ping_url: String::new(),
            max_age: Duration::from_secs(30 * 24 * 3600),
            batch_size: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaperConfig {
    pub schedule: CronSchedule,
    pub ping_url: String,
    /// Workers not seen for this long (and holding no build) leave `cbs.workers`.
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self { schedule: cron("0 */10 * * * *"), ping_url: String::new(), forget_after: Duration::from_secs(24 * 3600) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Timeout of one POST to a callback_url.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// Retry delays double from backoff_min up to backoff_max.
    #[serde(with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Deliveries sent at once.
    pub concurrency: usize,
    /// Callback URLs reach public addresses only; these CIDR ranges, addresses and
    /// exact host names are let through as well (an internal receiver).
    pub allow: AllowList,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            backoff_min: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            concurrency: 8,
            allow: AllowList::default(),
        }
    }
}

/// A ping URL is optional: empty means none.
fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.is_empty() { Ok(()) } else { http_url(key, url) }
}

impl JanitorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.leader_retry.is_zero() {
            return Err(invalid("janitor.leader_retry", "must be positive"));
        }
        if self.leader_check.is_zero() {
            return Err(invalid("janitor.leader_check", "must be positive"));
        }
        check_url("janitor.rescue.ping_url", &self.rescue.ping_url)?;
        check_url("janitor.retention.ping_url", &self.retention.ping_url)?;
        check_url("janitor.reaper.ping_url", &self.reaper.ping_url)?;
        check_url("janitor.stats.ping_url", &self.stats.ping_url)?;
        if self.retention.max_age < Duration::from_secs(60) {
            return Err(invalid("janitor.retention.max_age", "must be at least 1m"));
        }
        if self.retention.batch_size < 1 {
            return Err(invalid("janitor.retention.batch_size", "must be at least 1"));
        }
        if self.webhooks.max_attempts < 1 {
            return Err(invalid("janitor.webhooks.max_attempts", "must be at least 1"));
        }
        if self.webhooks.timeout.is_zero() {
            return Err(invalid("janitor.webhooks.timeout", "must be positive"));
        }
        if self.webhooks.backoff_min.is_zero() || self.webhooks.backoff_max < self.webhooks.backoff_min {
            return Err(invalid("janitor.webhooks.backoff_max", "must be at least janitor.webhooks.backoff_min, which must be positive"));
        }
        if self.webhooks.concurrency == 0 {
            return Err(invalid("janitor.webhooks.concurrency", "must be at least 1"));
        }
        Ok(())
    }

    /// This janitor's id: configured, or `<hostname>-<pid>`.
    pub fn janitor_id(&self) -> String {
        super::process_id(&self.id, "janitor")
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn schedules_parse_and_errors_name_the_key() {
        let c = Config::from_yaml("janitor:\n  rescue:\n    schedule: \"*/5 * * * *\"\n").unwrap();
        assert_eq!(c.janitor.rescue.schedule.source(), "*/5 * * * *");
        let e = Config::from_yaml("janitor:\n  rescue:\n    schedule: every now and then\n").unwrap_err().to_string();
        assert!(e.contains("janitor.rescue.schedule"), "{e}");
        let e = Config::from_yaml("janitor:\n  stats:\n    schedule: \"0 * * * * *\"\n    ping_url: ftp://x\n").unwrap_err().to_string();
        assert!(e.contains("janitor.stats.ping_url"), "{e}");
        let e = Config::from_yaml("janitor:\n  retention:\n    max_age: 1s\n").unwrap_err().to_string();
        assert!(e.contains("janitor.retention.max_age"), "{e}");
    }

    #[test]
    fn webhook_allow_entries_parse_and_errors_name_the_key() {
        let c = Config::from_yaml("janitor:\n  webhooks:\n    allow: [127.0.0.1, 10.1.0.0/16, hooks.internal]\n").unwrap();
        let shown: Vec<String> = c.janitor.webhooks.allow.entries().iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.1.0.0/16", "hooks.internal"]);
        for bad in ["[10.0.0.1/8]", "[\"*.corp\"]", "[\"http://x\"]", "10.0.0.0/8"] {
            let e = Config::from_yaml(&format!("janitor:\n  webhooks:\n    allow: {bad}\n")).unwrap_err().to_string();
            assert!(e.contains("janitor.webhooks.allow"), "{bad}: {e}");
        }
    }

    /// The documented config.yml means the default: nothing allowed past the public-only rule.
    #[test]
    fn shipped_config_allows_no_internal_webhook_receiver() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yml")).unwrap();
        let c = Config::from_yaml(&text).unwrap();
        assert_eq!(c.janitor.webhooks.allow, Config::default().janitor.webhooks.allow);
        assert!(c.janitor.webhooks.allow.is_empty());
    }

    #[test]
    fn defaults() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.janitor.retention.max_age, std::time::Duration::from_secs(30 * 24 * 3600));
        let now = chrono::Utc::now();
        let next = c.janitor.rescue.schedule.next_after(&now).unwrap();
        assert!(next - now <= chrono::Duration::seconds(10));
    }
}

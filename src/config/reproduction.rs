//! The `reproduction` section: the janitor's policy of having another worker
//! rebuild a share of new builds and compare hashes (`cbs.sample_reproductions`).
//! Administrators can ask for a reproduction of any succeeded build whatever this
//! says (`POST /api/admin/builds/{key}/reproduce`).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError, CronSchedule};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReproductionConfig {
    /// Share of new succeeded builds reproduced, 0 to 1 (0: the policy is off).
    /// Picked by build key, so a run repeated picks the same builds. A
    /// reproduction costs about a build (a warm one: the module and build caches
    /// are shared), at background priority.
    pub share: f64,
    /// When the janitor samples.
    pub schedule: CronSchedule,
    /// Requested (GET) after each successful run, like the other janitor jobs.
    pub ping_url: String,
    /// Builds that succeeded within this long count as new.
    #[serde(with = "humantime_serde")]
    pub recent: Duration,
    /// Most reproductions queued per run.
    pub batch_size: i32,
}

impl Default for ReproductionConfig {
    fn default() -> Self {
        Self {
            share: 0.05,
            schedule: "0 * * * * *".parse().expect("a valid cron expression"),
            ping_url: String::new(),
            recent: Duration::from_secs(24 * 3600),
            batch_size: 100,
        }
    }
}

impl ReproductionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.share.is_finite() || !(0.0..=1.0).contains(&self.share) {
            return Err(invalid("reproduction.share", "must be a number from 0 (off) to 1 (every build)"));
        }
        if self.recent.is_zero() {
            return Err(invalid("reproduction.recent", "must be positive"));
        }
        if self.batch_size < 1 {
            return Err(invalid("reproduction.batch_size", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_a_fraction() {
        assert!(ReproductionConfig::default().validate().is_ok());
        for share in [-0.1, 1.5, f64::NAN] {
            let c = ReproductionConfig { share, ..ReproductionConfig::default() };
            assert!(c.validate().unwrap_err().to_string().contains("reproduction.share"), "{share}");
        }
        assert!(ReproductionConfig { share: 0.0, ..ReproductionConfig::default() }.validate().is_ok(), "0 turns it off");
    }
}

//! Who may spend build CPU, and how much: the `api.admission` section, the
//! proxies whose forwarded addresses are believed (`api.trusted_proxies`) and
//! `api.require_token`. The defaults let a person through and stop a script;
//! API tokens (`cbs.create_token`) carry their own limits.

use ipnet::IpNet;
use serde::Deserialize;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Off: nothing is charged or capped (a private build farm).
    pub enabled: bool,
    /// New builds a client may start at once before the hourly rate applies.
    pub burst: u32,
    /// New builds per hour a client's bucket refills with.
    pub per_hour: f64,
    /// Builds queued or running at once per client.
    pub max_queued_per_client: u32,
    /// Builds waiting in the queue at once, all clients together (background work excluded).
    pub max_queued_total: u32,
    /// Requests a client may hold open at once on one api process (compat
    /// downloads waiting for their build, long polls, log streams).
    pub max_held_per_client: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            burst: 5,
            per_hour: 10.0,
            max_queued_per_client: 10,
            max_queued_total: 500,
            max_held_per_client: 20,
        }
    }
}

impl AdmissionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.per_hour.is_finite() || self.per_hour < 0.0 {
            return Err(invalid("api.admission.per_hour", "must be a number of builds per hour, 0 or more"));
        }
        if self.max_queued_total == 0 {
            return Err(invalid("api.admission.max_queued_total", "must be at least 1"));
        }
        if self.max_held_per_client == 0 {
            return Err(invalid("api.admission.max_held_per_client", "must be at least 1"));
        }
        Ok(())
    }
}

/// Parses `api.trusted_proxies`: CIDRs or single addresses.
pub(super) fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| invalid("api.trusted_proxies", format!("{e:?} is not an address or a CIDR like 10.0.0.0/8")))
        })
        .collect()
}

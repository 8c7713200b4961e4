//! Caps on requests a client holds open (compat downloads waiting for their
//! build, long polls, log streams): each costs a connection and memory for as
//! long as a build takes, so one client must not be able to hold thousands.
//! Counted per api process; a process's share is `api.admission.max_held_per_client`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;

use super::client::Client;
use super::error::ApiError;

/// Seconds a refused client is told to wait: held requests end as builds finish.
const RETRY_AFTER_SECS: u64 = 10;

#[derive(Default)]
pub struct HeldRequests {
    counts: Mutex<HashMap<String, usize>>,
    gauge: Gauge,
}

/// One held request; the count drops when it does.
pub struct Held {
    owner: Arc<HeldRequests>,
    client: String,
}

impl HeldRequests {
    pub fn new(gauge: Gauge) -> Arc<HeldRequests> {
        Arc::new(HeldRequests { counts: Mutex::default(), gauge })
    }

    /// Counts a request of `client` as held, or refuses it past the client's cap.
    pub fn hold(self: &Arc<Self>, client: &Client) -> Result<Held, ApiError> {
        let mut counts = self.counts.lock().unwrap();
        let n = counts.entry(client.id.clone()).or_default();
        if *n >= client.max_held {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "{} already holds {} requests open waiting for builds (the limit is {}); retry when one of them ends",
                    client.id, n, client.max_held
                ),
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        *n += 1;
        self.gauge.inc();
        Ok(Held { owner: self.clone(), client: client.id.clone() })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap();
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
        self.owner.gauge.dec();
    }
}

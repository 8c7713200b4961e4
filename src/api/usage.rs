//! Per-client usage for `cbs.heaviest_clients`: admissions and refusals are
//! counted in memory and sent to Postgres about once a second in one statement
//! ([`super::tally`]), so that the figures admins read cost the requests nothing.

use std::collections::HashMap;
use std::ops::AddAssign;

use chrono::Utc;

use super::tally::{Sink, Tally};
use crate::db::{DbError, Queue};

/// A client's admissions and refusals since the last batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    admitted: i32,
    refused: i32,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.admitted += other.admitted;
        self.refused += other.refused;
    }
}

pub type Usage = Tally<Counts>;

impl Usage {
    pub fn admitted(&self, client: &str) {
        self.add(client, Counts { admitted: 1, refused: 0 });
    }

    pub fn refused(&self, client: &str) {
        self.add(client, Counts { admitted: 0, refused: 1 });
    }
}

/// `cbs.client_usage`, by the minute a batch is sent in.
pub struct UsageSink;

impl Sink<Counts> for UsageSink {
    const WHAT: &'static str = "client usage";

    async fn write(&self, queue: &Queue, batch: &HashMap<String, Counts>) -> Result<(), DbError> {
        let clients: Vec<&str> = batch.keys().map(String::as_str).collect();
        let admitted: Vec<i32> = batch.values().map(|c| c.admitted).collect();
        let refused: Vec<i32> = batch.values().map(|c| c.refused).collect();
        queue.record_usage(Utc::now(), &clients, &admitted, &refused).await
    }
}

//! Downloads of binaries, counted per build in memory and written to Postgres
//! in batches ([`super::tally`]; `cbs.count_downloads` also adds them to the
//! plugins' packages for `/api/packages`): ten thousand waiters released by one
//! build cost one statement, not ten thousand updates of one row.
//!
//! A download is a `GET` answered with the whole binary (200) or with a
//! redirect to it (302); ranges (resumed downloads), `HEAD` and 304 are not.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::tally::{Sink, Tally};
use crate::db::{DbError, Queue};

pub type DownloadCounter = Tally<i64>;

impl DownloadCounter {
    /// Counts `response` when it hands out the binary of build `build_key`.
    pub fn note(&self, build_key: &str, method: &Method, response: &Response) {
        if method == Method::GET && matches!(response.status(), StatusCode::OK | StatusCode::FOUND) {
            self.add(build_key, 1);
        }
    }
}

/// `cbs.count_downloads`.
pub struct DownloadSink;

impl Sink<i64> for DownloadSink {
    const WHAT: &'static str = "downloads";

    async fn write(&self, queue: &Queue, batch: &HashMap<String, i64>) -> Result<(), DbError> {
        queue.count_downloads(batch).await.map(|_| ())
    }
}

//! Submitting on behalf of a client: `cbs.submit_build` charges it only when the
//! call creates work, and refuses over a limit; here the outcome is counted in
//! the metrics and in the client's usage.

use serde_json::Value;

use super::client::Client;
use super::error::ApiResult;
use super::metrics::AdmissionLabels;
use super::state::AppState;
use crate::db::{Build, DbError, Priority, Submitter};

pub async fn submit(state: &AppState, spec: &Value, force: bool, client: &Client) -> ApiResult<Build> {
    let who = Submitter { client: Some(&client.id), limits: client.limits.as_ref(), priority: Priority::Request };
    match state.queue.submit_as(spec, force, who).await {
        Ok(s) => {
            let outcome = if s.created { "created" } else { "joined" };
            state.metrics.admissions.get_or_create(&AdmissionLabels::new(outcome, "")).inc();
            if s.created {
                state.usage.admitted(&client.id);
            }
            Ok(s.build)
        }
        Err(DbError::Refused(r)) => {
            state.metrics.admissions.get_or_create(&AdmissionLabels::new("refused", &r.reason)).inc();
            tracing::info!(client = %client.id, reason = %r.reason, "new build refused");
            state.usage.refused(&client.id);
            Err(DbError::Refused(r).into())
        }
        Err(e) => Err(e.into()),
    }
}

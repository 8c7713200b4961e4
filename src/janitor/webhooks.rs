//! Webhook delivery: when a build with registered callback URLs ends, the elected
//! janitor POSTs the build's status JSON ([`WebhookBody`]) to each of them. Deliveries live in
//! `cbs.webhook_deliveries`: claimed with a lease, each attempt recorded (fenced
//! by its number), failures retried with exponential backoff, so a janitor
//! restart neither loses a delivery nor repeats one that was acknowledged. A
//! delivery interrupted by a crash is sent again after its claim expires, with
//! the same `X-Cbs-Delivery-Id`, so receivers can drop the rare duplicate.
//!
//! Woken by `cbs_build_finished` through the process's `Listener`, by a listener
//! reconnect, and by a timer set to the next due retry: never by polling.
//!
//! Requests go through an [`outbound::GuardedClient`]: a URL whose address is
//! not public (checked again now, against what its name resolves to now) is
//! refused without a connection, and a redirect is an unsuccessful answer, not
//! followed. Either is recorded and retried like any failed delivery.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::leader::Leadership;
use crate::build_view::{BuildView, ViewConfig};
use crate::config::WebhookConfig;
use crate::db::{Build, Channel, DbError, Listener, ListenerEvent, Queue, WebhookAttempt, WebhookDelivery, WebhookOutcome, WebhookRetry};
use crate::outbound::{self, GuardedClient};

/// Added to twice the POST timeout to get the claim lease: a claim outlives its
/// request, and a crashed janitor's claim expires soon after.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);
/// Longest sleep without a wake-up, a safety net should a notification be lost.
const MAX_IDLE: Duration = Duration::from_secs(300);
/// After a database error, wait this long before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(5);
pub const DELIVERY_ID_HEADER: &str = "x-cbs-delivery-id";
pub const DELIVERY_ATTEMPT_HEADER: &str = "x-cbs-delivery-attempt";

pub struct Deliverer {
    queue: Queue,
    http: GuardedClient,
    janitor_id: String,
    cfg: WebhookConfig,
    /// How the payload's build is shown (links, the xcaddy command's Go).
    views: ViewConfig,
}

/// The `event` of a webhook sent when a build ends.
pub const FINISHED_EVENT: &str = "build.finished";

/// A webhook's JSON body: the build's status JSON, flattened, plus two fields of its own.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookBody {
    /// Always [`FINISHED_EVENT`].
    pub event: &'static str,
    /// The delivery's id, as the `X-Cbs-Delivery-Id` header also carries it.
    pub delivery_id: i64,
    #[serde(flatten)]
    pub build: BuildView,
}

impl Deliverer {
    pub fn new(queue: Queue, janitor_id: &str, cfg: WebhookConfig, views: ViewConfig) -> Deliverer {
        let http = GuardedClient::new(outbound::Policy::webhooks(&cfg), |b| {
            b.timeout(cfg.timeout).user_agent(concat!("caddy-build-server/", env!("CARGO_PKG_VERSION")))
        })
        .expect("TLS backend available");
        Deliverer { queue, http, janitor_id: janitor_id.to_string(), cfg, views }
    }

    fn retry(&self) -> WebhookRetry {
        WebhookRetry { max_attempts: self.cfg.max_attempts, backoff_min: self.cfg.backoff_min, backoff_max: self.cfg.backoff_max }
    }

    /// Claims and sends every delivery due now; returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let mut attempted = 0;
        loop {
            let batch = self
                .queue
                .claim_webhook_deliveries(&self.janitor_id, self.cfg.concurrency as i32, self.cfg.timeout * 2 + CLAIM_MARGIN)
                .await?;
            if batch.is_empty() {
                return Ok(attempted);
            }
            attempted += batch.len();
            let results: Vec<Result<(), DbError>> =
                futures::stream::iter(batch).map(|d| self.deliver(d)).buffer_unordered(self.cfg.concurrency).collect().await;
            results.into_iter().collect::<Result<Vec<()>, DbError>>()?;
        }
    }

    async fn deliver(&self, d: WebhookDelivery) -> Result<(), DbError> {
        let span = tracing::info_span!("webhook", build_key = %d.build_key, delivery = d.id, attempt = d.attempt);
        async {
            let Some(build) = self.queue.get(&d.build_key).await? else {
                return Ok(()); // deleted meanwhile: its delivery row went with it
            };
            let body = self.payload(&d, &build).await?;
            let result = match self.http.post(&d.url) {
                Err(refused) => WebhookAttempt { delivered: false, status_code: None, error: Some(format!("refused: {refused}")) },
                Ok(request) => {
                    let sent = request
                        .header(DELIVERY_ID_HEADER, d.id.to_string())
                        .header(DELIVERY_ATTEMPT_HEADER, d.attempt.to_string())
                        .json(&body)
                        .send()
                        .await;
                    attempt_of(sent)
                }
            };
            match self.queue.record_webhook_attempt(&d, &result, &self.retry()).await? {
                WebhookOutcome::Delivered => info!(url = %d.url, "webhook delivered"),
                WebhookOutcome::Retry => warn!(url = %d.url, error = ?result.error, "webhook failed; will retry"),
                WebhookOutcome::GaveUp => warn!(url = %d.url, error = ?result.error, "webhook failed; giving up after the last attempt"),
                WebhookOutcome::Fenced => debug!("webhook claim expired meanwhile; another janitor owns it"),
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The body a callback receives: the build's status JSON ([`BuildView`],
    /// what `GET /api/builds/{key}` answers) with the event and the delivery's id beside it.
    pub async fn payload(&self, d: &WebhookDelivery, b: &Build) -> Result<WebhookBody, DbError> {
        Ok(WebhookBody { event: FINISHED_EVENT, delivery_id: d.id, build: BuildView::load(&self.queue, b, &self.views).await? })
    }

    /// Delivers while this janitor leads, until `shutdown`.
    pub async fn run(self: Arc<Self>, listener: Listener, mut leadership: Leadership, shutdown: CancellationToken) {
        let span = tracing::info_span!("janitor_job", job = "webhooks");
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = leadership.acquired() => {}
                }
                // Subscribe before the first claim, so no wake-up falls in between.
                let mut events = listener.subscribe();
                loop {
                    // Asks when the next retry is due only after a run that reached the database.
                    let due = match self.run_once().await {
                        Ok(_) => self.queue.next_webhook_due().await,
                        Err(e) => Err(e),
                    };
                    let pause = match due {
                        Ok(next) => next.map_or(MAX_IDLE, |t| (t - chrono::Utc::now()).to_std().unwrap_or_default().min(MAX_IDLE)),
                        Err(e) => {
                            warn!(error = %e, "webhook delivery failed to reach the database");
                            ERROR_PAUSE
                        }
                    };
                    let sleep = tokio::time::sleep(pause);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = leadership.lost() => break,
                            _ = &mut sleep => break,
                            ev = events.recv() => match ev {
                                Ok(ListenerEvent::Notification { channel: Channel::Finished, .. })
                                | Ok(ListenerEvent::Reconnected)
                                | Err(RecvError::Lagged(_)) => break,
                                Ok(_) => continue,
                                Err(RecvError::Closed) => { tokio::select! { _ = &mut sleep => break, _ = shutdown.cancelled() => return } }
                            }
                        }
                    }
                    if !leadership.is_leader() {
                        break;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// What a sent request amounts to: only a 2xx answer delivers.
fn attempt_of(sent: reqwest::Result<reqwest::Response>) -> WebhookAttempt {
    match sent {
        Ok(resp) if resp.status().is_success() => WebhookAttempt { delivered: true, status_code: Some(resp.status().as_u16().into()), error: None },
        Ok(resp) => {
            let status = resp.status();
            let note = if status.is_redirection() { " (redirects are not followed)" } else { "" };
            WebhookAttempt { delivered: false, status_code: Some(status.as_u16().into()), error: Some(format!("HTTP {status}{note}")) }
        }
        Err(e) => {
            // The resolver's refusal reads the same as the pre-request check's.
            let error = match refusal(&e) {
                Some(refused) => format!("refused: {refused}"),
                None => error_chain(&e),
            };
            WebhookAttempt { delivered: false, status_code: None, error: Some(error) }
        }
    }
}

/// The policy's refusal somewhere in an error's chain of causes.
fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a outbound::OutboundError> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(refused) = c.downcast_ref::<outbound::OutboundError>() {
            return Some(refused);
        }
        cur = c.source();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

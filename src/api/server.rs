//! Accepting connections and serving HTTP/1.1 on them with hyper.
//!
//! `axum::serve` would do, but it turns the router into a fresh route table for
//! every connection (`Router::with_state` per accepted stream: a hash map and a
//! boxed clone of every route, about 10 KB). With thousands of requests held open
//! on builds, that is most of what a waiting connection costs; here every
//! connection shares the one router (an `Arc` clone).
//!
//! The connection's read buffer holds a whole request head within
//! `api.max_uri_bytes` and `api.max_header_bytes`, so the router refuses heads
//! over those limits itself; what hyper still refuses on its own (larger heads,
//! malformed requests) goes out in the error envelope ([`super::refusals`]).
//!
//! On shutdown the listener closes at once and every connection is asked to
//! finish its current request and close; [`serve`] returns when all have.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tower::util::MapRequest;
use futures::FutureExt;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::client::Peer;
use super::refusals::{EnvelopeRefusals, RefusalMessages};
use crate::config::ApiConfig;

/// Pause after an accept error that is not the peer's fault (out of file
/// descriptors, say), so that the loop does not spin while it lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Read buffer beyond the configured head limits: the method, version and line
/// ends around the request target, and the end of the head.
const HEAD_SLACK: usize = 16 * 1024;

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(listener: TcpListener, app: Router, api: &ApiConfig, shutdown: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder.max_buf_size(api.max_uri_bytes + api.max_header_bytes + HEAD_SLACK);
    let messages = Arc::new(RefusalMessages::new(api.max_uri_bytes, api.max_header_bytes));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Responses are written whole or in large chunks; Nagle's delay only hurts.
        let _ = stream.set_nodelay(true);
        // Every request learns its TCP peer (who is asking, for admission control).
        // (A mapping service, not `Router::layer`, which would rebuild every route per connection.)
        let service = TowerToHyperService::new(MapRequest::new(app.clone(), move |mut req: axum::extract::Request<_>| {
            req.extensions_mut().insert(Peer(peer));
            req
        }));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(EnvelopeRefusals::new(stream, messages.clone())), service));
        // Mapped rather than awaited in an `async` block, which would hold the
        // connection's state twice over (800 bytes more for every open connection).
        tokio::spawn(conn.map(|ended| {
            if let Err(e) = ended {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one incoming connection (the peer gave up before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

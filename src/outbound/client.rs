//! The HTTP client for URLs clients supplied: reqwest with a resolver that
//! enforces the [`Policy`] on every connection, no redirects and no proxy.
//! Built once per component (the janitor's deliverer) and cloned freely.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{ClientBuilder, RequestBuilder};

use super::{OutboundError, Policy};

/// Resolves host names for the connector and refuses, with the policy's
/// reason, any name that resolves to an address the policy does not allow.
/// reqwest asks it for every new connection, so the check is made against the
/// answer the connection will actually use.
pub struct GuardedResolver {
    policy: Arc<Policy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<Policy>) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str()).await?;
            // Port 0: the connector puts the URL's port in.
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// An HTTP client that reaches only what its policy allows.
#[derive(Clone)]
pub struct GuardedClient {
    http: reqwest::Client,
    policy: Arc<Policy>,
}

impl GuardedClient {
    /// `configure` sets what the caller needs (timeout, user agent). The guard's
    /// own settings are applied after it, so nothing there can undo them:
    /// the [`GuardedResolver`], no redirects (a 3xx is the answer), and no proxy
    /// (`HTTP_PROXY` would have the proxy resolve and connect, past this check).
    pub fn new(policy: Policy, configure: impl FnOnce(ClientBuilder) -> ClientBuilder) -> reqwest::Result<GuardedClient> {
        let policy = Arc::new(policy);
        let http = configure(reqwest::Client::builder())
            .dns_resolver(GuardedResolver::new(policy.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(GuardedClient { http, policy })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A POST to `url`, once its shape and literal address pass the policy (a
    /// literal address never reaches the resolver).
    pub fn post(&self, url: &str) -> Result<RequestBuilder, OutboundError> {
        let url = self.policy.check_target(url)?;
        Ok(self.http.post(url))
    }
}

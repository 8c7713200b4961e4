//! Requests to URLs that clients supply (a build's `callback_url`) go to public
//! addresses only, so that no client can make this service reach the cloud
//! metadata service, its own database port or the private network behind it.
//!
//! The policy is checked twice. When the api accepts a URL ([`Policy::check_url`]):
//! its shape (http or https, a host, no credentials), and every address its
//! host is or resolves to; a name that does not resolve is refused too. And
//! when the janitor connects ([`GuardedClient`]): a literal address is checked
//! before the request is built, and a name is resolved by [`GuardedResolver`],
//! which refuses to hand the connector any address unless all of them pass, so
//! a DNS answer that changed since submit (rebinding) reaches nothing. The
//! client follows no redirects and uses no proxy, either of which would let the
//! request reach an address this check never saw.
//!
//! Operators let internal receivers through with an allow list
//! (`janitor.webhooks.allow`, see [`AllowList`]).

mod address;
mod allow;
mod client;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

pub use address::{classify, Embedding, Kind, NonPublic};
pub use allow::{AllowEntry, AllowList};
pub use client::{GuardedClient, GuardedResolver};

use crate::config::WebhookConfig;

/// The config key of the webhook allow list, named in refusals.
pub const WEBHOOKS_ALLOW_KEY: &str = "janitor.webhooks.allow";
/// How long resolving one host name may take, at submit and at connect time.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A destination refused, and why. Displays as a sentence that names the URL or
/// host and, for an address that is not public, the setting that would allow it.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{url:?} is not a URL: {reason}")]
    Invalid { url: String, reason: url::ParseError },
    #[error("{url:?} is not an http(s) URL")]
    Scheme { url: String },
    #[error("{url:?} has no host")]
    NoHost { url: String },
    #[error("{url:?} carries credentials (user:password@); they would be stored and logged with the URL")]
    Credentials { url: String },
    #[error("host {host} is {reason}; allow it with {setting}")]
    Refused { host: String, reason: NonPublic, setting: &'static str },
    #[error("host {host} resolves to {addr}, {reason}; allow it with {setting}")]
    RefusedResolved { host: String, addr: IpAddr, reason: NonPublic, setting: &'static str },
    #[error("host {host} does not resolve: {source}")]
    Unresolvable { host: String, source: io::Error },
    #[error("host {host} resolves to no address")]
    NoAddress { host: String },
    #[error("host {host} did not resolve within {timeout:?}")]
    ResolveTimeout { host: String, timeout: Duration },
}

/// What one kind of outbound request may reach: public addresses, plus what
/// its allow list names.
#[derive(Debug, Clone)]
pub struct Policy {
    allow: AllowList,
    /// The config key of `allow`, named in refusals.
    setting: &'static str,
}

impl Policy {
    pub fn new(allow: AllowList, setting: &'static str) -> Policy {
        Policy { allow, setting }
    }

    /// The policy of webhook deliveries (`callback_url`).
    pub fn webhooks(cfg: &WebhookConfig) -> Policy {
        Policy::new(cfg.allow.clone(), WEBHOOKS_ALLOW_KEY)
    }

    /// Everything that can be judged without resolving a name: the URL's shape,
    /// and its host when that is an IP address (which no resolver ever sees).
    pub fn check_target(&self, url: &str) -> Result<Url, OutboundError> {
        let parsed = Url::parse(url).map_err(|reason| OutboundError::Invalid { url: url.to_string(), reason })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::Scheme { url: url.to_string() });
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundError::Credentials { url: url.to_string() });
        }
        let literal = match parsed.host() {
            None => return Err(OutboundError::NoHost { url: url.to_string() }),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        };
        if let Some(ip) = literal
            && !self.allow.allows_addr(ip)
            && let Some(reason) = classify(ip)
        {
            let host = parsed.host_str().unwrap_or_default().to_string();
            return Err(OutboundError::Refused { host, reason, setting: self.setting });
        }
        Ok(parsed)
    }

    /// The submit-time check: [`Self::check_target`], then the addresses a host
    /// name resolves to now. A name on the allow list is not resolved: it may
    /// be known only to the janitor's resolver.
    pub async fn check_url(&self, url: &str) -> Result<Url, OutboundError> {
        let parsed = self.check_target(url)?;
        if let Some(Host::Domain(name)) = parsed.host()
            && !self.allow.allows_host(name)
        {
            let addrs = lookup(name).await?;
            self.check_resolved(name, &addrs)?;
        }
        Ok(parsed)
    }

    /// Resolves `host` for a connection: every address must be public or
    /// allowed, else none is returned (a name allowed by the list is not checked).
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, OutboundError> {
        let addrs = lookup(host).await?;
        if !self.allow.allows_host(host) {
            self.check_resolved(host, &addrs)?;
        }
        Ok(addrs)
    }

    /// Refuses the lot when any address `host` resolved to is neither public nor
    /// allowed: an answer that mixes public and private addresses is what a
    /// rebinding attack looks like, and the connector would try them all.
    pub fn check_resolved(&self, host: &str, addrs: &[IpAddr]) -> Result<(), OutboundError> {
        if addrs.is_empty() {
            return Err(OutboundError::NoAddress { host: host.to_string() });
        }
        for &addr in addrs {
            if !self.allow.allows_addr(addr)
                && let Some(reason) = classify(addr)
            {
                return Err(OutboundError::RefusedResolved { host: host.to_string(), addr, reason, setting: self.setting });
            }
        }
        Ok(())
    }
}

/// The addresses `host` resolves to through the system resolver, within [`RESOLVE_TIMEOUT`].
async fn lookup(host: &str) -> Result<Vec<IpAddr>, OutboundError> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| OutboundError::ResolveTimeout { host: host.to_string(), timeout: RESOLVE_TIMEOUT })?
        .map_err(|source| OutboundError::Unresolvable { host: host.to_string(), source })?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a.ip()) {
            addrs.push(a.ip());
        }
    }
    if addrs.is_empty() {
        return Err(OutboundError::NoAddress { host: host.to_string() });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy::new(AllowList::parse(allow).unwrap(), WEBHOOKS_ALLOW_KEY)
    }

    fn refusal(allow: &[&str], url: &str) -> String {
        policy(allow).check_target(url).unwrap_err().to_string()
    }

    #[test]
    fn only_http_urls_with_a_host_and_no_credentials() {
        let p = policy(&[]);
        assert!(p.check_target("https://hooks.example.com/x?y=1").is_ok());
        assert!(p.check_target("http://8.8.8.8:8080/").is_ok());
        assert!(p.check_target("http://[2606:4700:4700::1111]/").is_ok());
        assert!(matches!(p.check_target("ftp://hooks.example.com/"), Err(OutboundError::Scheme { .. })));
        assert!(matches!(p.check_target("file:///etc/passwd"), Err(OutboundError::Scheme { .. })));
        assert!(matches!(p.check_target("gopher://127.0.0.1:5432/"), Err(OutboundError::Scheme { .. })));
        assert!(matches!(p.check_target("not a url"), Err(OutboundError::Invalid { .. })));
        assert!(matches!(p.check_target("http://"), Err(OutboundError::Invalid { .. })));
        assert!(matches!(p.check_target("https://user:secret@hooks.example.com/"), Err(OutboundError::Credentials { .. })));
        assert!(matches!(p.check_target("https://token@hooks.example.com/"), Err(OutboundError::Credentials { .. })));
    }

    #[test]
    fn literal_addresses_in_every_spelling_are_judged() {
        for (url, host, reason) in [
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "a link-local address"),
            ("http://127.0.0.1:5432/", "127.0.0.1", "a loopback address"),
            ("http://[::1]:8234/", "[::1]", "a loopback address"),
            ("http://10.0.0.1/", "10.0.0.1", "a private address (RFC 1918)"),
            ("http://0.0.0.0/", "0.0.0.0", "the unspecified address"),
            ("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]", "an IPv4-mapped address of 127.0.0.1, a loopback address"),
            // URLs read these forms as IPv4 addresses, and so does every HTTP client.
            ("http://2130706433/", "127.0.0.1", "a loopback address"),
            ("http://0x7f.1/", "127.0.0.1", "a loopback address"),
            ("http://127.1/", "127.0.0.1", "a loopback address"),
            ("http://0251.0376.0251.0376/", "169.254.169.254", "a link-local address"),
            ("http://[fe80::1]/", "[fe80::1]", "a link-local address"),
            ("http://[64:ff9b::a9fe:a9fe]/", "[64:ff9b::a9fe:a9fe]", "a NAT64 address of 169.254.169.254, a link-local address"),
        ] {
            assert_eq!(refusal(&[], url), format!("host {host} is {reason}; allow it with janitor.webhooks.allow"), "{url}");
        }
    }

    #[test]
    fn the_allow_list_lets_ranges_and_addresses_through() {
        let p = policy(&["127.0.0.1", "10.1.0.0/16", "fd00::/8"]);
        assert!(p.check_target("http://127.0.0.1:9/").is_ok());
        assert!(p.check_target("http://[::ffff:127.0.0.1]:9/").is_ok());
        assert!(p.check_target("http://10.1.200.3/").is_ok());
        assert!(p.check_target("http://[fd00::5]/").is_ok());
        assert!(p.check_target("http://127.0.0.2/").is_err());
        assert!(p.check_target("http://10.2.0.1/").is_err());
        assert!(p.check_target("http://[::1]/").is_err());
    }

    #[test]
    fn every_resolved_address_must_pass() {
        let p = policy(&["10.1.0.0/16"]);
        let ips = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpAddr>>();
        assert!(p.check_resolved("hooks.example.com", &ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])).is_ok());
        assert!(p.check_resolved("hooks.corp", &ips(&["10.1.0.7"])).is_ok());
        let e = p.check_resolved("rebind.example", &ips(&["93.184.215.14", "169.254.169.254"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host rebind.example resolves to 169.254.169.254, a link-local address; allow it with janitor.webhooks.allow"
        );
        assert!(matches!(p.check_resolved("mapped.example", &ips(&["::ffff:10.0.0.1"])), Err(OutboundError::RefusedResolved { .. })));
        assert!(matches!(p.check_resolved("empty.example", &[]), Err(OutboundError::NoAddress { .. })));
    }

    // `localhost` resolves from /etc/hosts: no packet leaves the machine.
    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_allowed_by_name() {
        let e = policy(&[]).check_url("http://localhost:8234/hook").await.unwrap_err();
        assert!(matches!(&e, OutboundError::RefusedResolved { host, reason, .. } if host == "localhost" && reason.kind == Kind::Loopback), "{e}");
        assert!(policy(&[]).resolve("localhost").await.is_err());
        assert!(policy(&["localhost"]).check_url("http://localhost:8234/hook").await.is_ok());
        assert!(policy(&["localhost"]).resolve("localhost").await.is_ok());
        assert!(policy(&["127.0.0.0/8", "::1"]).check_url("http://localhost:8234/hook").await.is_ok());
    }
}

//! Who is asking: a request's client is its API token when it sends one
//! (`Authorization: Bearer`), else its address: the TCP peer, or, only for
//! peers in `api.trusted_proxies`, the address they forward. IPv6 addresses
//! count by /64, the block one subscriber usually gets, so that rotating through
//! a prefix does not multiply a client's allowance.
//!
//! Tokens are looked up in Postgres on every request that needs a client (no
//! cache), so a token revoked on one host is refused at once by every host.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ipnet::IpNet;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::config::AdmissionConfig;
use crate::db::ApiToken;

/// The TCP peer of a connection, put into every request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A request's client and what it may spend.
#[derive(Debug, Clone)]
pub struct Client {
    /// `token:<name>` or `addr:<address>` (`addr:2001:db8:1:2::/64` for IPv6).
    pub id: String,
    /// The JSON `cbs.admit` enforces; `None`: nothing is charged (admission off,
    /// or the admin token).
    pub limits: Option<Value>,
    /// Requests this client may hold open at once on this process.
    pub max_held: usize,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Client, ApiError> {
        let peer = parts.extensions.get::<Peer>().copied();
        Client::identify(state, &parts.headers, peer).await
    }
}

impl Client {
    /// Identifies the client of a request with these headers from this peer.
    pub async fn identify(state: &AppState, headers: &HeaderMap, peer: Option<Peer>) -> ApiResult<Client> {
        let admission = &state.config.api.admission;
        if let Some(token) = bearer(headers)? {
            if super::admin::is_admin_token(state, token) {
                return Ok(Client { id: "admin".into(), limits: None, max_held: usize::MAX });
            }
            let sha = hex::encode(Sha256::digest(token.as_bytes()));
            let t = state
                .queue
                .authenticate_token(&sha)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API token".into()))?;
            return Ok(Client::for_token(&t, admission));
        }
        let addr = client_address(headers, peer, &state.trusted_proxies);
        let mut limits = limits_json(admission, None);
        if let Some(l) = limits.as_mut().filter(|_| state.config.api.require_token) {
            l["token_required"] = Value::Bool(true);
        }
        Ok(Client { id: format!("addr:{}", address_key(addr)), limits, max_held: admission.max_held_per_client as usize })
    }

    fn for_token(t: &ApiToken, admission: &AdmissionConfig) -> Client {
        let max_held = t.max_held.map_or(admission.max_held_per_client as usize, |m| m as usize);
        Client { id: format!("token:{}", t.name), limits: limits_json(admission, Some(t)), max_held }
    }
}

/// The limits `cbs.admit` reads, the token's own where it has them.
fn limits_json(a: &AdmissionConfig, token: Option<&ApiToken>) -> Option<Value> {
    if !a.enabled {
        return None;
    }
    let burst = token.and_then(|t| t.burst).map_or(a.burst as f64, f64::from);
    let per_hour = token.and_then(|t| t.per_hour).unwrap_or(a.per_hour);
    let max_queued = token.and_then(|t| t.max_queued).map_or(i64::from(a.max_queued_per_client), i64::from);
    Some(json!({
        "burst": burst,
        "per_hour": per_hour,
        "max_queued": max_queued,
        "max_queued_total": a.max_queued_total,
    }))
}

/// The bearer token, if the request sends one; a malformed `Authorization` is a 401.
fn bearer(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token {
        Some(t) => Ok(Some(t)),
        None => Err(ApiError::Unauthorized("Authorization must be \"Bearer <API token>\"".into())),
    }
}

/// The requesting address: the peer's, or, when the peer is a trusted proxy, the
/// rightmost forwarded address that is not itself a trusted proxy (addresses
/// further left were written by the client and prove nothing).
pub fn client_address(headers: &HeaderMap, peer: Option<Peer>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| canonical(p.0.ip()));
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    chain.iter().rev().copied().find(|a| !is_trusted(*a, trusted)).or_else(|| chain.first().copied()).unwrap_or(peer)
}

fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&addr))
}

/// Forwarded addresses in order, client first: from `Forwarded` (RFC 7239) when
/// present, else `X-Forwarded-For`. Entries that are not addresses (`unknown`,
/// obfuscated names) are skipped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim().trim_matches('"')))?
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| parse_node(a.trim()))
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:80`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(canonical(a));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(canonical(a.ip()));
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse::<Ipv6Addr>().ok().map(|a| canonical(IpAddr::V6(a)))
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers) as IPv4.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// What a client address is charged as: IPv4 as is, IPv6 by its /64.
fn address_key(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn peer(s: &str) -> Option<Peer> {
        Some(Peer(s.parse().unwrap()))
    }

    #[test]
    fn forwarded_addresses_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 10.1.2.3")]);
        assert_eq!(client_address(&h, peer("203.0.113.9:4000"), &trusted).to_string(), "203.0.113.9");
        assert_eq!(client_address(&h, peer("10.0.0.5:4000"), &trusted).to_string(), "198.51.100.7");
        // The client wrote the leftmost entry itself: only the rightmost untrusted one counts.
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(client_address(&spoofed, peer("10.0.0.5:4000"), &trusted).to_string(), "198.51.100.7");
        let fwd = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(client_address(&fwd, peer("10.0.0.5:1"), &trusted).to_string(), "2001:db8:cafe::17");
        assert_eq!(client_address(&HeaderMap::new(), peer("10.0.0.5:1"), &trusted).to_string(), "10.0.0.5");
        assert_eq!(client_address(&h, peer("[::ffff:10.0.0.5]:1"), &trusted).to_string(), "198.51.100.7");
    }

    #[test]
    fn ipv6_clients_count_by_64() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(address_key("192.0.2.1".parse().unwrap()), "192.0.2.1");
    }

    #[test]
    fn malformed_authorization_is_refused() {
        assert!(bearer(&headers(&[("authorization", "Basic abc")])).is_err());
        assert_eq!(bearer(&headers(&[("authorization", "Bearer t1")])).unwrap(), Some("t1"));
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
    }
}

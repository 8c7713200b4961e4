//! The operator's exceptions to the public-only rule (`janitor.webhooks.allow`):
//! address ranges (`10.1.0.0/16`, `fd00::/8`), single addresses (`127.0.0.1`)
//! and exact host names (`hooks.internal`). Parsed while the config loads, so a
//! typo stops start-up instead of silently allowing nothing (or too much).
//!
//! A range or address allows a destination whose address it contains, however
//! the URL named it. A host name allows that name, exactly (no subdomains, no
//! wildcards), whatever it resolves to: the operator vouches for the name.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// Longest host name DNS can carry (RFC 1035).
const MAX_HOST_LEN: usize = 253;
/// Longest label of a host name.
const MAX_LABEL_LEN: usize = 63;

/// One entry of an allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// A CIDR range; a single address is a /32 or /128.
    Net(IpNet),
    /// A host name, lowercase, without a trailing dot.
    Host(String),
}

impl FromStr for AllowEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.contains("://") {
            return Err(format!("{s:?} is a URL; give its host name or address"));
        }
        if s.contains('/') {
            let net: IpNet = s.parse().map_err(|_| format!("{s:?} is not a CIDR range like 10.1.0.0/16 or fd00::/8"))?;
            if net != net.trunc() {
                return Err(format!("{s:?} has bits set past its prefix length; did you mean {}?", net.trunc()));
            }
            return Ok(AllowEntry::Net(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowEntry::Net(IpNet::from(ip)));
        }
        check_host_name(s).map(AllowEntry::Host)
    }
}

/// A host name as URLs carry it, lowercased and without a trailing dot.
fn check_host_name(s: &str) -> Result<String, String> {
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    let bad = |why: &str| Err(format!("{s:?} is not an IP address, a CIDR range or a host name: {why}"));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_HOST_LEN {
        return bad("it is longer than 253 characters");
    }
    if name.contains('*') {
        return bad("wildcards are not supported; list each host");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return bad("each dot-separated label must have 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return bad("only letters, digits, '-' and '_' may appear between the dots (use punycode for other names)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
    }
    // URLs read a host whose last label is a number as an IPv4 address (WHATWG),
    // so such an entry could never match a name.
    let numeric = |l: &str| match l.strip_prefix("0x") {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => l.bytes().all(|b| b.is_ascii_digit()),
    };
    if name.rsplit('.').next().is_some_and(numeric) {
        return bad("it looks like an IPv4 address but is not one");
    }
    Ok(name)
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Net(net) => write!(f, "{net}"),
            AllowEntry::Host(host) => f.write_str(host),
        }
    }
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The allow list of one kind of outbound request; empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AllowList(Vec<AllowEntry>);

impl AllowList {
    /// Parses every entry; the error names the first bad one.
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<AllowList, String> {
        entries.into_iter().map(|e| e.as_ref().parse()).collect::<Result<_, _>>().map(AllowList)
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` lies in an allowed range. An IPv4-mapped IPv6 address counts as
    /// its IPv4 address, as the socket treats it.
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.0.iter().any(|e| matches!(e, AllowEntry::Net(net) if net.contains(&ip) || net.contains(&canonical)))
    }

    /// Whether `host` (a name as a URL or a resolver sees it) is allowed by name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.0.iter().any(|e| matches!(e, AllowEntry::Host(h) if h.eq_ignore_ascii_case(host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_as_ranges_addresses_or_host_names() {
        let list = AllowList::parse(["10.1.0.0/16", "127.0.0.1", "::1", "fd00::/8", "Hooks.Internal.", "ci_runner-2.corp"]).unwrap();
        let shown: Vec<String> = list.entries().iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, ["10.1.0.0/16", "127.0.0.1/32", "::1/128", "fd00::/8", "hooks.internal", "ci_runner-2.corp"]);
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (entry, reason) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("10.0.0.0/33", "not a CIDR range"),
            ("not/a/range", "not a CIDR range"),
            ("", "empty"),
            ("*.corp", "wildcards"),
            ("a..b", "1 to 63"),
            ("http://hooks.internal", "is a URL"),
            ("hooks.internal:8080", "only letters"),
            ("[::1]", "only letters"),
            ("-x.corp", "start or end"),
            ("10.0.0", "looks like an IPv4 address"),
            ("0x7f000001", "looks like an IPv4 address"),
        ] {
            let e = entry.parse::<AllowEntry>().unwrap_err();
            assert!(e.contains(reason), "{entry:?}: {e}");
        }
        assert!("x".repeat(64).parse::<AllowEntry>().is_err());
    }

    #[test]
    fn addresses_match_ranges_and_mapped_forms() {
        let list = AllowList::parse(["10.1.0.0/16", "127.0.0.1", "fd00::/8"]).unwrap();
        assert!(list.allows_addr(ip("10.1.2.3")));
        assert!(!list.allows_addr(ip("10.2.0.1")));
        assert!(list.allows_addr(ip("127.0.0.1")));
        assert!(list.allows_addr(ip("::ffff:127.0.0.1")), "IPv4-mapped counts as the IPv4 address");
        assert!(!list.allows_addr(ip("127.0.0.2")));
        assert!(!list.allows_addr(ip("::1")));
        assert!(list.allows_addr(ip("fd12::1")));
        assert!(!list.allows_addr(ip("fc00::1")));
        assert!(!AllowList::default().allows_addr(ip("127.0.0.1")));
    }

    #[test]
    fn host_names_match_exactly() {
        let list = AllowList::parse(["hooks.internal"]).unwrap();
        assert!(list.allows_host("hooks.internal"));
        assert!(list.allows_host("HOOKS.internal."));
        assert!(!list.allows_host("evil.hooks.internal"));
        assert!(!list.allows_host("hooks.internal.evil.com"));
        assert!(!list.allows_host("internal"));
        assert!(!list.allows_addr(ip("127.0.0.1")));
    }
}

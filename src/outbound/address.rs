//! Which IP addresses are public: the one classifier every outbound check asks.
//!
//! An address is public unless it falls in a range that IANA's special-purpose
//! registries (RFC 6890 and successors) mark as not globally reachable, or that
//! reaches this host or its networks some other way. IPv6 is judged by a
//! positive rule on top: only global unicast (2000::/3) is public, so a block
//! assigned tomorrow outside it is refused until this table learns it.
//!
//! IPv6 forms that carry an IPv4 address are judged by that address: an
//! IPv4-mapped `::ffff:127.0.0.1` *is* 127.0.0.1 to a dual-stack socket, and a
//! NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address is delivered to its embedded
//! IPv4 address by a translator or relay. Teredo and the deprecated
//! IPv4-compatible form are refused outright.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0.0.0.0 and ::; Linux connects them to the local host.
    Unspecified,
    /// 0.0.0.0/8 other than 0.0.0.0.
    ThisNetwork,
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// Carrier-grade NAT, 100.64/10 (RFC 6598).
    SharedAddressSpace,
    /// 169.254/16 (cloud metadata services live here) and fe80::/10.
    LinkLocal,
    /// fc00::/7 (RFC 4193).
    UniqueLocal,
    /// fec0::/10, deprecated but still routed locally by some stacks.
    SiteLocal,
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48 (RFC 2544, RFC 5180).
    Benchmarking,
    /// 192.0.0.0/24 and 2001::/23: IETF protocol assignments (DS-Lite, NAT64 discovery, …).
    ProtocolAssignment,
    /// 2001::/32, a tunnel whose endpoint is an IPv4 address in disguise.
    Teredo,
    /// 64:ff9b:1::/48, local-use IPv4/IPv6 translation (RFC 8215).
    LocalTranslation,
    /// 100::/64 (RFC 6666).
    DiscardOnly,
    /// ::/96 other than :: and ::1 (deprecated by RFC 4291).
    Ipv4Compatible,
    /// 240/4, the old 6to4 relay anycast 192.88.99/24, and IPv6 outside 2000::/3.
    Reserved,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Unspecified => "the unspecified address",
            Kind::ThisNetwork => "a \"this network\" address (0.0.0.0/8)",
            Kind::Loopback => "a loopback address",
            Kind::Private => "a private address (RFC 1918)",
            Kind::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            Kind::LinkLocal => "a link-local address",
            Kind::UniqueLocal => "a unique local address (fc00::/7)",
            Kind::SiteLocal => "a site-local address (fec0::/10)",
            Kind::Multicast => "a multicast address",
            Kind::Broadcast => "the broadcast address",
            Kind::Documentation => "a documentation address",
            Kind::Benchmarking => "a benchmarking address",
            Kind::ProtocolAssignment => "an IETF protocol assignment address",
            Kind::Teredo => "a Teredo address (2001::/32)",
            Kind::LocalTranslation => "a local-use translation address (64:ff9b:1::/48)",
            Kind::DiscardOnly => "a discard-only address (100::/64)",
            Kind::Ipv4Compatible => "a deprecated IPv4-compatible address (::/96)",
            Kind::Reserved => "a reserved address",
        })
    }
}

/// The IPv6 forms that stand for an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// ::ffff:0:0/96.
    Mapped,
    /// 64:ff9b::/96 (RFC 6052).
    Nat64,
    /// 2002::/16 (RFC 3056).
    SixToFour,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Embedding::Mapped => "an IPv4-mapped address",
            Embedding::Nat64 => "a NAT64 address",
            Embedding::SixToFour => "a 6to4 address",
        })
    }
}

/// What is wrong with a non-public address; displays as a phrase such as
/// `a private address (RFC 1918)` or `a 6to4 address of 10.0.0.1, a private address (RFC 1918)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonPublic {
    pub kind: Kind,
    /// Set when an IPv6 address was judged by the IPv4 address it carries.
    pub via: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            None => write!(f, "{}", self.kind),
            Some((embedding, v4)) => write!(f, "{embedding} of {v4}, {}", self.kind),
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 ranges that are not public, a more specific range before the one containing it.
const V4_RANGES: &[(Ipv4Net, Kind)] = &[
    (v4(0, 0, 0, 0, 32), Kind::Unspecified),
    (v4(0, 0, 0, 0, 8), Kind::ThisNetwork),
    (v4(10, 0, 0, 0, 8), Kind::Private),
    (v4(100, 64, 0, 0, 10), Kind::SharedAddressSpace),
    (v4(127, 0, 0, 0, 8), Kind::Loopback),
    (v4(169, 254, 0, 0, 16), Kind::LinkLocal),
    (v4(172, 16, 0, 0, 12), Kind::Private),
    (v4(192, 0, 0, 0, 24), Kind::ProtocolAssignment),
    (v4(192, 0, 2, 0, 24), Kind::Documentation),
    (v4(192, 88, 99, 0, 24), Kind::Reserved),
    (v4(192, 168, 0, 0, 16), Kind::Private),
    (v4(198, 18, 0, 0, 15), Kind::Benchmarking),
    (v4(198, 51, 100, 0, 24), Kind::Documentation),
    (v4(203, 0, 113, 0, 24), Kind::Documentation),
    (v4(224, 0, 0, 0, 4), Kind::Multicast),
    (v4(255, 255, 255, 255, 32), Kind::Broadcast),
    (v4(240, 0, 0, 0, 4), Kind::Reserved),
];

/// IPv6 ranges that are not public, a more specific range before the one containing
/// it. The IPv4-carrying forms are handled before this table is consulted.
const V6_RANGES: &[(Ipv6Net, Kind)] = &[
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 128), Kind::Unspecified),
    (v6(0, 0, 0, 0, 0, 0, 0, 1, 128), Kind::Loopback),
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 96), Kind::Ipv4Compatible),
    (v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), Kind::LocalTranslation),
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), Kind::DiscardOnly),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32), Kind::Teredo),
    (v6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48), Kind::Benchmarking),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), Kind::ProtocolAssignment),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), Kind::Documentation),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), Kind::Documentation),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), Kind::UniqueLocal),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), Kind::LinkLocal),
    (v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10), Kind::SiteLocal),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), Kind::Multicast),
];

const NAT64: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);
const SIX_TO_FOUR: Ipv6Net = v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16);
/// Global unicast: the only IPv6 space handed out to the public Internet.
const GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);

/// `None` for a public address, else why it is not one.
pub fn classify(ip: IpAddr) -> Option<NonPublic> {
    match ip {
        IpAddr::V4(a) => classify_v4(a).map(|kind| NonPublic { kind, via: None }),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(a: Ipv4Addr) -> Option<Kind> {
    V4_RANGES.iter().find(|(net, _)| net.contains(&a)).map(|&(_, kind)| kind)
}

fn classify_v6(a: Ipv6Addr) -> Option<NonPublic> {
    let embedded = |embedding: Embedding, v4: Ipv4Addr| classify_v4(v4).map(|kind| NonPublic { kind, via: Some((embedding, v4)) });
    if let Some(v4) = a.to_ipv4_mapped() {
        return embedded(Embedding::Mapped, v4);
    }
    let bits = a.to_bits();
    if NAT64.contains(&a) {
        return embedded(Embedding::Nat64, Ipv4Addr::from_bits(bits as u32));
    }
    if SIX_TO_FOUR.contains(&a) {
        return embedded(Embedding::SixToFour, Ipv4Addr::from_bits((bits >> 80) as u32));
    }
    if let Some(&(_, kind)) = V6_RANGES.iter().find(|(net, _)| net.contains(&a)) {
        return Some(NonPublic { kind, via: None });
    }
    if !GLOBAL_UNICAST.contains(&a) {
        return Some(NonPublic { kind: Kind::Reserved, via: None });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<Kind> {
        classify(s.parse().unwrap()).map(|n| n.kind)
    }

    #[test]
    fn ipv4_special_ranges_are_not_public() {
        let cases: &[(&str, Kind)] = &[
            ("0.0.0.0", Kind::Unspecified),
            ("0.1.2.3", Kind::ThisNetwork),
            ("0.255.255.255", Kind::ThisNetwork),
            ("10.0.0.1", Kind::Private),
            ("10.255.255.255", Kind::Private),
            ("100.64.0.1", Kind::SharedAddressSpace),
            ("100.127.255.255", Kind::SharedAddressSpace),
            ("127.0.0.1", Kind::Loopback),
            ("127.255.255.254", Kind::Loopback),
            ("169.254.169.254", Kind::LinkLocal),
            ("169.254.0.1", Kind::LinkLocal),
            ("172.16.0.1", Kind::Private),
            ("172.31.255.255", Kind::Private),
            ("192.0.0.8", Kind::ProtocolAssignment),
            ("192.0.0.170", Kind::ProtocolAssignment),
            ("192.0.2.1", Kind::Documentation),
            ("192.88.99.1", Kind::Reserved),
            ("192.168.1.1", Kind::Private),
            ("198.18.0.1", Kind::Benchmarking),
            ("198.19.255.255", Kind::Benchmarking),
            ("198.51.100.7", Kind::Documentation),
            ("203.0.113.9", Kind::Documentation),
            ("224.0.0.1", Kind::Multicast),
            ("239.255.255.250", Kind::Multicast),
            ("240.0.0.1", Kind::Reserved),
            ("255.255.255.254", Kind::Reserved),
            ("255.255.255.255", Kind::Broadcast),
        ];
        for &(ip, want) in cases {
            assert_eq!(kind(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn ipv4_public_addresses_and_range_edges_are_public() {
        for ip in [
            "1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255",
            "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.0", "192.0.3.0",
            "192.88.98.255", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "203.0.114.1",
            "223.255.255.255",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_special_ranges_are_not_public() {
        let cases: &[(&str, Kind)] = &[
            ("::", Kind::Unspecified),
            ("::1", Kind::Loopback),
            ("::2", Kind::Ipv4Compatible),
            ("::7f00:1", Kind::Ipv4Compatible),
            ("::808:808", Kind::Ipv4Compatible),
            ("64:ff9b:1::1", Kind::LocalTranslation),
            ("100::1", Kind::DiscardOnly),
            ("2001::1", Kind::Teredo),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Kind::Teredo),
            ("2001:2::1", Kind::Benchmarking),
            ("2001:10::1", Kind::ProtocolAssignment),
            ("2001:1ff:ffff::1", Kind::ProtocolAssignment),
            ("2001:db8::1", Kind::Documentation),
            ("3fff::1", Kind::Documentation),
            ("fc00::1", Kind::UniqueLocal),
            ("fd12:3456:789a::1", Kind::UniqueLocal),
            ("fe80::1", Kind::LinkLocal),
            ("febf:ffff::1", Kind::LinkLocal),
            ("fec0::1", Kind::SiteLocal),
            ("ff02::1", Kind::Multicast),
            ("ff0e::1", Kind::Multicast),
            // Outside global unicast (2000::/3): not handed out to the Internet.
            ("1::1", Kind::Reserved),
            ("4000::1", Kind::Reserved),
            ("5f00::1", Kind::Reserved),
            ("e000::1", Kind::Reserved),
        ];
        for &(ip, want) in cases {
            assert_eq!(kind(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn ipv6_global_unicast_is_public() {
        for ip in ["2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:80b::200e", "2001:200::1", "3ffe::1", "2c0f::1"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address() {
        let cases: &[(&str, Embedding, &str, Kind)] = &[
            ("::ffff:127.0.0.1", Embedding::Mapped, "127.0.0.1", Kind::Loopback),
            ("::ffff:169.254.169.254", Embedding::Mapped, "169.254.169.254", Kind::LinkLocal),
            ("::ffff:10.0.0.1", Embedding::Mapped, "10.0.0.1", Kind::Private),
            ("::ffff:0.0.0.0", Embedding::Mapped, "0.0.0.0", Kind::Unspecified),
            ("64:ff9b::7f00:1", Embedding::Nat64, "127.0.0.1", Kind::Loopback),
            ("64:ff9b::a9fe:a9fe", Embedding::Nat64, "169.254.169.254", Kind::LinkLocal),
            ("64:ff9b::192.168.0.1", Embedding::Nat64, "192.168.0.1", Kind::Private),
            ("2002:a00:1::", Embedding::SixToFour, "10.0.0.1", Kind::Private),
            ("2002:7f00:1::1", Embedding::SixToFour, "127.0.0.1", Kind::Loopback),
            ("2002:a9fe:a9fe:1::1", Embedding::SixToFour, "169.254.169.254", Kind::LinkLocal),
            ("2002:6440:1::", Embedding::SixToFour, "100.64.0.1", Kind::SharedAddressSpace),
        ];
        for &(ip, embedding, v4, want) in cases {
            let got = classify(ip.parse().unwrap());
            assert_eq!(got, Some(NonPublic { kind: want, via: Some((embedding, v4.parse().unwrap())) }), "{ip}");
        }
        for ip in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert_eq!(kind(ip), None, "{ip} carries a public IPv4 address");
        }
    }

    #[test]
    fn reasons_read_as_phrases() {
        let n = classify("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(n.to_string(), "a private address (RFC 1918)");
        let n = classify("::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(n.to_string(), "an IPv4-mapped address of 127.0.0.1, a loopback address");
    }
}

//! Who the client is: the one address every credential check, WMSAuth IP binding and audit row
//! of a viewer request uses.
//!
//! Two sources, trusted differently:
//! - The **peer**: the address Spin accepted the connection from. Spin passes it in
//!   `spin-client-addr`, but it *appends* its own value after any `spin-client-addr` the client
//!   sent (Spin's `crates/trigger-http/src/headers.rs` `prepare_request_headers`), so only the
//!   last value is Spin's; the first is whatever the client chose. The shell passes the last.
//! - A **forwarding header** (`X-Forwarded-For`, `CF-Connecting-IP`, `True-Client-IP`), which
//!   anyone can send. It is read only when the peer is inside `trusted_proxies` (the CDN or
//!   reverse proxy in front of the edge); with the default empty list it is never read, so a
//!   viewer cannot name its own address by sending one.
//!
//! In `X-Forwarded-For` each proxy appends the address it received the request from, so the
//! entries a client wrote itself are on the *left* and the trustworthy ones on the right: the
//! client is the right-most entry that is not a trusted proxy. Anything unreadable on the way
//! there makes the address unknown (`None`), which fails every IP-bound credential closed
//! rather than guessing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest text of one address (IPv6 with an embedded IPv4 and a port, in brackets) plus room.
const MAX_ADDRESS_LEN: usize = 64;

/// Why the proxy configuration does not parse (a deployment fault: the shell answers 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAddrError {
    /// A `trusted_proxies` entry is not `ip` or `ip/prefix` with the host bits clear.
    #[error("trusted_proxies entry {0:?} is not a CIDR")]
    BadCidr(String),
    /// `client_ip_header` is none of the headers this module knows how to read.
    #[error("client_ip_header {0:?} is not x-forwarded-for, cf-connecting-ip or true-client-ip")]
    BadHeader(String),
}

/// One `trusted_proxies` entry: an address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `ip` (a single address) or `ip/prefix`. Host bits must be clear: `10.0.0.1/8` is more
    /// likely a typo than a wish to trust all of `10/8`, so it is refused, not rounded.
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = address.parse::<IpAddr>().ok()?.to_canonical();
        let width = bits(network);
        let prefix = match prefix {
            None => width,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse::<u8>().ok().filter(|p| *p <= width)?
            }
            Some(_) => return None,
        };
        let cidr = Cidr { network, prefix };
        (cidr.mask(network) == network).then_some(cidr)
    }

    /// `ip` with the bits past the prefix cleared (in this block's family).
    fn mask(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.mask(ip) == self.network
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The header a trusted proxy writes the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: a list each hop appends to; the client is the right-most entry that
    /// is not a trusted proxy.
    XForwardedFor,
    /// `CF-Connecting-IP` (Cloudflare): one address, overwritten by the CDN.
    CfConnectingIp,
    /// `True-Client-IP` (Akamai, Cloudflare Enterprise): one address, overwritten by the CDN.
    TrueClientIp,
}

impl ClientIpHeader {
    /// The lower-case header name.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::CfConnectingIp => "cf-connecting-ip",
            Self::TrueClientIp => "true-client-ip",
        }
    }
}

/// Which peers are proxies whose forwarding header is believed, and which header that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    trusted: Vec<Cidr>,
    header: ClientIpHeader,
}

impl ProxyPolicy {
    /// Parses the `trusted_proxies` (comma-separated CIDRs or addresses; empty trusts no one)
    /// and `client_ip_header` (case-insensitive header name) variables.
    pub fn parse(trusted_proxies: &str, client_ip_header: &str) -> Result<Self, ClientAddrError> {
        let trusted = trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Cidr::parse(entry).ok_or_else(|| ClientAddrError::BadCidr(entry.into())))
            .collect::<Result<_, _>>()?;
        let header = [
            ClientIpHeader::XForwardedFor,
            ClientIpHeader::CfConnectingIp,
            ClientIpHeader::TrueClientIp,
        ]
        .into_iter()
        .find(|header| header.name().eq_ignore_ascii_case(client_ip_header.trim()))
        .ok_or_else(|| ClientAddrError::BadHeader(client_ip_header.into()))?;
        Ok(ProxyPolicy { trusted, header })
    }

    /// The header to hand to [`client_ip`], or `None` when no proxy is trusted (then no header
    /// is read at all).
    pub fn header(&self) -> Option<ClientIpHeader> {
        (!self.trusted.is_empty()).then_some(self.header)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(ip))
    }
}

/// An address as Spin writes `spin-client-addr` (`ip:port`, IPv6 in brackets) or as proxies
/// write forwarding headers (a bare address, sometimes with a port). IPv4-mapped IPv6 reads as
/// IPv4, so one client has one text form.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if text.len() > MAX_ADDRESS_LEN {
        return None;
    }
    text.parse::<SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client's address.
///
/// `peer` is Spin's own `spin-client-addr` value (the last one), `None` if unreadable.
/// `forwarded` holds every value of the policy's [`ProxyPolicy::header`] in order (empty when
/// it was absent or no proxy is trusted; a value that is not visible ASCII passed as `""`).
/// When the peer is not a trusted proxy, or sent no forwarding header (it made the request
/// itself), the peer is the client. `None`: unknown, because the header of a trusted proxy is
/// malformed or names no address.
pub fn client_ip(peer: Option<IpAddr>, forwarded: &[&str], policy: &ProxyPolicy) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let Some(header) = policy.header() else {
        return Some(peer);
    };
    if !policy.trusts(peer) || forwarded.is_empty() {
        return Some(peer);
    }
    match header {
        ClientIpHeader::XForwardedFor => right_most_untrusted(forwarded, policy),
        ClientIpHeader::CfConnectingIp | ClientIpHeader::TrueClientIp => match forwarded {
            [single] => parse_address(single),
            _ => None,
        },
    }
}

/// Walks `X-Forwarded-For` (several header lines read as one list, in order) from the right,
/// skipping trusted proxies: the first other address is the client. An entry that does not
/// parse stops the walk with `None` (what lies left of it cannot be placed). When every entry
/// is a trusted proxy the left-most one is the client (a request from inside the trusted
/// network).
fn right_most_untrusted(forwarded: &[&str], policy: &ProxyPolicy) -> Option<IpAddr> {
    let mut left_most = None;
    for entry in forwarded.iter().rev().flat_map(|line| line.rsplit(',')) {
        let ip = parse_address(entry)?;
        if !policy.trusts(ip) {
            return Some(ip);
        }
        left_most = Some(ip);
    }
    left_most
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn policy(trusted: &str, header: &str) -> ProxyPolicy {
        ProxyPolicy::parse(trusted, header).expect("valid policy")
    }

    #[test]
    fn spin_client_addr_forms() {
        assert_eq!(parse_address("203.0.113.5:4711"), Some(ip("203.0.113.5")));
        assert_eq!(parse_address("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_address(" 203.0.113.5 "), Some(ip("203.0.113.5")));
        assert_eq!(parse_address("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(
            parse_address("[::ffff:203.0.113.5]:1"),
            Some(ip("203.0.113.5"))
        );
        for bad in [
            "",
            "unknown",
            "203.0.113",
            "203.0.113.5:x",
            "[2001:db8::1",
            "1.2.3.4/8",
        ] {
            assert_eq!(parse_address(bad), None, "{bad:?}");
        }
        assert_eq!(parse_address(&format!("{}1", " ".repeat(70))), None);
    }

    #[test]
    fn cidrs_parse_strictly() {
        let parsed = policy(
            " 10.0.0.0/8, 192.0.2.1 ,2001:db8::/32,, ",
            "x-forwarded-for",
        );
        assert_eq!(parsed.trusted.len(), 3);
        assert!(parsed.trusts(ip("10.255.0.1")));
        assert!(!parsed.trusts(ip("11.0.0.1")));
        assert!(parsed.trusts(ip("192.0.2.1")));
        assert!(!parsed.trusts(ip("192.0.2.2")));
        assert!(parsed.trusts(ip("2001:db8:ffff::1")));
        assert!(!parsed.trusts(ip("2001:db9::1")));
        // IPv4-mapped IPv6 is the IPv4 address; an IPv4 block never matches other IPv6.
        assert!(parsed.trusts(ip("::ffff:10.1.2.3")));
        assert!(!parsed.trusts(ip("::a01:203")));
        let everything = policy("0.0.0.0/0,::/0", "x-forwarded-for");
        assert!(everything.trusts(ip("203.0.113.5")));
        assert!(everything.trusts(ip("2001:db8::1")));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/08x",
        ] {
            assert_eq!(
                ProxyPolicy::parse(bad, "x-forwarded-for"),
                Err(ClientAddrError::BadCidr(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn header_names() {
        assert_eq!(
            policy("10.0.0.0/8", " CF-Connecting-IP").header(),
            Some(ClientIpHeader::CfConnectingIp)
        );
        assert_eq!(
            policy("10.0.0.0/8", "true-client-ip").header(),
            Some(ClientIpHeader::TrueClientIp)
        );
        // Nothing trusted: no header is read whatever the setting.
        assert_eq!(policy("", "x-forwarded-for").header(), None);
        assert_eq!(
            ProxyPolicy::parse("", "forwarded"),
            Err(ClientAddrError::BadHeader("forwarded".into()))
        );
    }

    #[test]
    fn with_nobody_trusted_the_peer_is_the_client() {
        let none = policy("", "x-forwarded-for");
        let peer = Some(ip("198.51.100.9"));
        assert_eq!(client_ip(peer, &["203.0.113.5"], &none), peer);
        assert_eq!(client_ip(None, &["203.0.113.5"], &none), None);
    }

    #[test]
    fn an_untrusted_peer_cannot_forward() {
        let cdn = policy("10.0.0.0/8", "x-forwarded-for");
        let peer = Some(ip("198.51.100.9"));
        assert_eq!(client_ip(peer, &["203.0.113.5"], &cdn), peer);
        let cf = policy("10.0.0.0/8", "cf-connecting-ip");
        assert_eq!(client_ip(peer, &["203.0.113.5"], &cf), peer);
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right() {
        let cdn = policy("10.0.0.0/8, 2001:db8:cd::/48", "x-forwarded-for");
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(
            client_ip(peer, &["203.0.113.5"], &cdn),
            Some(ip("203.0.113.5"))
        );
        // The client wrote the left-most entries itself: they are never reached.
        assert_eq!(
            client_ip(
                peer,
                &["192.0.2.66, 198.51.100.1, 203.0.113.5, 10.0.0.7"],
                &cdn
            ),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            client_ip(peer, &["10.9.9.9, 203.0.113.5"], &cdn),
            Some(ip("203.0.113.5"))
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client_ip(peer, &["192.0.2.66", "203.0.113.5, 10.0.0.7"], &cdn),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            client_ip(peer, &["2001:db8:1::5, 2001:db8:cd::1"], &cdn),
            Some(ip("2001:db8:1::5"))
        );
        assert_eq!(
            client_ip(Some(ip("2001:db8:cd::9")), &["[2001:db8:1::5]:5000"], &cdn),
            Some(ip("2001:db8:1::5"))
        );
        // Only trusted hops: the left-most is the client.
        assert_eq!(
            client_ip(peer, &["10.1.1.1, 10.2.2.2"], &cdn),
            Some(ip("10.1.1.1"))
        );
        // The proxy made the request itself.
        assert_eq!(client_ip(peer, &[], &cdn), peer);
    }

    #[test]
    fn malformed_forwarding_makes_the_client_unknown() {
        let cdn = policy("10.0.0.0/8", "x-forwarded-for");
        let peer = Some(ip("10.0.0.1"));
        for bad in [
            "",
            "unknown",
            "203.0.113.5,",
            "203.0.113.5, , 10.0.0.7",
            "10.0.0.7, garbage",
            "_hidden, 10.0.0.7",
        ] {
            assert_eq!(client_ip(peer, &[bad], &cdn), None, "{bad:?}");
        }
        // Garbage left of the right-most untrusted entry is never looked at.
        assert_eq!(
            client_ip(peer, &["garbage, 203.0.113.5"], &cdn),
            Some(ip("203.0.113.5"))
        );
        let cf = policy("10.0.0.0/8", "cf-connecting-ip");
        assert_eq!(
            client_ip(peer, &["203.0.113.5"], &cf),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(client_ip(peer, &["203.0.113.5", "198.51.100.1"], &cf), None);
        assert_eq!(client_ip(peer, &["203.0.113.5, 198.51.100.1"], &cf), None);
        assert_eq!(client_ip(peer, &[""], &cf), None);
    }
}

//! `allowed_outbound_hosts`: which URLs a component may request, with Spin's parsing rules.
//!
//! Spin denies every outbound request unless one pattern of the component allows the URL's
//! scheme, host and port (default port from the scheme when omitted). Patterns are
//! `<scheme>://<host>[:<port>]` where scheme, host and port may each be `*`, the host may be
//! `*.domain` (any subdomain) or an IP/CIDR, and the port may be a `a..b` range. We implement
//! the same grammar so an app that passes here is neither more nor less privileged on Spin.
//!
//! Local service chaining (`http://<component id>.spin.internal`) follows Spin's rule (SIP 017):
//! only an entry naming a `spin.internal` host (`http://<id>.spin.internal` or
//! `http://*.spin.internal`) grants it; the allow-all `*://*:*` does not.

use std::net::IpAddr;

/// Why an `allowed_outbound_hosts` entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedHostError {
    /// The entry has no `scheme://`.
    #[error("{0:?} does not contain a scheme (e.g., 'http://' or '*://')")]
    MissingScheme(String),
    /// The entry is malformed in some other way.
    #[error("invalid allowed outbound host {entry:?}: {reason}")]
    Invalid {
        /// The entry as written (after template expansion).
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    AnySubdomain(String),
    Exact(String),
    Network {
        addr: IpAddr,
        prefix: u8,
    },
    /// `self` / `self.alt`: relative (self) requests, which this host does not route.
    ToSelf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
    /// Half-open, like Spin's `Range<u16>`.
    Range(u16, u16),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemePattern,
    host: HostPattern,
    port: PortPattern,
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHost {
    /// Parses one entry (already template-expanded).
    pub fn parse(entry: &str) -> Result<Self, AllowedHostError> {
        let invalid = |reason: &str| AllowedHostError::Invalid {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(AllowedHostError::MissingScheme(entry.to_owned()));
        };
        let (host, port_and_path) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match port_and_path.split_once('/') {
            Some((_, path)) if !path.is_empty() => return Err(invalid("has a path")),
            Some((port, _)) => port,
            None => port_and_path,
        };

        let scheme_pattern = if scheme == "*" {
            SchemePattern::Any
        } else if scheme.is_empty() || !scheme.chars().all(char::is_alphabetic) {
            return Err(invalid("scheme must be alphabetic or '*'"));
        } else {
            SchemePattern::Exact(scheme.to_owned())
        };

        let host = host.trim();
        let host_pattern = if host == "*" {
            HostPattern::Any
        } else if host == "self" || host == "self.alt" {
            HostPattern::ToSelf
        } else if let Some(network) = parse_network(host) {
            network
        } else if matches!(host.split('/').nth(1), Some(path) if !path.is_empty()) {
            return Err(invalid("hosts must not contain paths"));
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(invalid("wildcards are allowed only as prefixes"));
            }
            HostPattern::AnySubdomain(format!(".{domain}"))
        } else if host.contains('*') {
            return Err(invalid("wildcards are allowed only as subdomains"));
        } else {
            HostPattern::Exact(host.trim_end_matches('/').to_owned())
        };

        let port_pattern = if port.is_empty() {
            PortPattern::Exact(well_known_port(scheme).ok_or_else(|| {
                invalid("no port was provided and the scheme does not have a known default port")
            })?)
        } else if port == "*" {
            PortPattern::Any
        } else if let Some((start, end)) = port.split_once("..") {
            let start = start
                .parse()
                .map_err(|_| invalid("port range contains non-number"))?;
            let end = end
                .parse()
                .map_err(|_| invalid("port range contains non-number"))?;
            PortPattern::Range(start, end)
        } else {
            PortPattern::Exact(port.parse().map_err(|_| invalid("port is not a number"))?)
        };

        Ok(Self {
            scheme: scheme_pattern,
            host: host_pattern,
            port: port_pattern,
        })
    }

    /// Whether this entry names `spin.internal` hosts, the only entries that grant chaining.
    fn is_for_service_chaining(&self) -> bool {
        match &self.host {
            HostPattern::Exact(host) => service_chaining_host(host).is_some(),
            HostPattern::AnySubdomain(suffix) => suffix
                .strip_prefix('.')
                .is_some_and(|domain| domain.eq_ignore_ascii_case(SERVICE_CHAINING_DOMAIN)),
            _ => false,
        }
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = match &self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Exact(s) => s == scheme,
        };
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::AnySubdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => h == host,
            HostPattern::Network { addr, prefix } => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| network_contains(*addr, *prefix, ip)),
            HostPattern::ToSelf => false,
        };
        let port_ok = match &self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => port.or_else(|| well_known_port(scheme)) == Some(*p),
            PortPattern::Range(start, end) => port
                .or_else(|| well_known_port(scheme))
                .is_some_and(|p| (*start..*end).contains(&p)),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// The domain whose subdomains name the app's own components (Spin local service chaining).
pub const SERVICE_CHAINING_DOMAIN: &str = "spin.internal";

/// The component a chaining host names: `ppv-sync` for `ppv-sync.spin.internal` (a port, if
/// any, is ignored, as Spin does). `None` for every other host.
pub fn service_chaining_host(host: &str) -> Option<&str> {
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let (component, domain) = host.split_once('.')?;
    (domain.eq_ignore_ascii_case(SERVICE_CHAINING_DOMAIN) && !component.is_empty())
        .then_some(component)
}

/// The component an outbound request URI chains to, if its host is a chaining host.
pub fn service_chaining_target(uri: &http::Uri) -> Option<&str> {
    service_chaining_host(uri.host()?.trim())
}

/// `10.0.0.0/8`, `::1/128` or a bare IP (a single-address network), as `ip_network` accepts them.
fn parse_network(host: &str) -> Option<HostPattern> {
    let (addr, prefix) = match host.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (host, None),
    };
    let addr: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some(HostPattern::Network { addr, prefix })
}

fn network_contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// All patterns of one component: a URL is allowed if any pattern allows it.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses every (template-expanded) entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        if let [only] = entries
            && only.as_ref() == "insecure:allow-all"
        {
            return Err(AllowedHostError::Invalid {
                entry: only.as_ref().to_owned(),
                reason: "not allowed - use '*://*:*' instead".to_owned(),
            });
        }
        let hosts = entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { hosts })
    }

    /// Whether an absolute request URI may be sent. Relative URIs (self requests) are denied,
    /// and so is a chaining host unless an entry made for chaining allows it
    /// ([`AllowedHosts::allows_chaining`]).
    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        self.allowed_by(uri, |_| true)
    }

    /// Whether a request to `http://<component>.spin.internal/...` may be chained: some
    /// entry naming `spin.internal` hosts allows it (Spin: the allow-all entry does not).
    pub fn allows_chaining(&self, uri: &http::Uri) -> bool {
        service_chaining_target(uri).is_some()
            && self.allowed_by(uri, AllowedHost::is_for_service_chaining)
    }

    fn allowed_by(&self, uri: &http::Uri, eligible: impl Fn(&AllowedHost) -> bool) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        let host = authority.host();
        if host.is_empty() {
            return false;
        }
        let chaining = service_chaining_host(host).is_some();
        let host = host.to_ascii_lowercase();
        let port = authority.port_u16();
        self.hosts.iter().any(|h| {
            eligible(h)
                && (!chaining || h.is_for_service_chaining())
                && h.allows(scheme, &host, port)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], uri: &str) -> bool {
        AllowedHosts::parse(entries)
            .unwrap()
            .allows_uri(&uri.parse().unwrap())
    }

    #[test]
    fn exact_host_uses_scheme_default_port() {
        let e = ["https://example.com"];
        assert!(allows(&e, "https://example.com/a?b"));
        assert!(allows(&e, "https://example.com:443/"));
        assert!(!allows(&e, "https://example.com:8443/"));
        assert!(!allows(&e, "http://example.com/"));
        assert!(!allows(&e, "https://evil.com/"));
        assert!(!allows(&e, "https://sub.example.com/"));
    }

    #[test]
    fn explicit_port_and_wildcards() {
        assert!(allows(
            &["http://127.0.0.1:9000"],
            "http://127.0.0.1:9000/x"
        ));
        assert!(!allows(
            &["http://127.0.0.1:9000"],
            "http://127.0.0.1:9001/x"
        ));
        assert!(allows(&["http://localhost:*"], "http://localhost:1234/"));
        assert!(allows(&["*://example.com:80"], "http://example.com/"));
        assert!(allows(
            &["https://*.example.com"],
            "https://a.b.example.com/"
        ));
        assert!(!allows(&["https://*.example.com"], "https://example.com/"));
        assert!(allows(&["*://*:*"], "http://anything:1/"));
        assert!(allows(
            &["http://localhost:8000..8010"],
            "http://localhost:8005/"
        ));
        assert!(!allows(
            &["http://localhost:8000..8010"],
            "http://localhost:8010/"
        ));
    }

    #[test]
    fn cidr_hosts() {
        assert!(allows(&["http://10.0.0.0/8:*"], "http://10.1.2.3:5/"));
        assert!(!allows(&["http://10.0.0.0/8:*"], "http://11.1.2.3:5/"));
    }

    #[test]
    fn relative_and_self_are_denied() {
        assert!(!allows(&["http://self"], "/relative"));
        assert!(!allows(&["*://*:*"], "/relative"));
    }

    #[test]
    fn chaining_needs_a_spin_internal_entry() {
        let uri = "http://ppv-sync.spin.internal/internal/x".parse().unwrap();
        let hosts = |entries: &[&str]| AllowedHosts::parse(entries).unwrap();
        assert!(hosts(&["http://ppv-sync.spin.internal"]).allows_chaining(&uri));
        assert!(hosts(&["http://*.spin.internal"]).allows_chaining(&uri));
        // SIP 017: the allow-all wildcard does not, by itself, enable chaining.
        assert!(!hosts(&["*://*:*"]).allows_chaining(&uri));
        assert!(!hosts(&["*://*:*"]).allows_uri(&uri));
        assert!(!hosts(&["http://other.spin.internal"]).allows_chaining(&uri));
        assert!(!hosts(&["https://ppv-sync.spin.internal"]).allows_chaining(&uri));
        assert!(
            !hosts(&["http://ppv-sync.spin.internal"])
                .allows_chaining(&"http://example.com/".parse().unwrap())
        );
        assert_eq!(service_chaining_target(&uri), Some("ppv-sync"));
        assert_eq!(service_chaining_host("key.spin.internal:80"), Some("key"));
        assert_eq!(service_chaining_host("a.b.spin.internal"), None);
        assert_eq!(service_chaining_host("spin.internal"), None);
        assert_eq!(service_chaining_host("example.com"), None);
    }

    #[test]
    fn rejects_what_spin_rejects() {
        for bad in [
            "example.com",
            "*",
            "https://example.com/path",
            "https://ex*ample.com",
            "https://*.ex*ample.com",
            "ftp://example.com",
            "http://example.com:port",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowedHosts::parse(&["insecure:allow-all"]).is_err());
    }
}

//! Arbitrary text as `trusted_proxies` (first line) and as forwarding header values (the
//! other lines): parsing and the client-address walk must return, never panic; whatever
//! client an untrusted peer's headers yield is the peer itself.
#![no_main]

use std::net::IpAddr;

use gatecast_core::client_addr::{self, ProxyPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let trusted = lines.next().unwrap_or("");
    let forwarded: Vec<&str> = lines.collect();
    let _ = client_addr::parse_address(trusted);
    for header in ["x-forwarded-for", "cf-connecting-ip"] {
        let Ok(policy) = ProxyPolicy::parse(trusted, header) else {
            continue;
        };
        let trusted_peer = IpAddr::from([127, 0, 0, 1]);
        let _ = client_addr::client_ip(Some(trusted_peer), &forwarded, &policy);
        // 192.0.2.1 (TEST-NET-1) is the peer: unless trusted, headers change nothing.
        let outsider = IpAddr::from([192, 0, 2, 1]);
        let untrusted = ProxyPolicy::parse("", header).expect("empty list parses");
        assert_eq!(
            client_addr::client_ip(Some(outsider), &forwarded, &untrusted),
            Some(outsider)
        );
    }
});

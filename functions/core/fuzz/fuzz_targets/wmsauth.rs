//! Arbitrary text as a `wmsAuthSign` value and as a `server_time`: parse and verify must
//! return, never panic; a parsed server_time must format back to a time that parses the same.
#![no_main]

use gatecast_core::wmsauth::{self, VerifyRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = wmsauth::parse(text);
    let request = VerifyRequest {
        key: "defaultpassword",
        client_ip: "203.0.113.5",
        stream_path: "live/stream",
        now: 1_551_425_504,
        tolerance_seconds: 30,
        // Every form accepted, so fuzzing reaches the hash and time checks of each.
        compat: wmsauth::Compat {
            id_only: true,
            unscoped: true,
            prefix: true,
        },
    };
    let _ = wmsauth::verify(text, &request);
    if let Ok(unix) = wmsauth::parse_server_time(text) {
        let formatted = wmsauth::format_server_time(unix);
        assert_eq!(wmsauth::parse_server_time(&formatted), Ok(unix));
    }
});

//! Arbitrary text as a viewer token: verify must return, never panic, and accept only tokens
//! that re-issue to themselves.
#![no_main]

use gatecast_core::viewer_token::{self, Scope, SigningKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = SigningKeys::parse("k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==")
        .expect("fixed fuzz keys parse");
    if let Ok(claims) = viewer_token::verify(token, &keys, 0, Scope::Key, "benw", None) {
        let reissued = viewer_token::issue(&claims, keys.current().secret()).expect("reissue");
        assert_eq!(reissued, token);
    }
});

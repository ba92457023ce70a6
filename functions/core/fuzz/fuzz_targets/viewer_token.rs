//! Arbitrary text as a viewer token: verify must return, never panic, and accept only tokens
//! that re-issue to themselves.
#![no_main]

use gatecast_core::layout::{RequestedObject, StreamName};
use gatecast_core::viewer_token::{self, SigningKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = SigningKeys::parse("k2:Y3VycmVudC1zZWNyZXQtMDEyMzQ1Njc4OQ==")
        .expect("fixed fuzz keys parse");
    let key = RequestedObject::Key(StreamName::parse("benw").expect("valid name"), 7);
    if let Ok(claims) = viewer_token::verify(token, &keys, 0, &key, None) {
        let reissued = viewer_token::issue(&claims, keys.current().secret()).expect("reissue");
        assert_eq!(reissued, token);
    }
});

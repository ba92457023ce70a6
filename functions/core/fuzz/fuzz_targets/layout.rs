//! Arbitrary text as a request path: parse must return, never panic, and whatever it accepts
//! must map back to exactly the path it came from.
#![no_main]

use gatecast_core::layout::RequestedObject;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(object) = RequestedObject::parse(path) {
        assert_eq!(format!("/{}", object.storage_path()), path);
    }
});

//! Arbitrary text as an nginx-rtmp hook body (`application/x-www-form-urlencoded`), read the
//! way the api's hooks read it: nothing may panic, a stream key is never empty, and a lease
//! lasts three update intervals of 1 s to an hour whatever the body states.
#![no_main]

use gatecast_core::hook;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(key) = hook::stream_key(body) {
        assert!(!key.is_empty());
    }
    let _ = hook::lease_holder(body);
    let seconds = hook::lease_seconds(body);
    assert!((hook::LEASE_INTERVALS..=hook::LEASE_INTERVALS * 3600).contains(&seconds));
    let _ = hook::is_update_call(body);
});

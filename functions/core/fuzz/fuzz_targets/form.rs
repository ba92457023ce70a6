//! Arbitrary text as a query string or form body and as a `Cookie` header (the first line is
//! the name looked up, the rest the input): lookups must return, never panic; a cookie value
//! is a piece of the header as sent; and any text encoded with `form::encode` reads back
//! unchanged under any name.
#![no_main]

use gatecast_core::form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, input) = text.split_once('\n').unwrap_or(("t", text));
    let _ = form::field(input, name);
    if let Some(value) = form::cookie(input, name) {
        assert!(input.contains(value));
    }
    let pair = format!("{}={}", form::encode(name), form::encode(input));
    assert_eq!(form::field(&pair, name).as_deref(), Some(input));
});

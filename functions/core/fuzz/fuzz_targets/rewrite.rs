//! Arbitrary text as a playlist: rewrite must return, never panic, and on success only insert
//! the key or segment query and their separators.
#![no_main]

use gatecast_core::rewrite::{RewriteOptions, rewrite_playlist};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(playlist) = std::str::from_utf8(data) else {
        return;
    };
    for segment_query in [None, Some("seg=Y")] {
        let options = RewriteOptions {
            key_query: Some("tok=Z"),
            segment_query,
        };
        if let Ok(out) = rewrite_playlist(playlist, &options) {
            assert!(out.len() >= playlist.len());
            // Separators may be reused (`a?` + `tok=Z`), so compare without them.
            let strip = |text: &str| {
                text.replace("tok=Z", "")
                    .replace("seg=Y", "")
                    .replace(['?', '&'], "")
            };
            assert_eq!(strip(&out), strip(playlist));
        }
    }
});

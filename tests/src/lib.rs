//! Shared support for gatecast's end-to-end tests: a real publisher (ffmpeg), a real HLS viewer
//! (fetch playlist → follow key URIs → fetch segments → decrypt) and a real media checker
//! (ffprobe).
//!
//! The viewer side deliberately re-implements the little of HLS it needs instead of calling
//! gatecast's own playlist code: a test that parsed with the code under test could not catch its
//! mistakes.

pub use gatecast_test_media as ffmpeg;
pub mod hls;
pub mod ppv;
pub mod stack;
pub mod viewer;

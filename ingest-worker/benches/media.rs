//! Placeholder; the media benchmarks follow.
fn main() {}

//! Placeholder until the I/O shell lands.
fn main() {}

//! Placeholder until the stack is wired.
fn main() {}

//! gatecast's local stack, for development and the end-to-end tests.
//!
//! Layout:
//! - [`demo`]: the demo channel and `dev.json` the launcher prepares on first start.
//! - [`stack`]: S3, the ingest worker and the wasm host started together and wired up.
//!
//! This crate only wires existing parts together; it makes no protocol decisions, so the stack
//! it starts behaves exactly as the deployed parts do.
#![warn(missing_docs)]

pub mod demo;
pub mod stack;

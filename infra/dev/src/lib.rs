//! gatecast's local stack, for development and the end-to-end tests.
//!
//! Layout:
//! - [`s3`]: a real S3 protocol endpoint (s3s + s3s-fs, SigV4 auth) over a local folder, so the
//!   ingest worker and the edge functions talk to storage exactly as they would to S3/R2/Garage.
//! - [`demo`]: the demo channel and `dev.json` the launcher prepares on first start.
//! - [`stack`]: S3, the ingest worker and the wasm host started together and wired up.
//!
//! This crate only wires existing parts together; it makes no protocol decisions (style rule 24).
#![warn(missing_docs)]

pub mod demo;
pub mod s3;
pub mod stack;

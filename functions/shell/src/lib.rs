//! The spin-sdk I/O glue shared by gatecast's four Spin components (`playlist`, `key`,
//! `segment`, `api`).
//!
//! The rules live in gatecast-core and know nothing of Spin; the components are thin request
//! handlers. What is left in between (turning a failed variable, store or storage read into a
//! 503, reading request facts, presigned storage reads) is the same in every component, so it
//! lives here once. Nothing here decides anything.
//!
//! - [`outage`]: the error type of the glue, variables, the clock, and the final Reply → Spin
//!   response step.
//! - [`viewer`]: what the viewer-facing components (`playlist`, `key`, `segment`) read from a
//!   request, the signing keys, and storage reads.
//! - [`ppv`]: pay-per-view on the `viewers` store through `wasi:keyvalue` atomics.
//! - [`site`]: seed 000's site callback (`authorize_key`), shared by `playlist` and `key`.

pub mod outage;
pub mod ppv;
pub mod site;
pub mod viewer;

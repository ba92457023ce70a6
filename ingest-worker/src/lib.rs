//! gatecast's ingest worker: RTMP publish in, AES-128 encrypted HLS out.
//!
//! Layout:
//! - [`media`]: the pure stages, fed bytes and time, no I/O: FLV tags → H.264/AAC elementary
//!   streams → MPEG-TS → segmenter → AES-128 encryptor, and the live playlist state.
#![warn(missing_docs)]

pub mod media;

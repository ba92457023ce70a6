//! gatecast's protocol rules, in one place, shared by the ingest worker and the Spin components.
//!
//! Layout:
//! - [`layout`]: where every object lives in storage and how public stream names are validated.
//! - [`session_token`]: seed 000's nginx-compatible key token, `base64(HMAC-SHA1(secret,
//!   "<session> <stream>"))`.
//! - [`viewer_token`]: gatecast's expiring, viewer-, stream- and optionally IP-bound key token,
//!   with signing-secret rotation by key id.
//! - [`wmsauth`]: Nimble/WMSPanel WMSAuth signed URLs (hotlink, stream-bound and pay-per-view
//!   variants), generated and verified like the PHP samples.
//! - [`rewrite`]: line-based playlist rewrite appending a token query to key (and optionally
//!   segment) URIs, byte-preserving otherwise.
//! - [`ppv`]: pay-per-view — WMSPanel push protocol types and mutual authorization, the
//!   per-key-period charging rule, its KV key names, the concurrent-session cap.
//! - [`status`]: the single mapping from this crate's errors to HTTP statuses ([`status::Refusal`]).
//! - [`access`]: who may fetch a key or segment — the credential a rewritten playlist wrote
//!   into the URI, checked the same way by the `key` and `segment` components.
//! - [`client_addr`]: who the client is — Spin's own `spin-client-addr`, or a trusted proxy's
//!   forwarding header (`trusted_proxies`).
//! - [`api`]: the `api` component's routes, its authentication and the `/api/sign` rule.
//! - [`form`]: query string, form body and `Cookie` header decoding, and the form encoder.
//! - [`hook`]: the nginx-rtmp publish hook contract: the form the ingest worker posts, what the
//!   api reads from it, and the stream key digest both sides use.
//! - [`registry`]: the channel registry and viewer sanctions in KV, and the publish decision.
//! - [`reply`]: every HTTP response the edge functions send (status, CORS, caching headers).
//! - [`storage`]: presigned SigV4 `GET`s against S3-compatible storage and their outcomes.
//!
//! Stance on I/O: none. This crate never touches a socket, a file, the clock or a random source;
//! callers pass `now` and bytes in and get values out, so the same code runs natively and in
//! `wasm32-wasip2` and every rule is testable by hand.
#![warn(missing_docs)]

pub mod access;
pub mod api;
pub mod client_addr;
mod crypto;
pub mod form;
pub mod hook;
pub mod layout;
pub mod ppv;
pub mod registry;
pub mod reply;
pub mod rewrite;
pub mod session_token;
pub mod status;
pub mod storage;
pub mod viewer_token;
pub mod wmsauth;

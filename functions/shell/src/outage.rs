//! Outage handling shared by every component: the error type of the I/O glue, the clock,
//! variables, and the final Reply → Spin response step.
//!
//! Why not `anyhow`: with `std` (which spin-sdk turns on) every anyhow error type links anyhow's
//! backtrace-printing `Debug`, and with it `rustc-demangle` and std's backtrace printer: ~35 KB
//! per component, measured, out of a 400 KB edge budget. An outage here only ever becomes a 503
//! and one log line, so a message string is all it needs to carry.

use std::fmt::Display;

use bytes::Bytes;
use gatecast_core::reply::{self, Reply};
use gatecast_core::viewer_token::SigningKeys;
use spin_sdk::http::{FullBody, Method, Response};

/// Something the component depends on failed (a variable, a store, storage, the site): the
/// request may succeed shortly, so it is answered 503 with `Retry-After`, and the message is
/// logged. Never carries a secret: messages name what failed, not the values involved.
#[derive(Debug)]
pub struct Outage(String);

impl Outage {
    /// An outage described by `message` (never a secret).
    pub fn new(message: String) -> Self {
        Self(message)
    }
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of a component's I/O glue.
pub type Result<T, E = Outage> = std::result::Result<T, E>;

/// `anyhow::Context`'s shape: names what was being done when an error occurred. A failed check
/// becomes an outage with `Err(value).context("what")`.
pub trait Context<T> {
    /// Turns the error into an [`Outage`] saying `what` failed and why.
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|error| Outage(format!("{what}: {error}")))
    }
}

/// Turns the component's result for a `method` request into a response: an [`Outage`] is
/// logged and answered 503 with `Retry-After`, never a trap; a `HEAD` answer keeps its status
/// and headers and drops the body.
pub fn respond(
    component: &str,
    method: &Method,
    result: Result<Reply>,
) -> Response<FullBody<Bytes>> {
    let reply = result.unwrap_or_else(|Outage(message)| {
        eprintln!("{component}: {message}");
        reply::unavailable()
    });
    reply::for_method(reply, method).map(|body| FullBody::new(Bytes::from(body)))
}

/// Seconds since the Unix epoch from the host's wall clock.
pub fn unix_now() -> u64 {
    let now = spin_sdk::wasip3::clocks::system_clock::now();
    u64::try_from(now.seconds).unwrap_or(0)
}

/// A variable's value; a missing variable is an outage (503), not a refusal.
pub async fn variable(name: &str) -> Result<String> {
    spin_sdk::variables::get(name)
        .await
        .map_err(|error| Outage(format!("variable {name}: {error}")))
}

/// The viewer-token signing keys (`signing_keys`); an unparsable list is a configuration
/// fault (503), never a refusal.
pub async fn signing_keys() -> Result<SigningKeys> {
    SigningKeys::parse(&variable("signing_keys").await?).context("signing_keys is invalid")
}

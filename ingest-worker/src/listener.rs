//! The RTMP accept loop (mini-redis `Listener`): accept with backoff, cap connections per
//! client address and in all with a `Semaphore`, spawn one tracked task per connection with its
//! own child cancellation token.
//!
//! The per-address cap is checked first, right after accept and before the handshake, so one
//! client holding idle connections never takes more than its share of the worker-wide slots:
//! a connection over its address's cap is closed without a byte and takes no slot at all.
//! Together with the publish deadline (see `connection`), an abusive address can hold at most
//! its cap of slots, each for at most the deadline unless it publishes with a valid key.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::connection::handle_connection;
use crate::metrics::RefusalReason;
use crate::server::Shared;

/// Longest pause after repeated accept errors (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts RTMP connections until `shutdown` fires.
pub struct Listener {
    /// The bound socket.
    pub listener: TcpListener,
    /// Worker state shared by all connections.
    pub shared: Arc<Shared>,
    /// One permit per open connection.
    pub limit: Arc<Semaphore>,
    /// Open connections per client address.
    pub per_address: Arc<AddressSlots>,
    /// Parent of every connection's token.
    pub shutdown: CancellationToken,
}

impl Listener {
    /// Runs the accept loop. Connections over the cap are closed at once (and counted):
    /// an encoder retries, whereas a connection parked in the backlog just looks hung.
    pub async fn run(self) {
        let mut next_conn_id: u64 = 0;
        loop {
            let (socket, peer) = tokio::select! {
                () = self.shutdown.cancelled() => return,
                accepted = self.accept() => accepted,
            };
            let Some(address) = self.per_address.try_acquire(peer.ip()) else {
                self.shared
                    .metrics
                    .handle_refused(RefusalReason::TooManyFromAddress);
                // Debug only: an abusive client reconnecting in a loop would flood the log; the
                // refusals are counted.
                tracing::debug!(peer = %peer, "per-address connection cap reached; closing");
                continue;
            };
            let Ok(permit) = Arc::clone(&self.limit).try_acquire_owned() else {
                self.shared
                    .metrics
                    .handle_refused(RefusalReason::TooManyConnections);
                tracing::warn!(peer = %peer, "connection cap reached; closing new connection");
                continue;
            };
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            next_conn_id += 1;
            let shared = Arc::clone(&self.shared);
            let token = self.shutdown.child_token();
            self.shared.tracker.spawn(handle_connection(
                shared,
                socket,
                peer,
                next_conn_id,
                token,
                ConnectionSlot {
                    _permit: permit,
                    _address: address,
                },
            ));
        }
    }

    /// Accepts one connection, backing off (doubling up to [`MAX_ACCEPT_BACKOFF`]) while
    /// accept fails, as mini-redis does; never gives up, since errors like EMFILE pass.
    async fn accept(&self) -> (TcpStream, std::net::SocketAddr) {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => {
                    tracing::error!(%error, retry_in = ?backoff, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }
}

/// What an open connection holds: its worker-wide permit and its address's slot. Dropping it
/// gives both back.
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _address: AddressSlot,
}

/// Open connections per client address, capped. An IPv6 client counts by its /64, the
/// smallest block a site is usually given, so rotating through its own addresses gains it
/// nothing; an IPv4-mapped IPv6 address counts as the IPv4 address.
pub struct AddressSlots {
    cap: usize,
    /// A std `Mutex`: held for one map update, never across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressSlots {
    /// At most `cap` open connections per address (at least 1).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when its address is at the cap.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut open = self.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: Arc::clone(self),
            key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A panic while holding the lock leaves at worst one count off by one.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One connection's share of its address's cap; dropping it gives the share back.
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The address a connection counts against: IPv4 as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn each_address_gets_its_cap_and_gets_it_back() {
        let slots = AddressSlots::new(2);
        let first = slots.try_acquire(ip("192.0.2.1")).expect("1st");
        let _second = slots.try_acquire(ip("192.0.2.1")).expect("2nd");
        assert!(slots.try_acquire(ip("192.0.2.1")).is_none(), "over the cap");
        assert!(
            slots.try_acquire(ip("192.0.2.2")).is_some(),
            "another address"
        );
        drop(first);
        assert!(slots.try_acquire(ip("192.0.2.1")).is_some(), "given back");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:1:2:3")),
            address_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:3::1")),
            address_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}

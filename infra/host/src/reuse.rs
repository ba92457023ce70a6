//! Instance reuse for `wasi:http@0.3` components, as Spin 4 and `wasmtime serve` do.
//!
//! Why: Spin serves a WASIp3 component from an instance that handles up to 128 requests, up to
//! 16 of them at once, before it is dropped (its `trigger-http` defaults, the same as
//! `wasmtime serve`). A host that instantiated per request would hide a component's reliance
//! on fresh globals that Spin would expose, and would spend most of a small request resetting
//! linear memory (madvise) and wiring imports: the edge-keys profile showed the guest's own
//! code at under a tenth of the host's time. The dispatch itself is wasmtime's
//! [`ProxyHandler`]; this module supplies the policy: how instances are made, how many
//! requests each takes, and when a request or an idle instance expires.
//!
//! The trade-off Spin documents holds here too: a trap (or a timeout, which traps through the
//! epoch deadline) ends every request in flight on that instance with a 500, never the host.

use crate::chain::ServiceChain;
use crate::context::ComponentContext;
use crate::engine::EPOCH_TICK;
use crate::instance::InstanceState;
use crate::outbound::OutboundClient;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// How many requests an instance serves, and for how long it may sit idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReusePolicy {
    /// Requests one instance handles in its lifetime (1 = a fresh instance per request).
    pub max_requests_per_instance: usize,
    /// Requests one instance handles at the same time.
    pub max_concurrent_requests_per_instance: usize,
    /// An instance with no request for this long is dropped.
    pub idle_instance_timeout: Duration,
}

impl Default for ReusePolicy {
    /// Spin's defaults for WASIp3 HTTP components.
    fn default() -> Self {
        Self {
            max_requests_per_instance: 128,
            max_concurrent_requests_per_instance: 16,
            idle_instance_timeout: Duration::from_secs(1),
        }
    }
}

/// Makes instances of one component for its [`ProxyHandler`](wasmtime_wasi_http::handler::ProxyHandler).
pub(crate) struct ComponentInstances {
    pub(crate) engine: Engine,
    pub(crate) pre: ServicePre<InstanceState>,
    pub(crate) context: Arc<ComponentContext>,
    pub(crate) chain: ServiceChain,
    pub(crate) outbound: OutboundClient,
    pub(crate) max_memory_bytes: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) reuse: ReusePolicy,
}

impl ComponentInstances {
    /// The request timeout in epoch ticks (at least one).
    fn deadline_ticks(&self) -> u64 {
        u64::try_from(self.request_timeout.as_millis() / EPOCH_TICK.as_millis().max(1))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl HandlerState for ComponentInstances {
    type StoreData = InstanceState;
    type WorkerExpiration = InstanceExpiry;
    type WorkerState = InstanceAdmission;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<InstanceState, InstanceExpiry, InstanceAdmission>> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(
                Arc::clone(&self.context),
                self.max_memory_bytes,
                self.chain.clone(),
                self.outbound.clone(),
            ),
        );
        store.limiter(|state| &mut state.limits);
        let deadline_ticks = self.deadline_ticks();
        // Covers instantiation (start functions); each request sets it afresh.
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        let service = match tokio::time::timeout(
            self.request_timeout,
            self.pre.instantiate_async(&mut store),
        )
        .await
        {
            Ok(service) => service?,
            Err(_) => wasmtime::bail!("instantiation exceeded {:?}", self.request_timeout),
        };
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: |state: &mut InstanceState| state.http(),
            expiration: InstanceExpiry {
                request_timeout: self.request_timeout,
                idle_timeout: self.reuse.idle_instance_timeout,
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            },
            state: InstanceAdmission {
                reuse: self.reuse,
                deadline_ticks,
                request_timeout: self.request_timeout,
                component: self.context.id.clone(),
            },
        })
    }
}

/// When an instance must go: a request older than the timeout (the instance is stuck, and
/// everything on it gets a 500), or no request for the idle timeout.
pub(crate) struct InstanceExpiry {
    request_timeout: Duration,
    idle_timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for InstanceExpiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let allowed = match state {
            WorkerStatus::Idle => self.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let deadline = tokio::time::Instant::from_std(start + allowed);
        if tokio::time::Instant::now() >= deadline {
            return Poll::Ready(());
        }
        self.timer.as_mut().reset(deadline);
        self.timer.as_mut().poll(cx)
    }
}

/// How many requests an instance takes, and each request's deadline.
pub(crate) struct InstanceAdmission {
    reuse: ReusePolicy,
    deadline_ticks: u64,
    request_timeout: Duration,
    component: String,
}

impl WorkerState for InstanceAdmission {
    type StoreData = InstanceState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent_count: usize, total_count: usize) -> ShouldAccept {
        if total_count >= self.reuse.max_requests_per_instance {
            ShouldAccept::Never
        } else if concurrent_count >= self.reuse.max_concurrent_requests_per_instance {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, InstanceState>,
        (): (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // CPU time: a guest spinning past this traps at the next epoch check.
        store.set_epoch_deadline(self.deadline_ticks);
        // Wall time: a guest waiting forever (on a hung upstream, say) expires here.
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, _store: Store<InstanceState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::warn!(component = %self.component, "instance ended: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_requests: usize, max_concurrent: usize) -> InstanceAdmission {
        InstanceAdmission {
            reuse: ReusePolicy {
                max_requests_per_instance: max_requests,
                max_concurrent_requests_per_instance: max_concurrent,
                idle_instance_timeout: Duration::from_secs(1),
            },
            deadline_ticks: 1,
            request_timeout: Duration::from_secs(1),
            component: "c".to_owned(),
        }
    }

    #[test]
    fn an_instance_takes_requests_up_to_its_lifetime_and_concurrency_limits() {
        let policy = admission(3, 2);
        assert!(matches!(
            policy.should_accept_request(0, 0),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            policy.should_accept_request(1, 1),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            policy.should_accept_request(2, 2),
            ShouldAccept::No
        ));
        assert!(matches!(
            policy.should_accept_request(0, 3),
            ShouldAccept::Never
        ));
    }

    #[test]
    fn no_reuse_means_one_request_per_instance() {
        let policy = admission(1, 1);
        assert!(matches!(
            policy.should_accept_request(0, 0),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            policy.should_accept_request(0, 1),
            ShouldAccept::Never
        ));
    }
}

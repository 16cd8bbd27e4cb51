//! Limits before authentication: the I/O around `gateway_core::client`. Who the client is
//! (`CF-Connecting-IP`, IPv6 by prefix, minus the environment's exemptions), the isolate's list
//! of clients it refuses without asking anyone, and the calls that count a public request or a
//! failure on the client's counter object (the same `RateLimiter` class, objects
//! `ip1:<class>:<client>`).
//!
//! These limits protect the gateway; they never take it down: when the counter object does not
//! answer, the request goes on (logged), whatever the route's `on_limiter_error`.

use std::cell::RefCell;

use gateway_core::client::{Block, BlockList, ClientClass, client_key};
use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::holds::{HOLD_MARGIN_MS, HoldRequest, SettleRequest};
use gateway_core::limit::{ConsumeRequest, Decision, response_headers};
use gateway_core::route::Route;
use gateway_core::time::UnixMillis;
use gateway_core::window::Window;
use worker::Env;

use crate::limit::{Endpoint, call};

thread_local! {
    static BLOCKED: RefCell<BlockList> = RefCell::new(BlockList::default());
}

/// The client's counting class for a route: an auth route counts its own failures; every other
/// route (and the gateway's own endpoints) the gateway-wide class.
pub(crate) struct Counter {
    /// The counter object's name.
    pub(crate) object: String,
    /// The windows it counts against (the policy's, which lives as long as the isolate).
    pub(crate) windows: &'static [Window],
    /// Whether only failures count (an auth route).
    pub(crate) failures_only: bool,
    /// The name the rate-limit headers give its windows.
    label: &'static str,
}

impl Counter {
    /// The counter for the client at `connecting_ip` on this route (`None` route: the
    /// gateway's own endpoints), or `None` when the environment exempts its address.
    pub(crate) fn for_client(
        connecting_ip: Option<&str>,
        route: Option<&'static Route>,
        environment: &Environment,
        policy: &'static Policy,
    ) -> Option<Counter> {
        let client = client_key(
            connecting_ip,
            policy.client_limits.ipv6_prefix,
            &environment.client_limit_exempt,
        )?;
        Some(match route.filter(|r| !r.failure_limit.is_empty()) {
            Some(route) => Counter {
                object: client.object_name(ClientClass::AuthRoute(&route.id.0)),
                windows: &route.failure_limit,
                failures_only: true,
                label: "failures",
            },
            None => Counter {
                object: client.object_name(ClientClass::Gateway),
                windows: &policy.client_limits.windows,
                failures_only: false,
                label: "client",
            },
        })
    }

    fn refusal(
        &self,
        block: &Block,
        now: UnixMillis,
    ) -> (GatewayError, Vec<(&'static str, String)>) {
        (
            GatewayError::ClientRateLimited {
                retry_after_secs: block.retry_after_secs(now),
                limit: block.limit,
                failures: self.failures_only,
            },
            response_headers(self.label, &[block.status(now)], 1, now),
        )
    }

    /// The refusal, with its rate-limit headers, if this isolate knows the client is over.
    pub(crate) fn blocked(
        &self,
        now: UnixMillis,
    ) -> Option<(GatewayError, Vec<(&'static str, String)>)> {
        let block = BLOCKED.with(|b| b.borrow_mut().blocked(&self.object, now))?;
        Some(self.refusal(&block, now))
    }

    async fn consume(&self, env: &Env, policy: &Policy, now: UnixMillis) -> Option<Decision> {
        let request = ConsumeRequest {
            cost: 1,
            now,
            windows: self.windows.to_vec(),
            caller: None,
            write_within_ms: policy.gateway.limiter_write_interval_ms,
        };
        self.heard(
            call(env, policy, &self.object, Endpoint::Consume, &request).await,
            now,
        )
    }

    /// The counter object's answer about this client: when it says the budget is spent, this
    /// isolate refuses the client without asking until then; no answer is logged (these limits
    /// never take the gateway down).
    fn heard(&self, reply: Result<Decision, String>, now: UnixMillis) -> Option<Decision> {
        match reply {
            Ok(decision) => {
                if let Some(block) = Block::after(&decision, now) {
                    BLOCKED.with(|b| b.borrow_mut().block(self.object.clone(), block, now));
                }
                Some(decision)
            }
            Err(detail) => {
                self.unanswered(&detail);
                None
            }
        }
    }

    fn unanswered(&self, detail: &str) {
        worker::console_warn!(
            "{}",
            serde_json::json!({"event": "client_limiter_unavailable", "object": self.object, "detail": detail})
        );
    }

    /// Counts one unauthenticated request (public routes): its rate-limit headers, or the 429
    /// with them.
    pub(crate) async fn count_request(
        &self,
        env: &Env,
        policy: &Policy,
        now: UnixMillis,
    ) -> Result<Vec<(&'static str, String)>, (GatewayError, Vec<(&'static str, String)>)> {
        match self.consume(env, policy, now).await {
            Some(Decision::Admitted { windows, .. }) => {
                Ok(response_headers(self.label, &windows, 1, now))
            }
            Some(Decision::Limited { .. }) => match self.blocked(now) {
                Some(refusal) => Err(refusal),
                None => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        }
    }

    /// Counts one failure; the next request from the client is refused here if that spent
    /// the budget.
    pub(crate) async fn record_failure(&self, env: &Env, policy: &Policy, now: UnixMillis) {
        self.consume(env, policy, now).await;
    }

    /// Before forwarding a request of a route that counts only failures: a hold on a slot of
    /// the failure budget (`gateway_core::holds`), so attempts in flight count as possible
    /// failures. `Ok(true)`: held (settle it once the origin answered); `Ok(false)`: the counter
    /// object did not answer (the request goes on, its failure counted afterwards as before:
    /// these limits never take the gateway down); `Err`: refused before the origin is asked.
    pub(crate) async fn hold(
        &self,
        env: &Env,
        policy: &Policy,
        request_id: &str,
        origin_timeout_ms: u64,
        now: UnixMillis,
    ) -> Result<bool, (GatewayError, Vec<(&'static str, String)>)> {
        let request = HoldRequest {
            id: request_id.to_owned(),
            windows: self.windows.to_vec(),
            hold_ms: origin_timeout_ms.saturating_add(HOLD_MARGIN_MS),
        };
        let reply: Result<Decision, String> =
            call(env, policy, &self.object, Endpoint::Hold, &request).await;
        match reply {
            Ok(Decision::Admitted { .. }) => Ok(true),
            Ok(decision) => {
                let block = Block::after(&decision, now).unwrap_or(Block {
                    until: now.0.saturating_add(1000),
                    limit: self.windows.iter().map(|w| w.limit).min().unwrap_or(0),
                    seconds: self.windows.first().map_or(0, |w| w.seconds),
                });
                Err(self.refusal(&block, now))
            }
            Err(detail) => {
                self.unanswered(&detail);
                Ok(false)
            }
        }
    }

    /// The origin answered a held request: its hold goes, a failure counted in its place.
    pub(crate) async fn settle(
        &self,
        env: &Env,
        policy: &Policy,
        request_id: &str,
        failed: bool,
        now: UnixMillis,
    ) {
        let request = SettleRequest {
            id: request_id.to_owned(),
            failed,
            windows: self.windows.to_vec(),
            write_within_ms: policy.gateway.limiter_write_interval_ms,
        };
        self.heard(
            call(env, policy, &self.object, Endpoint::Settle, &request).await,
            now,
        );
    }
}

//! Limits before authentication, decided: which counter object counts the client on a route,
//! what the pipeline does with a client this isolate knows is over its budget, and what each
//! answer of the counter object means (`gateway_core::client` holds the client keys and the
//! isolate's block list; `src/client.rs` makes the calls).
//!
//! Two classes of counting (docs/abuse.md, "Limits before authentication"): the gateway-wide
//! class (`[client_limits]`: every request to a public route, every failed authentication on a
//! bearer route) and an auth route's own class (`failure_limit`: only its failures). These
//! limits protect the gateway; they never take it down: a counter object that does not answer
//! lets the request go on.

use crate::client::{Block, ClientClass, client_key};
use crate::config::Policy;
use crate::env::Environment;
use crate::error::GatewayError;
use crate::holds::{HOLD_MARGIN_MS, HoldRequest, SettleRequest};
use crate::limit::{ConsumeRequest, Decision, response_headers};
use crate::route::{AuthRequirement, Route};
use crate::time::UnixMillis;
use crate::window::Window;

/// Response headers a stage adds to whatever answer the request gets.
pub type ExtraHeaders = Vec<(&'static str, String)>;

/// A refusal with the rate-limit headers that explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error the client gets.
    pub error: GatewayError,
    /// Its rate-limit headers.
    pub headers: ExtraHeaders,
}

/// The client's counter for one request: which object, against which windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCounter<'p> {
    /// The counter object's name (`ip1:<class>:<client>`).
    pub object: String,
    /// The windows it counts against.
    pub windows: &'p [Window],
    /// Whether only failures count (an auth route).
    pub failures_only: bool,
    /// The name the rate-limit headers give its windows.
    label: &'static str,
}

impl<'p> ClientCounter<'p> {
    /// The counter for the client at `connecting_ip` on `route` (`None`: the gateway's own
    /// endpoints): an auth route counts its own failures, every other route the gateway-wide
    /// class. `None` when the environment exempts the address.
    pub fn for_request(
        connecting_ip: Option<&str>,
        route: Option<&'p Route>,
        environment: &Environment,
        policy: &'p Policy,
    ) -> Option<ClientCounter<'p>> {
        let client = client_key(
            connecting_ip,
            policy.client_limits.ipv6_prefix,
            &environment.client_limit_exempt,
        )?;
        Some(match route.filter(|r| !r.failure_limit.is_empty()) {
            Some(route) => ClientCounter {
                object: client.object_name(ClientClass::AuthRoute(&route.id.0)),
                windows: &route.failure_limit,
                failures_only: true,
                label: "failures",
            },
            None => ClientCounter {
                object: client.object_name(ClientClass::Gateway),
                windows: &policy.client_limits.windows,
                failures_only: false,
                label: "client",
            },
        })
    }

    /// The 429 for a client blocked as `block` says.
    pub fn refusal(&self, block: &Block, now: UnixMillis) -> Refusal {
        Refusal {
            error: GatewayError::ClientRateLimited {
                retry_after_secs: block.retry_after_secs(now),
                limit: block.limit,
                failures: self.failures_only,
            },
            headers: response_headers(self.label, &[block.status(now)], 1, now),
        }
    }

    /// One unit on this client's counter (a public request, or a failure).
    pub fn consume_request(&self, policy: &Policy, now: UnixMillis) -> ConsumeRequest {
        ConsumeRequest {
            cost: 1,
            now,
            windows: self.windows.to_vec(),
            caller: None,
            write_within_ms: policy.gateway.limiter_write_interval_ms,
        }
    }

    /// A hold on one slot of the failure budget for the request `id`, for as long as the
    /// origin may take.
    pub fn hold_request(&self, id: &str, origin_timeout_ms: u64) -> HoldRequest {
        HoldRequest {
            id: id.to_owned(),
            windows: self.windows.to_vec(),
            hold_ms: origin_timeout_ms.saturating_add(HOLD_MARGIN_MS),
        }
    }

    /// Ends the hold of request `id`: a failure is counted in its place when `failed`.
    pub fn settle_request(&self, id: &str, failed: bool, policy: &Policy) -> SettleRequest {
        SettleRequest {
            id: id.to_owned(),
            failed,
            windows: self.windows.to_vec(),
            write_within_ms: policy.gateway.limiter_write_interval_ms,
        }
    }

    /// What a counted public request gets: its rate-limit headers, or the 429 once the budget
    /// is spent (`blocked`: this isolate's block after the answer). No answer: nothing
    /// (these limits never take the gateway down).
    pub fn counted(
        &self,
        answer: Option<&Decision>,
        blocked: Option<&Block>,
        now: UnixMillis,
    ) -> Result<ExtraHeaders, Refusal> {
        match (answer, blocked) {
            (Some(Decision::Admitted { windows, .. }), _) => {
                Ok(response_headers(self.label, windows, 1, now))
            }
            (Some(Decision::Limited { .. }), Some(block)) => Err(self.refusal(block, now)),
            _ => Ok(Vec::new()),
        }
    }

    /// What a hold's answer means: `Ok(true)` held (settle it once the origin answered);
    /// `Ok(false)` no answer (the request goes on, its failure counted afterwards); `Err`
    /// refused before the origin is asked, for at least a second.
    pub fn held(&self, answer: Option<&Decision>, now: UnixMillis) -> Result<bool, Refusal> {
        match answer {
            None => Ok(false),
            Some(Decision::Admitted { .. }) => Ok(true),
            Some(decision) => {
                let block = Block::after(decision, now).unwrap_or(Block {
                    until: now.0.saturating_add(1000),
                    limit: self.windows.iter().map(|w| w.limit).min().unwrap_or(0),
                    seconds: self.windows.first().map_or(0, |w| w.seconds),
                });
                Err(self.refusal(&block, now))
            }
        }
    }
}

/// What the pipeline does with a client before authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Refused (the isolate knows the client is over its budget).
    Refuse(Refusal),
    /// Over its budget, but on a bearer route: a token already verified and cached (which
    /// costs no signature check) still gets through; anything else gets this refusal.
    CachedTokenOnly(Refusal),
    /// An auth route: hold a slot of the failure budget before the origin is asked, so
    /// parallel guesses cannot outrun the failure limit.
    Hold,
    /// A limited public route: count the request.
    Count,
    /// Nothing to count now (a bearer route counts only failed authentications, afterwards).
    Pass,
}

/// The gate for a request on `route`, given the isolate's refusal of this client, if any.
pub fn gate(counter: &ClientCounter<'_>, blocked: Option<Refusal>, route: &Route) -> Gate {
    match blocked {
        Some(refusal) if route.auth == AuthRequirement::Bearer && !counter.failures_only => {
            Gate::CachedTokenOnly(refusal)
        }
        Some(refusal) => Gate::Refuse(refusal),
        None if counter.failures_only => Gate::Hold,
        None if route.auth == AuthRequirement::Public && route.limited => Gate::Count,
        None => Gate::Pass,
    }
}

/// Whether an answer with `status` counts as a failure against the client: a 401 always (a
/// replayed revoked token too: each costs a counter call), a 403 on a route counting only
/// failures (a login route's "wrong password").
pub fn counts_as_failure(status: u16, failures_only: bool) -> bool {
    status == 401 || (failures_only && status == 403)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::WindowStatus;

    use crate::testing::{policy, route};

    fn environment(exempt: &str) -> Environment {
        crate::testing::environment(&policy(), &[("CLIENT_LIMIT_EXEMPT", exempt)])
    }

    #[test]
    fn an_auth_route_counts_its_own_failures_and_the_rest_the_gateway_class() {
        let p = policy();
        let env = environment("");
        let login =
            ClientCounter::for_request(Some("203.0.113.9"), Some(route(&p, "login")), &env, &p)
                .unwrap();
        assert_eq!(login.object, "ip1:login:203.0.113.9");
        assert!(login.failures_only);
        assert_eq!(login.windows, &route(&p, "login").failure_limit[..]);
        for r in [Some(route(&p, "health")), Some(route(&p, "tx.list")), None] {
            let c = ClientCounter::for_request(Some("203.0.113.9"), r, &env, &p).unwrap();
            assert_eq!(c.object, "ip1:*:203.0.113.9");
            assert!(!c.failures_only);
            assert_eq!(c.windows, &p.client_limits.windows[..]);
        }
        let exempt = environment("203.0.113.0/24");
        assert_eq!(
            ClientCounter::for_request(Some("203.0.113.9"), None, &exempt, &p),
            None
        );
    }

    #[test]
    fn the_gate_for_each_kind_of_route() {
        let p = policy();
        let env = environment("");
        let refusal = Refusal {
            error: GatewayError::RouteNotFound,
            headers: Vec::new(),
        };
        let cases = [
            ("health", false, Gate::Count),
            ("public.unlimited", false, Gate::Pass),
            ("tx.list", false, Gate::Pass),
            ("login", false, Gate::Hold),
            ("health", true, Gate::Refuse(refusal.clone())),
            ("tx.list", true, Gate::CachedTokenOnly(refusal.clone())),
            ("login", true, Gate::Refuse(refusal.clone())),
        ];
        for (id, blocked, expected) in cases {
            let r = route(&p, id);
            let counter =
                ClientCounter::for_request(Some("198.51.100.1"), Some(r), &env, &p).unwrap();
            assert_eq!(
                gate(&counter, blocked.then(|| refusal.clone()), r),
                expected,
                "{id} blocked={blocked}"
            );
        }
    }

    #[test]
    fn failures_are_401s_and_on_auth_routes_403s() {
        for (status, failures_only, failed) in [
            (401, false, true),
            (401, true, true),
            (403, false, false),
            (403, true, true),
            (200, true, false),
            (429, true, false),
            (500, false, false),
        ] {
            assert_eq!(
                counts_as_failure(status, failures_only),
                failed,
                "{status} {failures_only}"
            );
        }
    }

    #[test]
    fn answers_of_the_counter_object() {
        let p = policy();
        let env = environment("");
        let now = UnixMillis(1_000_000);
        let c =
            ClientCounter::for_request(Some("198.51.100.1"), Some(route(&p, "health")), &env, &p)
                .unwrap();
        let status = WindowStatus {
            seconds: 60,
            limit: 3,
            remaining: 2,
            reset_secs: 60,
        };
        let admitted = Decision::Admitted {
            windows: vec![status],
            full_for_ms: 0,
        };
        let headers = c.counted(Some(&admitted), None, now).unwrap();
        assert!(
            headers
                .iter()
                .any(|(n, v)| *n == "ratelimit" && v.contains("r=2")),
            "{headers:?}"
        );
        let limited = Decision::Limited {
            retry_after_secs: 7,
            windows: vec![status],
            retry_after_ms: 0,
        };
        let block = Block::after(&limited, now).unwrap();
        let refused = c.counted(Some(&limited), Some(&block), now).unwrap_err();
        assert!(
            matches!(
                refused.error,
                GatewayError::ClientRateLimited {
                    retry_after_secs: 7,
                    limit: 3,
                    failures: false
                }
            ),
            "{refused:?}"
        );
        assert_eq!(c.counted(None, None, now), Ok(Vec::new()));

        let login =
            ClientCounter::for_request(Some("198.51.100.1"), Some(route(&p, "login")), &env, &p)
                .unwrap();
        assert_eq!(login.held(None, now), Ok(false));
        assert_eq!(login.held(Some(&admitted), now), Ok(true));
        let refused = login.held(Some(&limited), now).unwrap_err();
        assert!(matches!(
            refused.error,
            GatewayError::ClientRateLimited { failures: true, .. }
        ));
        let hold = login.hold_request("req-1", 10_000);
        assert_eq!(hold.hold_ms, 10_000 + HOLD_MARGIN_MS);
        assert!(login.settle_request("req-1", true, &p).failed);
    }
}

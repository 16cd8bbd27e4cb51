//! Limits before authentication: the I/O around `gateway_core::gate`. The isolate's list of
//! clients it refuses without asking anyone, and the calls that count a public request, hold a
//! slot of an auth route's failure budget, or count a failure, on the client's counter object
//! (the same `RateLimiter` class, objects `ip1:<class>:<client>`). Every decision (which
//! object, what an answer means) is `gateway_core::gate`'s.

use std::cell::RefCell;

use gateway_core::client::{Block, BlockList};
use gateway_core::config::Policy;
use gateway_core::gate::{ClientCounter, ExtraHeaders, Refusal};
use gateway_core::limit::Decision;
use gateway_core::time::UnixMillis;
use worker::Env;

use crate::limit::{Endpoint, call};

thread_local! {
    static BLOCKED: RefCell<BlockList> = RefCell::new(BlockList::default());
}

fn block_of(counter: &ClientCounter<'_>, now: UnixMillis) -> Option<Block> {
    BLOCKED.with(|b| b.borrow_mut().blocked(&counter.object, now))
}

/// The refusal, with its rate-limit headers, if this isolate knows the client is over.
pub(crate) fn blocked(counter: &ClientCounter<'_>, now: UnixMillis) -> Option<Refusal> {
    block_of(counter, now).map(|block| counter.refusal(&block, now))
}

/// The counter object's answer about this client: when it says the budget is spent, this
/// isolate refuses the client without asking until then; no answer is logged.
fn heard(
    counter: &ClientCounter<'_>,
    reply: Result<Decision, String>,
    now: UnixMillis,
) -> Option<Decision> {
    match reply {
        Ok(decision) => {
            if let Some(block) = Block::after(&decision, now) {
                BLOCKED.with(|b| b.borrow_mut().block(counter.object.clone(), block, now));
            }
            Some(decision)
        }
        Err(detail) => {
            worker::console_warn!(
                "{}",
                serde_json::json!({"event": "client_limiter_unavailable", "object": counter.object, "detail": detail})
            );
            None
        }
    }
}

async fn consume(
    env: &Env,
    policy: &Policy,
    counter: &ClientCounter<'_>,
    now: UnixMillis,
) -> Option<Decision> {
    let request = counter.consume_request(policy, now);
    let reply = call(env, policy, &counter.object, Endpoint::Consume, &request).await;
    heard(counter, reply, now)
}

/// Counts one unauthenticated request (public routes): its rate-limit headers, or the 429.
pub(crate) async fn count_request(
    env: &Env,
    policy: &Policy,
    counter: &ClientCounter<'_>,
    now: UnixMillis,
) -> Result<ExtraHeaders, Refusal> {
    let answer = consume(env, policy, counter, now).await;
    counter.counted(answer.as_ref(), block_of(counter, now).as_ref(), now)
}

/// Counts one failure; the next request from the client is refused here if that spent the
/// budget.
pub(crate) async fn record_failure(
    env: &Env,
    policy: &Policy,
    counter: &ClientCounter<'_>,
    now: UnixMillis,
) {
    consume(env, policy, counter, now).await;
}

/// Holds a slot of the failure budget before the origin is asked (`gateway_core::gate`:
/// `ClientCounter::held` says what the answer means).
pub(crate) async fn hold(
    env: &Env,
    policy: &Policy,
    counter: &ClientCounter<'_>,
    (request_id, origin_timeout_ms): (&str, u64),
    now: UnixMillis,
) -> Result<bool, Refusal> {
    let request = counter.hold_request(request_id, origin_timeout_ms);
    let reply: Result<Decision, String> =
        call(env, policy, &counter.object, Endpoint::Hold, &request).await;
    let answer = match reply {
        Ok(decision) => Some(decision),
        Err(detail) => heard(counter, Err(detail), now),
    };
    counter.held(answer.as_ref(), now)
}

/// The origin answered a held request: its hold goes, a failure counted in its place.
pub(crate) async fn settle(
    env: &Env,
    policy: &Policy,
    counter: &ClientCounter<'_>,
    (request_id, failed): (&str, bool),
    now: UnixMillis,
) {
    let request = counter.settle_request(request_id, failed, policy);
    let reply = call(env, policy, &counter.object, Endpoint::Settle, &request).await;
    heard(counter, reply, now);
}

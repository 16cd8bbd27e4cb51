//! The contract between the Worker and the rate-limit counter object: one request, one reply,
//! one round trip per gateway request. The rate-limiting issue replaces the plain counter with
//! sliding windows; the wire types here are what both sides agree on.

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

/// Path of the counter object's one internal endpoint (`POST`, JSON body [`ConsumeRequest`]).
pub const CONSUME_PATH: &str = "/consume";

/// Worker -> counter object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    /// Cost units to consume.
    pub cost: u32,
    /// The Worker's clock at the request (the object never reads its own).
    pub now: UnixMillis,
}

/// Counter object -> Worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeReply {
    /// Cost units consumed by this key so far, including this request.
    pub consumed: u64,
}

/// The counter's state as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterState {
    /// Cost units consumed so far.
    pub consumed: u64,
    /// Clock of the last request seen.
    pub last_seen: Option<UnixMillis>,
}

impl CounterState {
    /// Applies one request and returns the reply.
    pub fn consume(&mut self, req: &ConsumeRequest) -> ConsumeReply {
        self.consumed = self.consumed.saturating_add(u64::from(req.cost));
        self.last_seen = Some(req.now);
        ConsumeReply {
            consumed: self.consumed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumption_accumulates_and_saturates() {
        let mut state = CounterState::default();
        let req = |cost| ConsumeRequest {
            cost,
            now: UnixMillis(5),
        };
        assert_eq!(state.consume(&req(2)).consumed, 2);
        assert_eq!(state.consume(&req(20)).consumed, 22);
        state.consumed = u64::MAX - 1;
        assert_eq!(state.consume(&req(20)).consumed, u64::MAX);
        assert_eq!(state.last_seen, Some(UnixMillis(5)));
    }
}

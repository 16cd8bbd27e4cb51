//! The version of the gateway ↔ counters Worker protocol.
//!
//! The gateway and the counters Worker are two scripts, deployed one after the other and rolled
//! back one at a time, so for a while one of them runs a version the other was not built with.
//! Every call from the gateway (`consume(body, protocol)`, `revocations(command, protocol)`, over
//! Workers RPC) carries the protocol version it speaks as its second argument; gateways built
//! before the version existed pass none, which is version 1. The counters Worker answers
//! [`CURRENT`] and [`PREVIOUS`] and refuses anything else with an error that says which it
//! accepts (the gateway then applies the route's failure policy, as for any counter error).
//!
//! | version | body | reply |
//! |---|---|---|
//! | 1 (no argument) | `limit::ConsumeRequest` / `revocation::RevocationCommand` as JSON text | `limit::Decision` / `revocation::RevocationReply` as JSON text |
//! | 2 | the same, with the version as the second argument | the same |
//!
//! Version 2's counters Worker also answers `hold(body, protocol)` and `settle(body,
//! protocol)` (`holds::HoldRequest` / `holds::SettleRequest` -> `limit::Decision`, the attempts in
//! flight on a route counting only failures). A method is only ever added: a gateway calling one
//! an older counters Worker lacks gets an RPC error, which its callers treat as the object not
//! answering.
//!
//! A change to the body or the reply gets a new version, is accepted by the counters Worker
//! first (deployed first), and is sent by the gateway only once that counters Worker is live
//! everywhere (`docs/deploy.md`, "Order of deploys").

/// The version this build speaks.
pub const CURRENT: u32 = 2;

/// The version before it, still accepted (a gateway rolled back, or not deployed yet).
pub const PREVIOUS: u32 = 1;

/// A version the counters Worker does not speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedProtocol {
    /// What the caller sent.
    pub sent: u32,
}

impl std::fmt::Display for UnsupportedProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "counter protocol {} is not supported (this counters Worker accepts {PREVIOUS} and {CURRENT}; deploy the counters Worker before the gateway)",
            self.sent
        )
    }
}

impl std::error::Error for UnsupportedProtocol {}

/// The version a call was made with: `None` (no argument: a gateway from before versions) is
/// version 1.
pub fn accept(sent: Option<u32>) -> Result<u32, UnsupportedProtocol> {
    let sent = sent.unwrap_or(1);
    if sent == CURRENT || sent == PREVIOUS {
        Ok(sent)
    } else {
        Err(UnsupportedProtocol { sent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sent: Option<u32>, expected: Result<u32, u32>) {
        assert_eq!(
            accept(sent),
            expected.map_err(|sent| UnsupportedProtocol { sent }),
            "{sent:?}"
        );
    }

    #[test]
    fn the_current_and_the_previous_version_are_accepted() {
        check(None, Ok(1));
        check(Some(PREVIOUS), Ok(PREVIOUS));
        check(Some(CURRENT), Ok(CURRENT));
        check(Some(0), Err(0));
        check(Some(CURRENT + 1), Err(CURRENT + 1));
        check(Some(u32::MAX), Err(u32::MAX));
    }

    #[test]
    fn the_previous_version_is_the_one_before_the_current() {
        assert_eq!(PREVIOUS + 1, CURRENT);
    }

    #[test]
    fn a_refusal_names_what_is_accepted() {
        let text = UnsupportedProtocol { sent: 9 }.to_string();
        assert!(text.contains("protocol 9"), "{text}");
        assert!(text.contains("accepts 1 and 2"), "{text}");
    }
}

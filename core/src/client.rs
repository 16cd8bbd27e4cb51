//! Limits before authentication: who the client is when there is no verified token (its IP
//! address, IPv6 grouped by prefix), which counter object counts it, and the per-isolate list
//! of clients currently refused without any work.
//!
//! Two classes of counting (docs/abuse.md, "Limits before authentication"):
//! - the gateway-wide class (`[client_limits]`): every request to a public route, and every
//!   failed authentication (401) on a bearer route, per client;
//! - an auth route's own class (`failure_limit` on the route, e.g. a login route): only its
//!   failures (401/403 from the gateway or the origin) count.
//!
//! A client over a class's limit is remembered by the isolate until a unit fits again, and
//! refused there with 429 before any signature check, counter call or origin call.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::ip::{IpBlock, prefix_mask_128};
use crate::time::UnixMillis;

/// The counting class: gateway-wide, or one auth route's failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClass<'a> {
    /// `[client_limits]`.
    Gateway,
    /// The failures of the route with this id.
    AuthRoute(&'a str),
}

/// A client as the limiter sees it: an IPv4 address, an IPv6 prefix, or `unknown` (no
/// `CF-Connecting-IP`, which Cloudflare always sets: every such request shares one budget).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    /// The key for the connecting address (`CF-Connecting-IP`), IPv6 cut to `v6_prefix` bits.
    pub fn from_ip(ip: Option<&str>, v6_prefix: u8) -> ClientKey {
        ClientKey::from_addr(parse_ip(ip), v6_prefix)
    }

    fn from_addr(addr: Option<IpAddr>, v6_prefix: u8) -> ClientKey {
        match addr {
            Some(IpAddr::V4(v4)) => ClientKey(v4.to_string()),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(v4.to_string()),
                None => {
                    let bits = u128::from(v6);
                    let prefix = u32::from(v6_prefix.min(128));
                    let mask = prefix_mask_128(prefix);
                    ClientKey(format!("{}/{prefix}", Ipv6Addr::from(bits & mask)))
                }
            },
            None => ClientKey("unknown".to_owned()),
        }
    }

    /// The key as text (logs).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The counter object's name: `ip1:<class>:<key>` (`*` for the gateway-wide class, else the
    /// route id; neither contains `:`). Disjoint from the organisations' `rl1:` objects.
    pub fn object_name(&self, class: ClientClass<'_>) -> String {
        match class {
            ClientClass::Gateway => format!("ip1:*:{}", self.0),
            ClientClass::AuthRoute(route) => format!("ip1:{route}:{}", self.0),
        }
    }
}

/// Whether the connecting address is exempt from the limits before authentication.
pub fn is_exempt(ip: Option<&str>, exempt: &[IpBlock]) -> bool {
    parse_ip(ip).is_some_and(|ip| exempt.iter().any(|b| b.contains(ip)))
}

/// The client the limits before authentication count for this connecting address, or `None`
/// when it is exempt (the address is parsed once for both questions).
pub fn client_key(ip: Option<&str>, v6_prefix: u8, exempt: &[IpBlock]) -> Option<ClientKey> {
    let addr = parse_ip(ip);
    if addr.is_some_and(|a| exempt.iter().any(|b| b.contains(a))) {
        return None;
    }
    Some(ClientKey::from_addr(addr, v6_prefix))
}

fn parse_ip(ip: Option<&str>) -> Option<IpAddr> {
    ip.and_then(|s| s.trim().parse::<IpAddr>().ok())
}

/// Largest number of clients one isolate remembers as refused (oldest expiry dropped first).
pub const MAX_BLOCKED: usize = 10_000;

/// Clients this isolate refuses without asking anyone, until the time their counter object said
/// a unit fits again. A cache of the objects' answers: losing it costs one counter call.
#[derive(Debug, Default)]
pub struct BlockList {
    until: HashMap<String, Block>,
}

/// One refused client: until when, and the window that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Refused until this time, ms.
    pub until: u64,
    /// The limit of the window that ran out.
    pub limit: u32,
    /// Its length, seconds.
    pub seconds: u32,
}

impl Block {
    /// The block a counter object's answer to a failure calls for, if any: until the failure's
    /// cost fits again (`Limited`), or until one more unit fits (`Admitted` with the budget
    /// spent). `Err` carries nothing to block on.
    pub fn after(decision: &crate::limit::Decision, now: UnixMillis) -> Option<Block> {
        use crate::limit::Decision;
        let (wait_ms, windows) = match decision {
            Decision::Limited {
                retry_after_secs,
                windows,
                ..
            } => (retry_after_secs.saturating_mul(1000), windows),
            Decision::Admitted {
                full_for_ms,
                windows,
            } if *full_for_ms > 0 => (*full_for_ms, windows),
            _ => return None,
        };
        let spent = windows.iter().min_by_key(|w| w.remaining)?;
        Some(Block {
            until: now.0.saturating_add(wait_ms),
            limit: spent.limit,
            seconds: spent.seconds,
        })
    }

    /// Whole seconds (at least 1) left at `now`.
    pub fn retry_after_secs(&self, now: UnixMillis) -> u64 {
        self.until.saturating_sub(now.0).div_ceil(1000).max(1)
    }

    /// The window as the rate-limit headers report it (nothing left, until the block ends).
    pub fn status(&self, now: UnixMillis) -> crate::limit::WindowStatus {
        crate::limit::WindowStatus {
            seconds: self.seconds,
            limit: self.limit,
            remaining: 0,
            reset_secs: self.retry_after_secs(now),
        }
    }
}

impl BlockList {
    /// Refuses `object` as `block` says.
    pub fn block(&mut self, object: String, block: Block, now: UnixMillis) {
        if self.until.len() >= MAX_BLOCKED && !self.until.contains_key(&object) {
            self.until.retain(|_, b| b.until > now.0);
            let first = (self.until.len() >= MAX_BLOCKED)
                .then(|| {
                    self.until
                        .iter()
                        .min_by_key(|(_, b)| b.until)
                        .map(|(k, _)| k.clone())
                })
                .flatten();
            if let Some(first) = first {
                self.until.remove(&first);
            }
        }
        self.until.insert(object, block);
    }

    /// The block on `object`, if it still holds at `now`.
    pub fn blocked(&mut self, object: &str, now: UnixMillis) -> Option<Block> {
        let block = *self.until.get(object)?;
        if block.until <= now.0 {
            self.until.remove(object);
            return None;
        }
        Some(block)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_prefix_and_ipv4_stands_alone() {
        let a = ClientKey::from_ip(Some("2001:db8:1:2:aaaa::1"), 64);
        let b = ClientKey::from_ip(Some("2001:db8:1:2:bbbb::9"), 64);
        let c = ClientKey::from_ip(Some("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str(), "2001:db8:1:2::/64");
        assert_eq!(
            ClientKey::from_ip(Some("203.0.113.9"), 64).as_str(),
            "203.0.113.9"
        );
        // An IPv4-mapped IPv6 address is the IPv4 client.
        assert_eq!(
            ClientKey::from_ip(Some("::ffff:203.0.113.9"), 64).as_str(),
            "203.0.113.9"
        );
        assert_eq!(ClientKey::from_ip(None, 64).as_str(), "unknown");
        assert_eq!(
            ClientKey::from_ip(Some("not an ip"), 64).as_str(),
            "unknown"
        );
        assert_eq!(
            a.object_name(ClientClass::Gateway),
            "ip1:*:2001:db8:1:2::/64"
        );
        assert_eq!(
            ClientKey::from_ip(Some("10.0.0.1"), 64)
                .object_name(ClientClass::AuthRoute("auth.login")),
            "ip1:auth.login:10.0.0.1"
        );
    }

    #[test]
    fn exemptions_are_addresses_or_cidr_blocks() {
        let blocks: Vec<IpBlock> = ["127.0.0.1", "10.1.0.0/16", "2001:db8::/32"]
            .iter()
            .map(|s| IpBlock::parse(s).unwrap())
            .collect();
        assert!(is_exempt(Some("127.0.0.1"), &blocks));
        assert!(!is_exempt(Some("127.0.0.2"), &blocks));
        assert!(is_exempt(Some("10.1.255.3"), &blocks));
        assert!(!is_exempt(Some("10.2.0.1"), &blocks));
        assert!(is_exempt(Some("2001:db8:ffff::1"), &blocks));
        assert!(!is_exempt(Some("2001:db9::1"), &blocks));
        assert!(is_exempt(Some("::ffff:127.0.0.1"), &blocks));
        assert!(!is_exempt(None, &blocks));
        assert!(IpBlock::parse("10.0.0.0/33").is_err());
        assert!(IpBlock::parse("10.0.0/8").is_err());
        assert!(IpBlock::parse("::/x").is_err());
        assert!(
            IpBlock::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        // One parse answers both: exempt addresses get no key, others the usual one.
        assert_eq!(client_key(Some("10.1.2.3"), 64, &blocks), None);
        assert_eq!(
            client_key(Some(" 2001:db9::1 "), 64, &blocks),
            Some(ClientKey::from_ip(Some("2001:db9::1"), 64))
        );
        assert_eq!(client_key(None, 64, &blocks).unwrap().as_str(), "unknown");
    }

    fn until(ms: u64) -> Block {
        Block {
            until: ms,
            limit: 60,
            seconds: 60,
        }
    }

    #[test]
    fn blocks_last_until_their_time_and_the_list_is_bounded() {
        let mut list = BlockList::default();
        list.block("ip1:*:a".into(), until(10_500), UnixMillis(0));
        assert_eq!(
            list.blocked("ip1:*:a", UnixMillis(9_000)),
            Some(until(10_500))
        );
        assert_eq!(list.blocked("ip1:*:b", UnixMillis(9_000)), None);
        assert_eq!(list.blocked("ip1:*:a", UnixMillis(10_500)), None);
        assert!(list.is_empty());
        for i in 0..MAX_BLOCKED + 5 {
            list.block(format!("k{i}"), until(1_000 + i as u64), UnixMillis(0));
        }
        assert_eq!(list.len(), MAX_BLOCKED);
        // The entries expiring first were dropped; the newest is held.
        assert!(list.blocked("k0", UnixMillis(0)).is_none());
        assert!(
            list.blocked(&format!("k{}", MAX_BLOCKED + 4), UnixMillis(0))
                .is_some()
        );
    }
}

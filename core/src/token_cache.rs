//! The verified-token cache: a token whose signature and claims were verified once is not
//! verified again until it expires. Keyed by the SHA-256 of the token (the token itself is never
//! stored), bounded in size, entries expire with the token, and entries are dropped when the key
//! material that verified them leaves the issuer's JWKS: each entry holds the RFC 7638
//! thumbprint of its key, not its `kid` (a key replaced under the same `kid`, or a set of keys
//! without `kid`s rotated, drops its tokens once the JWKS refreshes).
//!
//! The Worker holds one per isolate; this type only decides.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::identity::VerifiedClaims;
use crate::time::UnixMillis;

/// SHA-256 of a compact token.
pub type TokenDigest = [u8; 32];

/// The digest a token is cached under.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// One verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    /// What verification produced.
    pub claims: VerifiedClaims,
    /// The RFC 7638 thumbprint of the key that verified it (`gateway_core::auth::Jwk::thumbprint`).
    pub key: String,
    /// Last second at which the token is still accepted (`exp` + leeway).
    pub valid_until: u64,
}

/// A bounded map from token digest to verified claims, evicting expired entries first, then the
/// oldest.
#[derive(Debug)]
pub struct VerifiedTokenCache {
    capacity: usize,
    entries: HashMap<TokenDigest, CachedToken>,
    /// Insertion order; may hold digests already removed (skipped when popped).
    order: VecDeque<TokenDigest>,
    /// The second of the last sweep of expired entries. Expiry is decided in whole seconds, so
    /// after a sweep nothing else expires until the next second: one sweep per second evicts
    /// exactly what a sweep on every insert would, without scanning the whole map on every
    /// insert into a full cache (a stream of new tokens does that insert on every request).
    swept_at: Option<u64>,
}

impl VerifiedTokenCache {
    /// An empty cache holding at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> VerifiedTokenCache {
        VerifiedTokenCache {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            swept_at: None,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The verified claims for this token, if cached and still valid at `now`.
    pub fn get(&mut self, key: &TokenDigest, now: UnixMillis) -> Option<&VerifiedClaims> {
        let expired = self
            .entries
            .get(key)
            .is_some_and(|e| now.as_secs() > e.valid_until);
        if expired {
            self.entries.remove(key);
            return None;
        }
        self.entries.get(key).map(|e| &e.claims)
    }

    /// Remembers a verified token.
    pub fn insert(&mut self, key: TokenDigest, entry: CachedToken, now: UnixMillis) {
        if self.capacity == 0 || now.as_secs() > entry.valid_until {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            if self.swept_at != Some(now.as_secs()) {
                self.entries.retain(|_, e| now.as_secs() <= e.valid_until);
                self.swept_at = Some(now.as_secs());
            }
            while self.entries.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.entries.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        if self.entries.insert(key, entry).is_none() {
            self.order.push_back(key);
        }
        // Keep the order queue from growing past what the map can explain.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    /// Forgets one token (its organisation's object answered that it is revoked).
    pub fn remove(&mut self, key: &TokenDigest) {
        self.entries.remove(key);
    }

    /// Drops every cached token of (`issuer`, `org`) the revocation covers; returns how many.
    pub fn evict_revoked(
        &mut self,
        issuer: &str,
        org: &str,
        revocation: &crate::revocation::Revocation,
    ) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            !(e.claims.issuer() == issuer
                && e.claims.org().0 == org
                && revocation.covers(&e.claims.caller()))
        });
        before.saturating_sub(self.entries.len())
    }

    /// Drops the issuer's tokens whose key is no longer published (`live_keys`: the
    /// thumbprints of the keys in the freshly fetched JWKS).
    pub fn retain_live_keys(&mut self, issuer: &str, live_keys: &[String]) {
        self.entries
            .retain(|_, e| e.claims.issuer() != issuer || live_keys.contains(&e.key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IssuerName, OrgId, TierName, TokenIdentity};

    /// A verified caller of `issuer` and `org`.
    fn caller(issuer: &str, org: &str, sub: &str, iat: Option<u64>, exp: u64) -> VerifiedClaims {
        VerifiedClaims::from_checked_token(TokenIdentity {
            issuer: IssuerName::new(issuer),
            subject: sub.into(),
            org: OrgId(org.into()),
            tier: TierName::new("free"),
            scopes: vec![],
            token_id: None,
            permissions: vec![],
            expires_at: exp,
            issued_at: iat,
            cert_thumbprint: None,
        })
    }

    /// An entry verified by the key whose thumbprint is `key`.
    fn entry(issuer: &str, key: &str, valid_until: u64) -> CachedToken {
        CachedToken {
            claims: caller(issuer, "o", "s", None, valid_until),
            key: key.into(),
            valid_until,
        }
    }

    #[test]
    fn revocations_evict_exactly_the_tokens_they_cover() {
        use crate::revocation::{Revocation, RevocationScope};
        let mut cache = VerifiedTokenCache::new(10);
        let mut put = |n: u8, issuer: &str, org: &str, sub: &str, iat: u64| {
            let mut e = entry(issuer, "k", 1_000);
            e.claims = caller(issuer, org, sub, Some(iat), 1_000);
            cache.insert([n; 32], e, at(10));
        };
        put(1, "users", "acme", "alice", 50);
        put(2, "users", "acme", "bob", 50);
        put(3, "users", "acme", "alice", 150);
        put(4, "machines", "acme", "alice", 50);
        put(5, "users", "globex", "alice", 50);
        let revocation = Revocation {
            scope: RevocationScope::Subject {
                sub: "alice".into(),
            },
            revoked_at: 100,
            expires_at: 5_000,
            reason: None,
            by: "x".into(),
        };
        assert_eq!(cache.evict_revoked("users", "acme", &revocation), 1);
        assert!(cache.get(&[1; 32], at(20)).is_none());
        for kept in [2, 3, 4, 5] {
            assert!(cache.get(&[kept; 32], at(20)).is_some(), "{kept}");
        }
        cache.remove(&[2; 32]);
        assert!(cache.get(&[2; 32], at(20)).is_none());
    }

    fn at(secs: u64) -> UnixMillis {
        UnixMillis(secs * 1000)
    }

    #[test]
    fn hits_until_the_token_expires() {
        let mut cache = VerifiedTokenCache::new(8);
        let key = digest("a.b.c");
        cache.insert(key, entry("i", "k1", 100), at(50));
        assert!(cache.get(&key, at(100)).is_some());
        assert!(cache.get(&key, at(101)).is_none());
        assert!(cache.is_empty(), "expired entries are removed on lookup");
        // An already expired token is never stored.
        cache.insert(key, entry("i", "k1", 10), at(50));
        assert!(cache.is_empty());
    }

    #[test]
    fn different_tokens_do_not_collide() {
        let mut cache = VerifiedTokenCache::new(8);
        cache.insert(digest("a.b.c"), entry("i", "k1", 100), at(0));
        assert!(cache.get(&digest("a.b.d"), at(0)).is_none());
        assert_ne!(digest("a.b.c"), digest("a.b.c "));
    }

    #[test]
    fn size_is_bounded_evicting_expired_then_oldest() {
        let mut cache = VerifiedTokenCache::new(3);
        for (i, until) in [(1u8, 100), (2, 20), (3, 100)] {
            cache.insert([i; 32], entry("i", "k", until), at(0));
        }
        // At t=30 token 2 is expired: it goes first, the others stay.
        cache.insert([4; 32], entry("i", "k", 100), at(30));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&[1; 32], at(30)).is_some());
        assert!(cache.get(&[2; 32], at(30)).is_none());
        // Nothing expired: the oldest (1) is evicted.
        cache.insert([5; 32], entry("i", "k", 100), at(30));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&[1; 32], at(30)).is_none());
        for i in [3u8, 4, 5] {
            assert!(cache.get(&[i; 32], at(30)).is_some(), "{i}");
        }
        for i in 10..1000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            cache.insert(key, entry("i", "k", 100), at(30));
            assert!(cache.len() <= 3);
            assert!(cache.order.len() <= 7);
        }
        assert!(VerifiedTokenCache::new(0).get(&[0; 32], at(0)).is_none());
    }

    #[test]
    fn expired_entries_go_first_whenever_they_expired() {
        // Swept once per second: an entry expiring between two inserts in later seconds still
        // goes before the oldest live one.
        let mut cache = VerifiedTokenCache::new(2);
        cache.insert([1; 32], entry("i", "k", 100), at(0));
        cache.insert([2; 32], entry("i", "k", 40), at(0));
        cache.insert([3; 32], entry("i", "k", 100), at(10));
        // At 10 nothing had expired: 1, the oldest, went.
        assert!(cache.get(&[1; 32], at(10)).is_none());
        cache.insert([4; 32], entry("i", "k", 100), at(41));
        // At 41, 2 had expired: it went, 3 (older than 4) stayed.
        assert!(cache.get(&[3; 32], at(41)).is_some());
        assert!(cache.get(&[4; 32], at(41)).is_some());
        assert_eq!(cache.len(), 2);
        // Same second again, nothing newly expired: the oldest live one goes.
        cache.insert([5; 32], entry("i", "k", 100), at(41));
        assert!(cache.get(&[3; 32], at(41)).is_none());
        assert!(cache.get(&[5; 32], at(41)).is_some());
    }

    #[test]
    fn a_key_leaving_the_jwks_drops_its_tokens_only() {
        let mut cache = VerifiedTokenCache::new(8);
        cache.insert([1; 32], entry("users", "old", 100), at(0));
        cache.insert([2; 32], entry("users", "new", 100), at(0));
        cache.insert([3; 32], entry("partners", "old", 100), at(0));
        cache.retain_live_keys("users", &["new".to_owned()]);
        assert!(cache.get(&[1; 32], at(0)).is_none());
        assert!(cache.get(&[2; 32], at(0)).is_some());
        assert!(
            cache.get(&[3; 32], at(0)).is_some(),
            "another issuer's key is unaffected"
        );
        // The same key id with new material, or keys without ids replaced: the thumbprints
        // differ, so the tokens go.
        cache.retain_live_keys("users", &["newer".to_owned()]);
        assert!(cache.get(&[2; 32], at(0)).is_none());
    }
}

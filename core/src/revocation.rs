//! Revocation: cutting off a token, a subject or a whole organisation now, before the tokens
//! expire on their own.
//!
//! Every entry belongs to one organisation of one issuer and lives in that organisation's counter
//! object (the same object that holds its rate-limit state), so the Worker checks it in the
//! same round trip as the rate limit. An entry covers
//! - `org`: every token of the organisation issued at or before the revocation;
//! - `subject`: every token of that `sub` in the organisation issued at or before it;
//! - `token`: the token with that `jti`, whenever it was issued.
//!
//! "Issued at or before" reads the token's `iat` (a token without `iat` is covered while the
//! entry lives), so an organisation or user that re-authenticates after the incident is served
//! again with its new tokens — cutting off the account itself is the identity provider's job.
//! An entry expires when every token it covers would have expired anyway: the revocation time
//! plus the issuer's `max_lifetime_seconds` and leeway (no token the gateway accepts lives
//! longer), so lists stay short without anyone cleaning them.

use serde::{Deserialize, Serialize};

use crate::issuer::IssuerPolicy;

/// Most entries one organisation may hold at once (a bound on the object's state).
pub const MAX_ENTRIES: usize = 1000;
/// Longest `sub`, `jti`, org id or reason accepted from the admin API.
pub const MAX_FIELD_LEN: usize = 256;

/// What an entry covers inside its organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum RevocationScope {
    /// Every token of the organisation.
    Org,
    /// Every token of one subject.
    Subject {
        /// The `sub`.
        sub: String,
    },
    /// One token.
    Token {
        /// The `jti`.
        jti: String,
    },
}

/// Which kind of entry matched: what the counter object reports and the 401 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// A whole organisation.
    Org,
    /// One subject.
    Subject,
    /// One token.
    Token,
}

impl RevocationKind {
    /// `org`, `subject` or `token`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Org => "org",
            RevocationKind::Subject => "subject",
            RevocationKind::Token => "token",
        }
    }
}

impl RevocationScope {
    /// Its kind (logs, the counter object's answer, the 401's detail).
    pub fn kind(&self) -> RevocationKind {
        match self {
            RevocationScope::Org => RevocationKind::Org,
            RevocationScope::Subject { .. } => RevocationKind::Subject,
            RevocationScope::Token { .. } => RevocationKind::Token,
        }
    }
}

/// One deny-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What it covers.
    #[serde(flatten)]
    pub scope: RevocationScope,
    /// When it was made, Unix seconds: `org`/`subject` entries cover tokens issued up to then.
    pub revoked_at: u64,
    /// When it stops mattering (every covered token has expired), Unix seconds.
    pub expires_at: u64,
    /// Why (free text from the operator; never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who made it: `<admin issuer>/<admin sub>`.
    pub by: String,
}

/// The token being checked, as much of it as revocation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// `sub`.
    pub sub: String,
    /// `jti`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `iat`, if any (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Revocation {
    /// Whether this entry covers the caller.
    pub fn covers(&self, caller: &Caller) -> bool {
        let issued_before = caller.iat.is_none_or(|iat| iat <= self.revoked_at);
        match &self.scope {
            RevocationScope::Org => issued_before,
            RevocationScope::Subject { sub } => issued_before && *sub == caller.sub,
            RevocationScope::Token { jti } => caller.jti.as_deref() == Some(jti.as_str()),
        }
    }
}

/// An organisation's deny list (stored in its counter object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Live entries; at most one per scope.
    pub entries: Vec<Revocation>,
}

/// Why an admin change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// The organisation already holds [`MAX_ENTRIES`] live entries.
    Full,
}

impl RevocationList {
    /// Drops entries that expired by `now_secs`; returns whether anything was dropped.
    pub fn prune(&mut self, now_secs: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.expires_at > now_secs);
        self.entries.len() != before
    }

    /// The first live entry covering the caller.
    pub fn check(&self, caller: &Caller, now_secs: u64) -> Option<&Revocation> {
        self.entries
            .iter()
            .find(|e| e.expires_at > now_secs && e.covers(caller))
    }

    /// Adds an entry, merging with one of the same scope: the later cut-off (a later revocation
    /// of the same subject also covers the tokens issued since) and the later expiry (a short
    /// suspension never shortens a revocation; lift it with `remove` instead).
    pub fn add(&mut self, entry: Revocation, now_secs: u64) -> Result<(), ListError> {
        self.prune(now_secs);
        if let Some(existing) = self.entries.iter_mut().find(|e| e.scope == entry.scope) {
            let expires_at = existing.expires_at.max(entry.expires_at);
            *existing = Revocation {
                expires_at,
                ..entry
            };
            return Ok(());
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(ListError::Full);
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Removes the entry with this scope; returns it if there was one.
    pub fn remove(&mut self, scope: &RevocationScope) -> Option<Revocation> {
        let i = self.entries.iter().position(|e| e.scope == *scope)?;
        Some(self.entries.remove(i))
    }
}

/// The admin API's request body (`POST`/`DELETE /_gateway/admin/revocations`): the issuer and
/// organisation, and at most one of `sub` and `jti` to narrow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminRevocation {
    /// Issuer name from the policy.
    pub issuer: String,
    /// Organisation id (the org claim, else `sub`, as in `X-Gateway-Org`).
    pub org: String,
    /// Revoke one subject's tokens.
    #[serde(default)]
    pub sub: Option<String>,
    /// Revoke one token.
    #[serde(default)]
    pub jti: Option<String>,
    /// Why (logged and stored; at most 256 characters).
    #[serde(default)]
    pub reason: Option<String>,
    /// A shorter life than the default (a temporary suspension), seconds; never longer than
    /// the tokens it covers could live.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

impl AdminRevocation {
    /// Checks the fields and returns the scope; `Err` is the client-safe reason.
    pub fn scope(&self) -> Result<RevocationScope, String> {
        let field = |name: &str, value: &str| -> Result<(), String> {
            if value.is_empty()
                || value.len() > MAX_FIELD_LEN
                || value.chars().any(char::is_control)
            {
                return Err(format!(
                    "'{name}' must be 1-{MAX_FIELD_LEN} bytes without control characters"
                ));
            }
            Ok(())
        };
        field("issuer", &self.issuer)?;
        field("org", &self.org)?;
        if let Some(reason) = &self.reason {
            field("reason", reason)?;
        }
        if self.ttl_seconds == Some(0) {
            return Err("'ttl_seconds' must be at least 1".to_owned());
        }
        match (&self.sub, &self.jti) {
            (Some(_), Some(_)) => Err("give 'sub' or 'jti', not both".to_owned()),
            (Some(sub), None) => {
                field("sub", sub)?;
                Ok(RevocationScope::Subject { sub: sub.clone() })
            }
            (None, Some(jti)) => {
                field("jti", jti)?;
                Ok(RevocationScope::Token { jti: jti.clone() })
            }
            (None, None) => Ok(RevocationScope::Org),
        }
    }

    /// The entry this request makes at `now_secs`, expiring when every token of `issuer` issued
    /// until now has expired.
    /// `credentials_until`: the latest sunset of the legacy API keys the entry covers, if any
    /// (keys carry no `iat` and live until their sunset, so their revocation must too).
    pub fn entry(
        &self,
        scope: RevocationScope,
        issuer: &IssuerPolicy,
        now_secs: u64,
        by: String,
        credentials_until: Option<u64>,
    ) -> Revocation {
        let tokens_until = now_secs
            .saturating_add(issuer.max_lifetime_seconds)
            .saturating_add(issuer.leeway_seconds)
            .saturating_add(1);
        let full = tokens_until.max(credentials_until.map_or(0, |t| t.saturating_add(1)));
        Revocation {
            scope,
            revoked_at: now_secs,
            expires_at: self
                .ttl_seconds
                .map_or(full, |t| now_secs.saturating_add(t).min(full)),
            reason: self.reason.clone(),
            by,
        }
    }
}

/// Worker -> counter object: one change to (or a read of) the organisation's deny list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RevocationCommand {
    /// Add or replace an entry.
    Add {
        /// The entry.
        entry: Revocation,
        /// The Worker's clock, seconds.
        now_secs: u64,
    },
    /// Remove the entry with this scope.
    Remove {
        /// The scope.
        #[serde(flatten)]
        scope: RevocationScope,
        /// The Worker's clock, seconds.
        now_secs: u64,
    },
    /// List the live entries.
    List {
        /// The Worker's clock, seconds.
        now_secs: u64,
    },
}

/// Counter object -> Worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationReply {
    /// Whether the list changed (`add`: always unless full; `remove`: whether it held the entry).
    pub changed: bool,
    /// `add` refused: the list is full.
    #[serde(default)]
    pub full: bool,
    /// `remove`: whether the entry was there (expired entries pruned on the way do not count).
    #[serde(default)]
    pub removed: bool,
    /// The live entries after the command.
    pub entries: Vec<Revocation>,
}

impl RevocationList {
    /// Runs one command (the counter object's `revocations` call) at the
    /// object's own time `now_secs`: the caller's clock (the command's `now_secs`, kept on the
    /// wire for older objects) decides nothing, so a gateway with a clock far off cannot expire
    /// entries early.
    pub fn apply(&mut self, command: RevocationCommand, now_secs: u64) -> RevocationReply {
        let (changed, full, removed) = match command {
            RevocationCommand::Add { entry, .. } => match self.add(entry, now_secs) {
                Ok(()) => (true, false, false),
                Err(ListError::Full) => (false, true, false),
            },
            RevocationCommand::Remove { scope, .. } => {
                let pruned = self.prune(now_secs);
                let removed = self.remove(&scope).is_some();
                (removed || pruned, false, removed)
            }
            RevocationCommand::List { .. } => (self.prune(now_secs), false, false),
        };
        RevocationReply {
            changed,
            full,
            removed,
            entries: self.entries.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(sub: &str, jti: Option<&str>, iat: Option<u64>) -> Caller {
        Caller {
            sub: sub.into(),
            jti: jti.map(str::to_owned),
            iat,
        }
    }

    fn entry(scope: RevocationScope, at: u64) -> Revocation {
        Revocation {
            scope,
            revoked_at: at,
            expires_at: at + 3606,
            reason: None,
            by: "machines/ops".into(),
        }
    }

    #[test]
    fn org_and_subject_entries_cover_tokens_issued_until_the_revocation() {
        let mut list = RevocationList::default();
        list.add(entry(RevocationScope::Org, 1_000), 1_000).unwrap();
        assert!(list.check(&caller("a", None, Some(999)), 1_001).is_some());
        assert!(list.check(&caller("a", None, Some(1_000)), 1_001).is_some());
        assert!(list.check(&caller("a", None, None), 1_001).is_some());
        // A token issued after the revocation is served (the user signed in again).
        assert!(list.check(&caller("a", None, Some(1_001)), 1_002).is_none());

        let mut list = RevocationList::default();
        let sub = RevocationScope::Subject {
            sub: "alice".into(),
        };
        list.add(entry(sub, 1_000), 1_000).unwrap();
        assert!(
            list.check(&caller("alice", None, Some(900)), 1_001)
                .is_some()
        );
        assert!(list.check(&caller("bob", None, Some(900)), 1_001).is_none());
        assert!(
            list.check(&caller("alice", None, Some(1_001)), 1_002)
                .is_none()
        );
    }

    #[test]
    fn token_entries_cover_that_jti_only_and_entries_expire() {
        let mut list = RevocationList::default();
        let jti = RevocationScope::Token { jti: "t-1".into() };
        list.add(entry(jti, 1_000), 1_000).unwrap();
        assert!(
            list.check(&caller("a", Some("t-1"), Some(5_000)), 1_001)
                .is_some()
        );
        assert!(
            list.check(&caller("a", Some("t-2"), Some(5)), 1_001)
                .is_none()
        );
        assert!(list.check(&caller("a", None, Some(5)), 1_001).is_none());
        // Past expiry the entry no longer matches, and the next change prunes it.
        assert!(list.check(&caller("a", Some("t-1"), None), 4_606).is_none());
        assert!(list.prune(4_606));
        assert!(list.entries.is_empty());
    }

    #[test]
    fn one_entry_per_scope_removal_and_a_bounded_list() {
        let mut list = RevocationList::default();
        list.add(entry(RevocationScope::Org, 10), 10).unwrap();
        list.add(entry(RevocationScope::Org, 20), 20).unwrap();
        assert_eq!(list.entries.len(), 1);
        assert_eq!(list.entries[0].revoked_at, 20);
        // A later, shorter entry for the same scope keeps the longer life.
        let mut short = entry(RevocationScope::Org, 30);
        short.expires_at = 40;
        list.add(short, 30).unwrap();
        assert_eq!(list.entries[0].revoked_at, 30);
        assert_eq!(list.entries[0].expires_at, 20 + 3606);
        assert!(list.remove(&RevocationScope::Org).is_some());
        assert!(list.remove(&RevocationScope::Org).is_none());
        for i in 0..MAX_ENTRIES {
            let scope = RevocationScope::Token {
                jti: format!("t{i}"),
            };
            list.add(entry(scope, 10), 10).unwrap();
        }
        let one_more = RevocationScope::Token { jti: "x".into() };
        assert_eq!(list.add(entry(one_more, 10), 10), Err(ListError::Full));
        // Expired entries make room.
        let later = RevocationScope::Token { jti: "y".into() };
        assert_eq!(list.add(entry(later, 5_000), 5_000), Ok(()));
        assert_eq!(list.entries.len(), 1);
    }

    #[test]
    fn admin_requests_are_checked_and_entries_live_as_long_as_the_tokens() {
        let req = |sub: Option<&str>, jti: Option<&str>| AdminRevocation {
            issuer: "users".into(),
            org: "acme".into(),
            sub: sub.map(str::to_owned),
            jti: jti.map(str::to_owned),
            reason: None,
            ttl_seconds: None,
        };
        assert_eq!(req(None, None).scope(), Ok(RevocationScope::Org));
        assert!(req(Some("a"), Some("b")).scope().is_err());
        assert!(req(Some(""), None).scope().is_err());
        assert!(req(None, Some(&"j".repeat(257))).scope().is_err());
        assert!(req(Some("a\nb"), None).scope().is_err());
        let issuer: IssuerPolicy = serde_json::from_value(serde_json::json!({
            "name": "users", "audiences": ["a"], "algorithms": ["ES256"],
            "leeway_seconds": 5, "max_lifetime_seconds": 3600
        }))
        .unwrap();
        let e = req(None, None).entry(RevocationScope::Org, &issuer, 100, "x".into(), None);
        assert_eq!(e.expires_at, 100 + 3600 + 5 + 1);
        // An organisation with a legacy key living until t = 50 000: the entry outlives it.
        let keys =
            req(None, None).entry(RevocationScope::Org, &issuer, 100, "x".into(), Some(50_000));
        assert_eq!(keys.expires_at, 50_001);
        let mut short = req(None, None);
        short.ttl_seconds = Some(60);
        assert_eq!(
            short
                .entry(RevocationScope::Org, &issuer, 100, "x".into(), None)
                .expires_at,
            160
        );
        short.ttl_seconds = Some(100_000);
        assert_eq!(
            short
                .entry(RevocationScope::Org, &issuer, 100, "x".into(), None)
                .expires_at,
            3706
        );
        short.ttl_seconds = Some(0);
        assert!(short.scope().is_err());
        // A token issued at the revocation instant with the longest lifetime is refused until
        // its very last accepted second (exp + leeway), and the entry outlives it.
        let last_accepted = 100 + 3600 + 5;
        let mut list = RevocationList::default();
        list.add(e, 100).unwrap();
        assert!(
            list.check(&caller("a", None, Some(100)), last_accepted)
                .is_some()
        );
    }

    #[test]
    fn commands_round_trip_as_json() {
        let cmd = RevocationCommand::Remove {
            scope: RevocationScope::Subject {
                sub: "alice".into(),
            },
            now_secs: 5,
        };
        let text = serde_json::to_string(&cmd).unwrap();
        assert_eq!(
            text,
            r#"{"op":"remove","scope":"subject","sub":"alice","now_secs":5}"#
        );
        assert_eq!(
            serde_json::from_str::<RevocationCommand>(&text).unwrap(),
            cmd
        );
        let mut list = RevocationList::default();
        let reply = list.apply(
            RevocationCommand::Add {
                entry: entry(RevocationScope::Org, 1),
                now_secs: 1,
            },
            1,
        );
        assert!(reply.changed && !reply.full && reply.entries.len() == 1);
        let reply = list.apply(cmd, 5);
        assert!(!reply.changed && !reply.removed);
        // Removing a missing entry while an expired one is pruned: changed, but not removed.
        let mut list = RevocationList::default();
        list.add(entry(RevocationScope::Org, 1), 1).unwrap();
        let remove = RevocationCommand::Remove {
            scope: RevocationScope::Subject {
                sub: "nobody".into(),
            },
            now_secs: 10_000,
        };
        // The caller's clock far ahead expires nothing: the object's own time decides.
        let reply = list.clone().apply(remove.clone(), 1);
        assert!(!reply.changed && reply.entries.len() == 1);
        let reply = list.apply(remove, 10_000);
        assert!(reply.changed && !reply.removed && reply.entries.is_empty());
    }
}

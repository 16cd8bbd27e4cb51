//! The leak audit: every token and secret value the run uses is a canary, and after the suite
//! the gateway's logs, the origin's log and every response the gateway returned are searched
//! for them. A canary found anywhere fails the run.
//!
//! Canaries are registered as they come into being: the stacks' secrets when a stack starts,
//! every token a stack mints, and every `Authorization` value a test sends to a gateway (the
//! HTTP client does this, so tokens built by hand are covered too). Responses are recorded by
//! the HTTP client for every request to a registered gateway address.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// Shortest value worth searching for: shorter ones (`a.b.c`, a test's `Basic x`) would match
/// by chance.
const MIN_CANARY: usize = 20;

static GATEWAYS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CANARIES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static RESPONSES: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());
static LOGS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A secret or token value: the value itself and, for a JWS, its signature part alone (a log
/// that printed only the signature would still leak a credential's proof).
pub fn canary(value: &str) {
    let value = value.trim();
    if value.len() < MIN_CANARY {
        return;
    }
    let mut set = lock(&CANARIES);
    set.insert(value.to_owned());
    if let Some(signature) = value.rsplit('.').next().filter(|s| s.len() >= MIN_CANARY) {
        set.insert(signature.to_owned());
    }
}

/// A gateway address: requests to it are checked, responses from it recorded.
pub fn gateway(base: &str) {
    lock(&GATEWAYS).push(base.to_owned());
}

/// A log file to search at the end.
pub fn log_file(path: PathBuf) {
    lock(&LOGS).push(path);
}

/// Called by the HTTP client for every exchange.
pub(crate) fn exchange(base: &str, request: &[u8], response: &[u8]) {
    if !lock(&GATEWAYS).iter().any(|g| base.starts_with(g.as_str())) {
        return;
    }
    let head = String::from_utf8_lossy(request);
    let head = head.split("\r\n\r\n").next().unwrap_or_default();
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("authorization") {
            let value = value.trim();
            canary(
                value
                    .split_once(' ')
                    .map_or(value, |(_, credentials)| credentials),
            );
        }
    }
    lock(&RESPONSES).push((base.to_owned(), response.to_vec()));
}

/// Where each canary occurs in the haystacks: `(haystack name, first 16 characters of the canary)`.
pub fn find_leaks<'a>(
    canaries: impl IntoIterator<Item = &'a str> + Clone,
    haystacks: &[(String, &[u8])],
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, hay) in haystacks {
        let text = String::from_utf8_lossy(hay);
        for canary in canaries.clone() {
            if text.contains(canary) {
                found.push((name.clone(), canary.chars().take(16).collect()));
            }
        }
    }
    found
}

/// Searches every registered log and recorded response; returns a report line, or the leaks.
pub fn audit() -> Result<String, Vec<(String, String)>> {
    let canaries = lock(&CANARIES).clone();
    let responses = lock(&RESPONSES).clone();
    let mut haystacks: Vec<(String, Vec<u8>)> = lock(&LOGS)
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(p).unwrap_or_default(),
            )
        })
        .collect();
    let log_bytes: usize = haystacks.iter().map(|(_, h)| h.len()).sum();
    haystacks.extend(
        responses
            .iter()
            .enumerate()
            .map(|(i, (base, bytes))| (format!("response #{i} from {base}"), bytes.clone())),
    );
    let refs: Vec<(String, &[u8])> = haystacks
        .iter()
        .map(|(n, h)| (n.clone(), h.as_slice()))
        .collect();
    let leaks = find_leaks(canaries.iter().map(String::as_str), &refs);
    if leaks.is_empty() {
        Ok(format!(
            "leak audit: {} canaries (tokens, secrets) absent from {} log files ({} KB) and {} gateway responses",
            canaries.len(),
            refs.len().saturating_sub(responses.len()),
            log_bytes / 1024,
            responses.len()
        ))
    } else {
        Err(leaks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_canary_is_found_and_only_there() {
        let token =
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLWEtdG9rZW4tdGhhdC1sZWFrcw";
        let clean = b"{\"event\":\"request\",\"status\":401}".as_slice();
        let leaky = format!(
            "{{\"detail\":\"bad signature {}\"}}",
            token.rsplit('.').next().unwrap()
        );
        let haystacks = vec![
            ("clean.log".to_owned(), clean),
            ("leaky.log".to_owned(), leaky.as_bytes()),
        ];
        let canaries = [token, token.rsplit('.').next().unwrap()];
        let found = find_leaks(canaries.iter().copied(), &haystacks);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "leaky.log");
    }

    #[test]
    fn short_values_are_not_canaries_and_authorization_values_are() {
        gateway("http://127.0.0.1:1");
        exchange(
            "http://127.0.0.1:1/api",
            b"GET / HTTP/1.1\r\nAuthorization: Bearer abcdefghijklmnopqrstuvwxyz0123\r\nX: Bearer short\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
        );
        canary("short");
        let set = lock(&CANARIES);
        assert!(set.contains("abcdefghijklmnopqrstuvwxyz0123"));
        assert!(!set.contains("short"));
    }
}

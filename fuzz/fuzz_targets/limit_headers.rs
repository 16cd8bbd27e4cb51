//! Rate-limit header formatting from arbitrary window states (any limits, remainders, resets,
//! costs, clocks; tier names from the configuration's alphabet). Invariants: no panic; every value
//! is a header-safe visible ASCII string; the X-RateLimit-* values are integers describing the
//! tightest window; the structured fields list every window.
#![no_main]

use gateway_core::limit::{WindowStatus, response_headers};
use gateway_core::names::rate_limit_headers as h;
use gateway_core::time::UnixMillis;
use libfuzzer_sys::fuzz_target;

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
    let tier: String = rest
        .iter()
        .take(usize::from(n % 33).max(1))
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect();
    let windows: Vec<WindowStatus> = (0..usize::from(n % 5))
        .map(|i| {
            let at = 1 + i * 24;
            WindowStatus {
                seconds: u64_at(data, at) as u32,
                limit: (u64_at(data, at) >> 32) as u32,
                remaining: u64_at(data, at + 8),
                reset_secs: u64_at(data, at + 16),
            }
        })
        .collect();
    let cost = u64_at(data, 121) as u32;
    let now = UnixMillis(u64_at(data, 129));
    let headers = response_headers(&tier, &windows, cost, now);
    if windows.is_empty() {
        assert!(headers.is_empty());
        return;
    }
    for (name, value) in &headers {
        assert!(
            !value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{name}: {value:?} is not a header-safe value"
        );
    }
    let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    let limit: u32 = get(h::LIMIT).expect("limit").parse().expect("an integer limit");
    let remaining: u64 = get(h::REMAINING).expect("remaining").parse().expect("an integer");
    let _: u64 = get(h::RESET).expect("reset").parse().expect("an integer reset");
    assert_eq!(get(h::COST).map(|v| v.parse::<u32>().ok()), Some(Some(cost)));
    let min_remaining = windows.iter().map(|w| w.remaining).min().expect("a window");
    assert_eq!(remaining, min_remaining, "the tightest window is reported");
    assert!(windows.iter().any(|w| w.limit == limit && w.remaining == remaining));
    for field in [h::POLICY, h::STATE] {
        let items = get(field).expect("structured field").split(", ").count();
        assert_eq!(items, windows.len(), "{field} lists every window");
    }
});

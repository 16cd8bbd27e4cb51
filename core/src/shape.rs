//! The syntax of what a request carries: header block size, host names and the `Host`
//! allowlist, media types, JSON well-formedness and nesting depth, and the client's correlation
//! id. Primitives: nothing here imports another module of the crate; the refusals built on them
//! are decided in [`crate::request`].

use std::fmt;

/// Largest client correlation id kept (characters).
pub const CLIENT_REQUEST_ID_MAX: usize = 64;

/// The size of a header block as the limit counts it: name + value + 4 (`: ` and CRLF) per
/// field, the way HTTP/1.1 puts it on the wire.
pub fn header_block_size<N: AsRef<str>, V: AsRef<str>>(
    headers: impl IntoIterator<Item = (N, V)>,
) -> u64 {
    headers
        .into_iter()
        .map(|(name, value)| {
            let field = name
                .as_ref()
                .len()
                .saturating_add(value.as_ref().len())
                .saturating_add(4);
            u64::try_from(field).unwrap_or(u64::MAX)
        })
        .fold(0u64, u64::saturating_add)
}

/// Whether the `Host` the client addressed is one the deployment serves. An empty allowlist
/// allows every host. Entries are host names, compared case-insensitively, with or without a
/// port: an entry without a port matches the host on any port, one with a port only that port.
/// `*.example.com` matches any single label under `example.com` (not `example.com` itself).
pub fn host_allowed(host: &str, allowlist: &[String]) -> bool {
    if allowlist.is_empty() {
        return true;
    }
    let host = host.trim().to_ascii_lowercase();
    let name = strip_port(&host);
    allowlist.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let candidate = if strip_port(&entry) == entry {
            name
        } else {
            host.as_str()
        };
        match entry.strip_prefix("*.") {
            Some(suffix) => candidate
                .strip_suffix(suffix)
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            None => candidate == entry,
        }
    })
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: `[::1]:8787`.
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Checks an allowlist entry from the configuration: a host name (letters, digits, `-`, `.`),
/// optionally `*.`-prefixed, optionally with `:port`.
pub fn check_host_entry(entry: &str) -> Result<(), String> {
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (entry, None),
    };
    let name = name.strip_prefix("*.").unwrap_or(name);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "'{entry}' is not a lower-case host name (optionally '*.'-prefixed, optionally with ':port')"
        ))
    }
}

/// The media type of a `Content-Type` value, lower case, without parameters
/// (`Application/JSON; charset=utf-8` -> `application/json`). `None` if it is not `type/subtype`.
pub fn media_type(content_type: &str) -> Option<String> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/')?;
    (is_token(kind) && is_token(sub)).then_some(essence)
}

/// Whether `name` is an RFC 9110 field name (a `token`).
pub fn is_header_name(name: &str) -> bool {
    is_token(name)
}

/// RFC 9110 `token` characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a media type is JSON (`application/json` or any `+json` suffix type).
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Checks a configured allowlist entry: a lower-case `type/subtype`.
pub fn check_media_type_entry(entry: &str) -> Result<(), String> {
    match media_type(entry) {
        Some(m) if m == entry => Ok(()),
        _ => Err(format!(
            "'{entry}' is not a lower-case media type like 'application/json' (no parameters)"
        )),
    }
}

/// Why a JSON body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonRejection {
    /// Not well-formed JSON (RFC 8259), or not UTF-8.
    Malformed,
    /// Arrays and objects nest deeper than the limit.
    TooDeep {
        /// The limit.
        max_depth: u32,
    },
}

impl fmt::Display for JsonRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonRejection::Malformed => write!(f, "The request body is not well-formed JSON."),
            JsonRejection::TooDeep { max_depth } => write!(
                f,
                "The JSON request body nests arrays and objects deeper than {max_depth} levels."
            ),
        }
    }
}

/// The deepest nesting [`check_json`] can accept: serde_json, which checks well-formedness
/// after the depth scan, refuses input nested deeper than 128 (its recursion limit), so a
/// `gateway.max_json_depth` above this would turn well-formed bodies into "not well-formed".
pub const MAX_JSON_DEPTH: u32 = 128;

/// Checks a JSON body: nesting depth first (a linear scan, so a 100 000-deep body costs no
/// recursion), then well-formedness.
pub fn check_json(body: &[u8], max_depth: u32) -> Result<(), JsonRejection> {
    let mut depth: u32 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth = depth.saturating_add(1);
                if depth > max_depth {
                    return Err(JsonRejection::TooDeep { max_depth });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|_| JsonRejection::Malformed)
}

/// The client's `X-Request-ID`, if it is safe to carry: 1 to 64 characters of
/// `[A-Za-z0-9._:-]`. Anything else is dropped (not truncated or escaped).
pub fn client_request_id(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= CLIENT_REQUEST_ID_MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    ok.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(host_allowed("anything", &[]));
        let l = list(&["api.example.com", "*.preview.example.com", "127.0.0.1:8787"]);
        assert!(host_allowed("API.example.com", &l));
        assert!(host_allowed("api.example.com:443", &l));
        assert!(!host_allowed("api.example.com.evil.net", &l));
        assert!(!host_allowed("evil.net", &l));
        assert!(host_allowed("pr-12.preview.example.com", &l));
        assert!(!host_allowed("preview.example.com", &l));
        assert!(!host_allowed("a.b.preview.example.com", &l));
        assert!(host_allowed("127.0.0.1:8787", &l));
        assert!(!host_allowed("127.0.0.1:8788", &l));
        assert!(!host_allowed("127.0.0.1", &l));
        assert!(host_allowed("[::1]:8787", &list(&["[::1]"])));
    }

    #[test]
    fn host_entries() {
        for ok in [
            "api.example.com",
            "*.example.com",
            "localhost:8787",
            "a-b.c",
        ] {
            assert!(check_host_entry(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "API.example.com",
            "a..b",
            "h:0",
            "h:99999",
            "http://x",
            "a b",
            "*.",
        ] {
            assert!(check_host_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8").as_deref(),
            Some("application/json")
        );
        assert_eq!(media_type("json"), None);
        assert_eq!(media_type("a/b/c"), None);
        assert_eq!(media_type(""), None);
        assert!(is_json("application/json"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/json5"));
        assert!(check_media_type_entry("application/json").is_ok());
        assert!(check_media_type_entry("application/json; charset=utf-8").is_err());
        assert!(check_media_type_entry("Application/json").is_err());
    }

    #[test]
    fn every_depth_the_policy_allows_parses() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            check_json(nested(MAX_JSON_DEPTH as usize).as_bytes(), MAX_JSON_DEPTH),
            Ok(())
        );
        assert_eq!(
            check_json(
                nested(MAX_JSON_DEPTH as usize + 1).as_bytes(),
                MAX_JSON_DEPTH
            ),
            Err(JsonRejection::TooDeep {
                max_depth: MAX_JSON_DEPTH
            })
        );
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_JSON_DEPTH as usize),
            "}".repeat(MAX_JSON_DEPTH as usize)
        );
        assert_eq!(check_json(objects.as_bytes(), MAX_JSON_DEPTH), Ok(()));
    }

    #[test]
    fn json_depth_and_syntax() {
        assert_eq!(check_json(br#"{"a":[1,{"b":"[[[["}]}"#, 3), Ok(()));
        assert_eq!(
            check_json(br#"{"a":[1,{"b":[]}]}"#, 3),
            Err(JsonRejection::TooDeep { max_depth: 3 })
        );
        let deep = "[".repeat(100_000);
        assert_eq!(
            check_json(deep.as_bytes(), 32),
            Err(JsonRejection::TooDeep { max_depth: 32 })
        );
        assert_eq!(check_json(br#"{"a":"\"[[[["}"#, 1), Ok(()));
        for bad in [
            &b"{"[..],
            b"{\"a\":1,}",
            b"",
            b"{} {}",
            b"\xff",
            b"NaN",
            b"{'a':1}",
        ] {
            assert_eq!(
                check_json(bad, 32),
                Err(JsonRejection::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn correlation_ids() {
        assert_eq!(client_request_id("abc-123_X.y:z"), Some("abc-123_X.y:z"));
        assert_eq!(client_request_id(&"a".repeat(64)).map(str::len), Some(64));
        for bad in ["", "a b", "a\r\nb", "<script>", "é", &"a".repeat(65), "a,b"] {
            assert_eq!(client_request_id(bad), None, "{bad}");
        }
    }
}

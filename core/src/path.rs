//! Request-path normalisation: the one canonical form that route matching sees and that the
//! gateway forwards. Ambiguous spellings are refused rather than guessed at, so the gateway and
//! the origin can never disagree about which resource a request names.
//!
//! Rules, applied to the raw path (without the query):
//! - it starts with `/` and is at most [`MAX_PATH_BYTES`] long;
//! - percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
//!   (`/api/%74ransactions` is `/api/transactions`); other escapes are kept, with upper-case hex;
//! - refused: malformed escapes, encoded `/` or `\` (`%2F`, `%5C`), control characters (raw or
//!   encoded), raw characters outside RFC 3986 `pchar`, dot segments (`.`, `..`, also when spelled
//!   `%2E`), and empty segments (`//`) except a single trailing slash;
//! - case is kept (paths are case-sensitive); a trailing slash is kept and is significant.

use std::fmt;

/// Longest raw path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 2048;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRejection {
    /// Does not start with `/`.
    NotAbsolute,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// `%2F` or `%5C`: a separator hidden from the router.
    EncodedSeparator,
    /// A control character, raw or percent-encoded.
    ControlCharacter,
    /// A raw character outside RFC 3986 `pchar` (space, `\`, `"`, non-ASCII, ...).
    DisallowedCharacter,
    /// A `.` or `..` segment.
    DotSegment,
    /// An empty segment (`//`) other than one trailing slash.
    EmptySegment,
}

impl PathRejection {
    /// A short human explanation, safe to send to the client.
    pub fn explain(self) -> &'static str {
        match self {
            Self::NotAbsolute => "the path must start with '/'",
            Self::TooLong => "the path is too long",
            Self::MalformedEscape => "the path contains a malformed percent-escape",
            Self::EncodedSeparator => "the path contains an encoded '/' or '\\'",
            Self::ControlCharacter => "the path contains a control character",
            Self::DisallowedCharacter => {
                "the path contains a character that must be percent-encoded"
            }
            Self::DotSegment => "the path contains a '.' or '..' segment",
            Self::EmptySegment => "the path contains an empty segment ('//')",
        }
    }
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.explain())
    }
}

/// The parts of a request URL as the runtime serialises it (`request.url`: a WHATWG URL of an
/// `http`/`https` request, already percent-encoded and without a fragment the server could see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestUrl<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The raw path, from its first `/`.
    pub path: &'a str,
    /// The raw query, without its `?` (`Some("")` for a bare `?`).
    pub query: Option<&'a str>,
}

/// Splits a serialised request URL into scheme, path and query without a URL parser: in the
/// serialisation of a special-scheme URL the authority holds no `/`, `?` or `#` (userinfo
/// percent-encodes them), the path starts at the first `/` after `://` and holds no `?` or `#`,
/// and the query runs to the `#`, if any. `None` for anything else (the pipeline answers 400).
pub fn split_request_url(url: &str) -> Option<RequestUrl<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let after_authority = rest.find(['/', '?', '#'])?;
    let target = rest.get(after_authority..)?;
    if !target.starts_with('/') {
        return None;
    }
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    Some(RequestUrl {
        scheme,
        path,
        query,
    })
}

/// A path in canonical form. The only way to build one is [`normalise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath(String);

impl NormalPath {
    /// The canonical path, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a segment is a dotfile or dot-directory (`/.env`, `/.git/config`): never routed,
    /// even through a `{*rest}` pattern.
    pub fn has_dotfile(&self) -> bool {
        self.segments().any(|s| s.starts_with('.'))
    }

    /// The segments after the leading `/` (`/` alone has one empty segment; a trailing slash
    /// gives a final empty segment).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').skip(1)
    }
}

impl fmt::Display for NormalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` minus `%` (handled separately), plus `/`.
fn is_plain_path_byte(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Normalises a raw request path (no query string) or says why it cannot.
pub fn normalise(raw: &str) -> Result<NormalPath, PathRejection> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathRejection::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathRejection::NotAbsolute);
    }
    let mut out = String::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.next().and_then(hex_value),
                bytes.next().and_then(hex_value),
            ) else {
                return Err(PathRejection::MalformedEscape);
            };
            let value = (hi << 4) | lo;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else if value == b'/' || value == b'\\' {
                return Err(PathRejection::EncodedSeparator);
            } else if value < 0x20 || value == 0x7f {
                return Err(PathRejection::ControlCharacter);
            } else {
                out.push_str(&format!("%{value:02X}"));
            }
        } else if b < 0x20 || b == 0x7f {
            return Err(PathRejection::ControlCharacter);
        } else if is_plain_path_byte(b) {
            out.push(char::from(b));
        } else {
            return Err(PathRejection::DisallowedCharacter);
        }
    }
    let segments: Vec<&str> = out.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return Err(PathRejection::DotSegment),
            "" if i != last => return Err(PathRejection::EmptySegment),
            _ => {}
        }
    }
    Ok(NormalPath(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_urls_split_like_a_url_parser() {
        let cases = [
            (
                "https://api.example.com/v1/x?a=1&b=2",
                "https",
                "/v1/x",
                Some("a=1&b=2"),
            ),
            ("http://127.0.0.1:8787/", "http", "/", None),
            (
                "http://[::1]:8787/a%2Fb/%2e%2e?",
                "http",
                "/a%2Fb/%2e%2e",
                Some(""),
            ),
            (
                "https://u:p%2F%3F@h.example/p?q=a?b#frag",
                "https",
                "/p",
                Some("q=a?b"),
            ),
            ("https://h.example/p#f?x", "https", "/p", None),
            ("https://h.example/a/../b//c", "https", "/a/../b//c", None),
        ];
        for (url, scheme, path, query) in cases {
            let parts = split_request_url(url).unwrap();
            assert_eq!(
                (parts.scheme, parts.path, parts.query),
                (scheme, path, query),
                "{url}"
            );
        }
    }

    #[test]
    fn what_is_not_a_serialised_request_url_is_refused() {
        for url in [
            "",
            "/relative",
            "https://host-only",
            "https://h?q",
            "HTTPS://h/",
            "://h/",
            "mailto:x@y",
        ] {
            assert_eq!(split_request_url(url), None, "{url}");
        }
    }

    fn check(raw: &str, expected: Result<&str, PathRejection>) {
        let got = normalise(raw);
        assert_eq!(
            got.as_ref().map(NormalPath::as_str).map_err(|e| *e),
            expected,
            "normalise({raw:?})"
        );
    }

    #[test]
    fn canonical_paths_pass_unchanged() {
        check("/", Ok("/"));
        check("/api/transactions", Ok("/api/transactions"));
        check("/api/transactions/", Ok("/api/transactions/"));
        check("/api/a:b@c!$&'()*+,;=", Ok("/api/a:b@c!$&'()*+,;="));
        check("/API/Transactions", Ok("/API/Transactions"));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        check("/api/%74ransactions", Ok("/api/transactions"));
        check("/api/%7e%2D%5f", Ok("/api/~-_"));
        check("/api/a%20b", Ok("/api/a%20b"));
        check("/api/caf%c3%a9", Ok("/api/caf%C3%A9"));
        check("/api/%3f%23", Ok("/api/%3F%23"));
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        check("api", Err(PathRejection::NotAbsolute));
        check("", Err(PathRejection::NotAbsolute));
        check("/a/../b", Err(PathRejection::DotSegment));
        check("/a/./b", Err(PathRejection::DotSegment));
        check("/a/%2e%2E/b", Err(PathRejection::DotSegment));
        check("/a/%2E", Err(PathRejection::DotSegment));
        check("/a/..", Err(PathRejection::DotSegment));
        check("/a//b", Err(PathRejection::EmptySegment));
        check("//a", Err(PathRejection::EmptySegment));
        check("/a/%2fb", Err(PathRejection::EncodedSeparator));
        check("/a/%5Cb", Err(PathRejection::EncodedSeparator));
        check("/a\\b", Err(PathRejection::DisallowedCharacter));
        check("/a b", Err(PathRejection::DisallowedCharacter));
        check("/caf\u{e9}", Err(PathRejection::DisallowedCharacter));
        check("/a%00", Err(PathRejection::ControlCharacter));
        check("/a%0a", Err(PathRejection::ControlCharacter));
        check("/a\tb", Err(PathRejection::ControlCharacter));
        check("/a%", Err(PathRejection::MalformedEscape));
        check("/a%4", Err(PathRejection::MalformedEscape));
        check("/a%zz", Err(PathRejection::MalformedEscape));
        check("/a%C3%", Err(PathRejection::MalformedEscape));
    }

    #[test]
    fn length_is_bounded() {
        let ok = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        check(&ok, Ok(ok.as_str()));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        check(&long, Err(PathRejection::TooLong));
    }

    #[test]
    fn normalising_is_idempotent() {
        for raw in ["/api/%74x/%c3%a9/", "/a/b:c", "/"] {
            let once = normalise(raw).unwrap();
            let twice = normalise(once.as_str()).unwrap();
            assert_eq!(once, twice, "{raw}");
        }
    }

    #[test]
    fn dotfiles_are_recognised() {
        for (raw, dot) in [
            ("/.env", true),
            ("/files/.git/config", true),
            ("/a/%2egit", true),
            ("/a.b/c", false),
            ("/api", false),
        ] {
            assert_eq!(normalise(raw).unwrap().has_dotfile(), dot, "{raw}");
        }
    }

    #[test]
    fn segments_split_after_the_leading_slash() {
        let p = normalise("/api/transactions/").unwrap();
        assert_eq!(
            p.segments().collect::<Vec<_>>(),
            ["api", "transactions", ""]
        );
        let root = normalise("/").unwrap();
        assert_eq!(root.segments().collect::<Vec<_>>(), [""]);
    }
}

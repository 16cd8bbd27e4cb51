//! Encodings of public data: base64url (RFC 4648 section 5), hex and SHA-256 digests in hex.
//! Primitives: nothing here imports another module of the crate.

use std::fmt;

use sha2::{Digest, Sha256};

fn base64url_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c.wrapping_sub(b'A'),
        b'a'..=b'z' => c.wrapping_sub(b'a').wrapping_add(26),
        b'0'..=b'9' => c.wrapping_sub(b'0').wrapping_add(52),
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Strict, variable-time base64url decoding (RFC 4648 section 5, no padding, canonical: the
/// unused bits of the last character must be zero) — the rules `base64ct` applies, for public
/// data only. `None` for anything else.
pub fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity((bytes.len() / 4).saturating_mul(3).saturating_add(2));
    let mut chunks = bytes.chunks_exact(4);
    for chunk in &mut chunks {
        let mut n = 0u32;
        for &c in chunk {
            n = (n << 6) | base64url_value(c)?;
        }
        out.extend_from_slice(&n.to_be_bytes()[1..]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut n = 0u32;
        for &c in rest {
            n = (n << 6) | base64url_value(c)?;
        }
        // 2 characters carry 1 byte (4 spare bits), 3 carry 2 bytes (2 spare bits).
        let (spare, spare_mask, first_byte) = if rest.len() == 2 {
            (4, 0xF, 3)
        } else {
            (2, 0x3, 2)
        };
        if n & spare_mask != 0 {
            return None;
        }
        out.extend_from_slice((n >> spare).to_be_bytes().get(first_byte..)?);
    }
    Some(out)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(
        String::with_capacity(bytes.len().saturating_mul(2)),
        |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        },
    )
}

/// Hex (either case) to bytes; `None` for an odd length or a non-hex pair.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i.checked_add(2)?)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// Exactly 64 hex digits (a SHA-256 digest) to its 32 bytes.
pub fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    decode_hex(text)?.try_into().ok()
}

/// What kind of mistake a JSON error is, without its message (which may quote the text: a
/// secret's, for the secrets parsed here and in `jwk`).
pub fn classify_json_error(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data => "wrong shape",
    }
}

//! A minimal HTTP/1.1 client over a raw TCP socket: the tests need to send exactly the bytes
//! they mean (duplicate headers, unnormalised paths, lying `Content-Length`), which a normal
//! client would fix up or refuse.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn authority(base: &str) -> Result<String, String> {
    base.strip_prefix("http://")
        .map(|r| r.split('/').next().unwrap_or_default().to_owned())
        .ok_or_else(|| format!("not an http URL: {base}"))
}

/// Sends raw request bytes to `base`'s host and reads one response, framed by its
/// `Content-Length` or chunked encoding (servers may keep the connection open regardless of
/// `Connection: close`).
pub fn raw(base: &str, request: &[u8]) -> Result<Response, String> {
    let mut stream = TcpStream::connect(authority(base)?).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    stream.write_all(request).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let response = loop {
        if let Some(resp) = complete(&bytes)? {
            break resp;
        }
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("reading the response: {e}"))?;
        if n == 0 {
            break parse(&bytes)?;
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    crate::leaks::exchange(base, request, &bytes);
    Ok(response)
}

/// The response, if `bytes` already hold all of it.
fn complete(bytes: &[u8]) -> Result<Option<Response>, String> {
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = &bytes[end + 4..];
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return if body.len() >= len {
            parse(&bytes[..end + 4 + len]).map(Some)
        } else {
            Ok(None)
        };
    }
    if head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        return if body.ends_with(b"0\r\n\r\n") {
            parse(bytes).map(Some)
        } else {
            Ok(None)
        };
    }
    let status_has_no_body = head.starts_with("http/1.1 204") || head.starts_with("http/1.1 304");
    if status_has_no_body {
        parse(bytes).map(Some)
    } else {
        Ok(None)
    }
}

/// A request with the usual framing: `Host`, `Connection: close`, `Content-Length` when a body
/// is given. `target` is sent exactly as written.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let host = authority(url)?;
    let target = url.strip_prefix(&format!("http://{host}")).unwrap_or("/");
    let target = if target.is_empty() { "/" } else { target };
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    raw(url, &bytes)
}

/// `method url` with `Authorization: Bearer <token>` and an optional JSON body
/// (`Content-Type: application/json`).
pub fn with_bearer(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request(method, url, &headers, body)
}

/// `GET url`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    request("GET", url, headers, None)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse(bytes: &[u8]) -> Result<Response, String> {
    let end = find(bytes, b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(bytes)))?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".to_owned());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

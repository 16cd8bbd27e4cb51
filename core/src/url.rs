//! The URLs the configuration names (origins, issuers, JWKS, upgrade and migration links).
//! Primitives: nothing here imports another module of the crate.

fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks an absolute `http(s)` URL with no userinfo, query or fragment; returns it without a
/// trailing slash. Plain `http` is accepted only for loopback hosts.
pub fn check_url(value: &str) -> Result<String, String> {
    let (scheme, rest) = value
        .split_once("://")
        .ok_or_else(|| format!("'{value}' is not an absolute URL"))?;
    if scheme != "https" && scheme != "http" {
        return Err(format!("'{value}': only http and https URLs are accepted"));
    }
    if value.contains(['?', '#']) || value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "'{value}': a query, fragment, space or control character is not allowed"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "'{value}': a host is required and user info is not allowed"
        ));
    }
    if scheme == "http" && !is_loopback_host(authority) {
        return Err(format!(
            "'{value}': plain http is only allowed for loopback hosts; use https"
        ));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

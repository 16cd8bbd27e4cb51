//! Which addresses the job may send credentials and secrets to: `https://` anywhere, plain
//! `http://` only to the loopback interface (a local OpenBao, a test stand-in of the API). A
//! Vault token, a login secret or a Cloudflare API token on a plain connection across a network
//! could be read or changed on the way.

/// Checks `url` (the value of the variable `name`) before anything is sent to it.
pub fn check(name: &str, url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(format!("{name} must be an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // No credentials in the URL; the host is what follows any '@'.
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && !authority.contains('@') {
        Ok(())
    } else {
        Err(format!(
            "{name} is plain http:// to a host that is not this machine: use https:// (http:// is allowed only on loopback)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://vault.example.com:8200",
            "HTTPS://api.cloudflare.com/client/v4",
            "http://127.0.0.1:8200",
            "http://127.8.9.10",
            "http://localhost:8200/",
            "http://[::1]:8200",
        ] {
            assert_eq!(check("VAULT_ADDR", ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://vault.example.com:8200",
            "http://10.0.0.5:8200",
            "http://127.0.0.1.example.com",
            "http://localhost.evil.example",
            "http://user@127.0.0.1:8200",
            "http://127.0.0.1@evil.example",
            "http://[::2]:8200",
            "ftp://127.0.0.1",
            "vault.example.com:8200",
            "",
        ] {
            let err = check("VAULT_ADDR", bad).unwrap_err();
            assert!(err.starts_with("VAULT_ADDR "), "{bad}: {err}");
        }
    }
}

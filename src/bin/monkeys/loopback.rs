//! The only targets allowed: plain http to a loopback address, since this
//! tool puts load on what it is pointed at.

use std::net::{Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// `http://HOST[:PORT]` with HOST a loopback address; anything else is
/// refused.
pub fn loopback_base(url: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("--url {url}: {why}"));
    let Some(rest) = url.strip_prefix("http://") else {
        return refuse("only plain http:// URLs (the tool targets loopback only)");
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return refuse("give only the scheme, host and port");
    }
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let Some((h, p)) = r.split_once(']') else {
            return refuse("unclosed [");
        };
        (h, p)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, &authority[h.len()..][..p.len() + 1]),
            None => (authority, ""),
        }
    };
    let port: u16 = match port {
        "" => 80,
        p => match p.strip_prefix(':').and_then(|p| p.parse().ok()) {
            Some(n) if n > 0 => n,
            _ => return refuse("the port is a number 1-65535"),
        },
    };
    let loopback = if host.eq_ignore_ascii_case("localhost") {
        // Whatever it resolves to must be loopback too.
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("--url {url}: cannot resolve localhost: {e}"))?
            .collect();
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
    } else if authority.starts_with('[') {
        host.parse::<Ipv6Addr>() == Ok(Ipv6Addr::LOCALHOST)
    } else {
        host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
    };
    if !loopback {
        return refuse("not a loopback address (127.0.0.0/8, localhost, [::1])");
    }
    Ok(format!("http://{authority}"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_loopback_urls() {
        assert_eq!(
            loopback_base("http://127.0.0.1:8787/").unwrap(),
            "http://127.0.0.1:8787"
        );
        assert!(loopback_base("http://127.8.9.10:1").is_ok());
        assert!(loopback_base("http://[::1]:8787").is_ok());
        for bad in [
            "https://127.0.0.1:8787",
            "http://10.0.0.1:8787",
            "http://example.com",
            "http://127.0.0.1.example.com",
            "http://[::2]:80",
            "http://127.0.0.1:0",
            "http://user@127.0.0.1",
            "http://127.0.0.1:8787/api",
            "ftp://127.0.0.1",
        ] {
            assert!(loopback_base(bad).is_err(), "{bad}");
        }
    }
}

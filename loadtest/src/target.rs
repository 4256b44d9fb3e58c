//! Targets: loopback only. The load tester is for this machine's servers, never someone else's.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

/// Resolves `host:port` and refuses anything that is not a loopback address.
pub fn loopback(target: &str) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| format!("target {target:?} is not host:port"))?
        .collect();
    let Some(addr) = addrs.first().copied() else {
        bail!("target {target:?} resolves to nothing");
    };
    if let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        bail!("target {target:?} resolves to {bad}, not a loopback address: loadtest only loads this machine");
    }
    Ok(addr)
}

/// The `host:port` of an `http://host:port[/…]` URL, checked with [`loopback`].
pub fn loopback_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").with_context(|| {
        format!("{url:?}: only http:// URLs (plain HTTP listener) are supported")
    })?;
    loopback(rest.split('/').next().unwrap_or(rest))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_only() {
        assert!(loopback("127.0.0.1:5222").is_ok());
        assert!(loopback("127.9.9.9:1").is_ok());
        assert!(loopback("[::1]:80").is_ok());
        assert!(loopback("localhost:8080").is_ok());
        assert!(loopback("10.0.0.1:80").is_err());
        assert!(loopback("8.8.8.8:53").is_err());
        assert!(loopback("nonsense").is_err());
        assert!(loopback_url("http://127.0.0.1:8080").is_ok());
        assert!(loopback_url("http://192.168.1.1:8080/x").is_err());
        assert!(loopback_url("https://127.0.0.1:8443").is_err());
    }
}

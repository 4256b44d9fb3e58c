//! SFU settings, resolved by the binary from flags, environment and TOML.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Defaults assume one machine serving a handful of 10–12-party rooms per core.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Bind address of worker 0; worker k binds port + k (port 0: each picks its own).
    pub bind: SocketAddr,
    /// The IP announced in ICE candidates (the address browsers reach this host on).
    pub public_ip: IpAddr,
    /// Worker threads, each owning whole rooms and one UDP socket.
    pub workers: usize,
    /// Publishers per room unless `create` says otherwise (Janus `publishers`).
    pub max_publishers: usize,
    /// Refuse joins without a valid grant.
    pub require_grant: bool,
    /// Janus sessions without any message for this long are destroyed (Janus's default 60 s).
    pub session_timeout: Duration,
}

impl SfuConfig {
    /// The settings of `cargo run`: loopback, one worker per core, grants required.
    pub fn local(bind: SocketAddr) -> Self {
        Self {
            bind,
            public_ip: if bind.ip().is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                bind.ip()
            },
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_publishers: 12,
            require_grant: true,
            session_timeout: Duration::from_secs(60),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.workers >= 1, "sfu_workers must be at least 1");
        anyhow::ensure!(
            self.max_publishers >= 1,
            "sfu_max_publishers must be at least 1"
        );
        anyhow::ensure!(
            !self.public_ip.is_unspecified() && !self.public_ip.is_multicast(),
            "sfu_public_ip must be a unicast address browsers can reach, got {}",
            self.public_ip
        );
        if self.bind.port() != 0 {
            anyhow::ensure!(
                self.bind.port() as usize + self.workers - 1 <= u16::MAX as usize,
                "sfu_addr port {} + {} workers runs past 65535",
                self.bind.port(),
                self.workers
            );
        }
        Ok(())
    }
}

//! Drivers: sockets and threads around the core. They move bytes and read the clock,
//! nothing else.
//!
//! [`TurnServer::start`] binds everything up front (so errors and real ports are known
//! before it returns), then starts `workers` shard threads. Each shard has its own
//! `SO_REUSEPORT` UDP listener, TCP listener and (if configured) TLS listener on the
//! shared ports, one core [`Server`], and the relayed sockets of the allocations it made;
//! the kernel's 4-tuple hash keeps a client on one shard. Quotas and reserved ports
//! (EVEN-PORT/RESERVATION-TOKEN, claimed from any 5-tuple) are the only state the shards
//! share (touched per Allocate, never per packet).

pub(crate) mod coalesce;
pub(crate) mod kernel_drops;
pub(crate) mod shard;
pub(crate) mod tcp;
pub mod tls;
pub(crate) mod udp;

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::config::TurnConfig;
use crate::core::server::{Server, Shared};
use crate::metrics::TurnMetrics;

/// A running relay: its bound addresses and its shard threads.
pub struct TurnServer {
    /// UDP and TCP listener address (same port for both).
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    /// Inodes of the shards' UDP listeners, for the kernel's drop counts.
    listener_inodes: Vec<u64>,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

struct ShardSockets {
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    tls: Option<std::net::TcpListener>,
}

impl TurnServer {
    /// Binds the listeners and starts the shard threads.
    pub fn start(config: TurnConfig, metrics: TurnMetrics) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let acceptor = match &config.tls {
            Some(tls) => Some(tls::acceptor(&tls.cert, &tls.key)?),
            None => None,
        };
        let sockets = bind_all(&config)?;
        let listener_inodes = sockets
            .iter()
            .filter_map(|s| kernel_drops::socket_inode(&s.udp).ok())
            .collect();
        let udp_addr = sockets[0].udp.local_addr()?;
        let tcp_addr = sockets[0].tcp.local_addr()?;
        let tls_addr = match &sockets[0].tls {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        // Peers must never reach our real listener ports, whatever port 0 became.
        let mut config = config;
        config.listen = udp_addr;
        if let (Some(tls), Some(addr)) = (config.tls.as_mut(), tls_addr) {
            tls.addr = addr;
        }
        let shared = Shared::new(&config);
        let held = shard::HeldSockets::default();
        let nonce_key: [u8; 32] = rand::random();
        let start = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (stop, stopped) = watch::channel(false);
        let mut threads = Vec::new();
        for (index, s) in sockets.into_iter().enumerate() {
            let server = Server::new(
                &config,
                shared.clone(),
                metrics.clone(),
                nonce_key,
                rand::random(),
                start,
                unix,
            );
            let metrics = metrics.clone();
            let held = held.clone();
            let stopped = stopped.clone();
            let acceptor = acceptor.clone();
            let listen = udp_addr;
            let coalesce_window = config.coalesce;
            let thread = std::thread::Builder::new()
                .name(format!("turn-shard-{index}"))
                .spawn(move || {
                    let (park, unpark) =
                        coalesce::hooks(coalesce_window, metrics.coalesce_waits.clone());
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .on_thread_park(park)
                        .on_thread_unpark(unpark)
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "TURN shard runtime failed");
                            return;
                        }
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&runtime, async move {
                        let listener = match udp::UdpIo::listener(s.udp) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(error = %e, "TURN UDP listener failed");
                                return;
                            }
                        };
                        let shard = shard::Shard::new(server, listener, listen, held, metrics);
                        let tls = s.tls.zip(acceptor);
                        shard::run(shard, Some(s.tcp), tls, stopped).await;
                    });
                })?;
            threads.push(thread);
        }
        tracing::info!(%udp_addr, ?tls_addr, workers = threads.len(), "TURN relay listening");
        Ok(Self {
            udp_addr,
            tcp_addr,
            tls_addr,
            listener_inodes,
            stop,
            threads,
        })
    }

    /// Registers `switchboard_turn_listener_receive_drops_total`, read from the kernel at
    /// each scrape (where `/proc/self/net/udp` exists).
    pub fn register_kernel_drops(&self, registry: &mut Registry) {
        registry
            .sub_registry_with_prefix("switchboard_turn")
            .register_collector(Box::new(kernel_drops::ListenerDrops::new(
                self.listener_inodes.clone(),
            )));
    }

    /// Stops every shard and waits for the threads (blocking: call off the runtime).
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// With port 0, how many kernel-picked UDP ports to try for the TCP listener too: any TCP
/// socket on that port number (a client's ephemeral port, say) makes the TCP bind fail.
const SHARED_PORT_ATTEMPTS: usize = 32;

/// Binds every shard's sockets. With port 0 the first bind picks the port and the rest
/// join it; UDP and TCP share the port number.
fn bind_all(config: &TurnConfig) -> io::Result<Vec<ShardSockets>> {
    let mut listen = config.listen;
    let mut tls_listen = config.tls.as_ref().map(|t| t.addr);
    let mut out = Vec::with_capacity(config.workers);
    for _ in 0..config.workers {
        let (udp, tcp, bound) = bind_same_port(
            listen,
            |addr| {
                let udp = udp::bind_udp_shared(addr)?;
                let bound = udp.local_addr()?;
                Ok((udp, bound))
            },
            udp::bind_tcp_shared,
        )?;
        listen = bound;
        let tls = match tls_listen {
            Some(addr) => {
                let l = udp::bind_tcp_shared(addr)?;
                tls_listen = Some(l.local_addr()?);
                Some(l)
            }
            None => None,
        };
        out.push(ShardSockets { udp, tcp, tls });
    }
    Ok(out)
}

/// Binds a UDP socket on `addr`, then a TCP listener on the port it got. With port 0 a
/// taken TCP port means another pick; the refused UDP sockets stay open until the end so
/// the kernel cannot hand the same port back.
fn bind_same_port<U, T>(
    addr: SocketAddr,
    mut bind_udp: impl FnMut(SocketAddr) -> io::Result<(U, SocketAddr)>,
    mut bind_tcp: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<(U, T, SocketAddr)> {
    let attempts = if addr.port() == 0 {
        SHARED_PORT_ATTEMPTS
    } else {
        1
    };
    let mut refused = Vec::new();
    for _ in 0..attempts {
        let (udp, bound) = bind_udp(addr)?;
        match bind_tcp(bound) {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempts > 1 => refused.push(udp),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no free port for both UDP and TCP on {} after {attempts} tries",
            addr.ip()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// UDP binds that hand out 40000, 40001, …; TCP binds refused for the ports in `taken`.
    fn run(addr: SocketAddr, taken: &[u16]) -> (io::Result<(u16, u16, SocketAddr)>, Vec<u16>) {
        let mut next = 40000;
        let mut tcp_tries = Vec::new();
        let result = bind_same_port(
            addr,
            |a| {
                let port = if a.port() == 0 { next } else { a.port() };
                next += 1;
                Ok((port, at(port)))
            },
            |a| {
                tcp_tries.push(a.port());
                if taken.contains(&a.port()) {
                    Err(io::ErrorKind::AddrInUse.into())
                } else {
                    Ok(a.port())
                }
            },
        );
        (result, tcp_tries)
    }

    #[test]
    fn a_picked_port_taken_for_tcp_is_picked_again() {
        let (result, tries) = run(at(0), &[40000, 40001]);
        let (udp, tcp, bound) = result.unwrap();
        assert_eq!((udp, tcp, bound), (40002, 40002, at(40002)));
        assert_eq!(tries, [40000, 40001, 40002]);
    }

    #[test]
    fn an_explicit_port_taken_for_tcp_is_an_error_at_once() {
        let (result, tries) = run(at(3478), &[3478]);
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::AddrInUse);
        assert_eq!(tries, [3478]);
    }

    #[test]
    fn picking_gives_up_after_the_attempt_bound() {
        let taken: Vec<u16> = (40000..40000 + SHARED_PORT_ATTEMPTS as u16).collect();
        let (result, tries) = run(at(0), &taken);
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("UDP and TCP"), "{err}");
        assert_eq!(tries.len(), SHARED_PORT_ATTEMPTS);
    }

    #[test]
    fn other_tcp_errors_are_not_retried() {
        let mut tries = 0;
        let result = bind_same_port(
            at(0),
            |_| Ok(((), at(40000))),
            |_| -> io::Result<()> {
                tries += 1;
                Err(io::ErrorKind::PermissionDenied.into())
            },
        );
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(tries, 1);
    }
}

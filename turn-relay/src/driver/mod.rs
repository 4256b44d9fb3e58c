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
pub(crate) mod shard;
pub(crate) mod tcp;
pub mod tls;
pub(crate) mod udp;

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
            stop,
            threads,
        })
    }

    /// Stops every shard and waits for the threads (blocking: call off the runtime).
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Binds every shard's sockets. With port 0 the first bind picks the port and the rest
/// join it; UDP and TCP share the port number.
fn bind_all(config: &TurnConfig) -> io::Result<Vec<ShardSockets>> {
    let mut listen = config.listen;
    let mut tls_listen = config.tls.as_ref().map(|t| t.addr);
    let mut out = Vec::with_capacity(config.workers);
    for _ in 0..config.workers {
        let udp = udp::bind_udp_shared(listen)?;
        listen = udp.local_addr()?;
        let tcp = udp::bind_tcp_shared(listen)?;
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

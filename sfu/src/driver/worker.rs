//! Worker threads: each owns a [`Shard`] (whole rooms) and one UDP socket, on a
//! single-threaded tokio runtime of its own, so per-packet work takes no lock. The loop only
//! moves bytes and time: read a batch, read the clock once, feed the shard, drain its output.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};

use super::udp::{Sends, UdpIo};
use crate::config::SfuConfig;
use crate::core::api::{Command, HandleId, Reply, RoomError, RoomEvent, RoomId};
use crate::core::room::RoomOutput;
use crate::core::shard::{Shard, ShardConfig};
use crate::metrics::{Metrics, WorkerLabel};

/// Receive batches per wake before the loop yields to commands and timers (quinn's
/// `IO_LOOP_BOUND` idea: a busy socket must not starve the rest).
const RECV_BATCHES_PER_WAKE: usize = 16;
/// How often gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Events for handles, delivered to the WebSocket session that owns them.
pub type EventSink = mpsc::UnboundedSender<(HandleId, RoomEvent)>;

pub enum WorkerMsg {
    Command {
        handle: HandleId,
        cmd: Command,
        events: EventSink,
        reply: oneshot::Sender<Result<Reply, RoomError>>,
    },
    /// The handle is gone for good: stop routing events to it.
    Forget { handle: HandleId },
}

/// The running workers: where to send commands for a room.
#[derive(Clone)]
pub struct Workers {
    senders: Arc<Vec<mpsc::UnboundedSender<WorkerMsg>>>,
    addrs: Arc<Vec<SocketAddr>>,
}

impl Workers {
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// UDP addresses the workers bound (for the banner and tests).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The worker that owns `room`: a stable hash, so every signalling connection agrees
    /// without shared state.
    pub fn for_room(&self, room: &RoomId) -> usize {
        // FNV-1a: stable across processes and versions, unlike std's SipHash keys.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in room.key().bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % self.senders.len() as u64) as usize
    }

    /// Sends a command to worker `w` and waits for its reply.
    pub async fn command(
        &self,
        w: usize,
        handle: HandleId,
        cmd: Command,
        events: &EventSink,
    ) -> Result<Reply, RoomError> {
        let (tx, rx) = oneshot::channel();
        let msg = WorkerMsg::Command {
            handle,
            cmd,
            events: events.clone(),
            reply: tx,
        };
        self.senders[w]
            .send(msg)
            .map_err(|_| RoomError::Internal("worker stopped".into()))?;
        rx.await
            .map_err(|_| RoomError::Internal("worker stopped".into()))?
    }

    pub fn forget(&self, w: usize, handle: HandleId) {
        let _ = self.senders[w].send(WorkerMsg::Forget { handle });
    }
}

/// Binds one socket per worker and starts the threads. They stop when `stop` turns true.
pub fn spawn_workers(
    config: &SfuConfig,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Workers, Vec<std::thread::JoinHandle<()>>)> {
    crate::init_crypto();
    let mut senders = Vec::new();
    let mut addrs = Vec::new();
    let mut threads = Vec::new();
    for k in 0..config.workers {
        let mut bind = config.bind;
        if bind.port() != 0 {
            bind.set_port(bind.port() + k as u16);
        }
        let socket = UdpSocket::bind(bind).with_context(|| format!("binding SFU UDP {bind}"))?;
        let local = socket.local_addr()?;
        let candidate = SocketAddr::new(config.public_ip, local.port());
        let shard = Shard::new(ShardConfig {
            candidate,
            max_publishers: config.max_publishers,
            require_grant: config.require_grant,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = metrics.clone();
        let stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sfu-worker-{k}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "SFU worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    if let Err(e) = run(k, shard, socket, rx, metrics, stop).await {
                        tracing::error!(worker = k, error = %e, "SFU worker stopped");
                    }
                });
            })?;
        senders.push(tx);
        addrs.push(local);
        threads.push(thread);
    }
    Ok((
        Workers {
            senders: Arc::new(senders),
            addrs: Arc::new(addrs),
        },
        threads,
    ))
}

async fn run(
    k: usize,
    mut shard: Shard,
    socket: UdpSocket,
    mut rx: mpsc::UnboundedReceiver<WorkerMsg>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut udp = UdpIo::new(socket)?;
    let span = tracing::debug_span!("sfu_worker", worker = k, addr = %udp.local_addr()?);
    let _enter = span.enter();
    let mut sinks: HashMap<HandleId, EventSink> = HashMap::new();
    let label = WorkerLabel {
        worker: k.to_string(),
    };
    let mut next_gauges = Instant::now();
    loop {
        let deadline = shard
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let mut received_at = None;
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            msg = rx.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                let now = Instant::now();
                on_msg(&mut shard, &mut sinks, now, msg);
                while let Ok(msg) = rx.try_recv() {
                    on_msg(&mut shard, &mut sinks, now, msg);
                }
            }
            r = udp.readable() => {
                r?;
                for _ in 0..RECV_BATCHES_PER_WAKE {
                    let now = Instant::now();
                    let n = udp.recv_batch(|from, data, _| shard.handle_datagram(now, from, data))?;
                    if n == 0 {
                        break;
                    }
                    received_at.get_or_insert(now);
                    flush(&mut shard, &mut udp.tx, &mut sinks);
                    if n < quinn_udp::BATCH_SIZE {
                        // Drained (and its readiness cleared): the sends wait for the timers'
                        // output below, to leave in the same `sendmmsg`.
                        break;
                    }
                    // More may be waiting: send this batch's output before reading on.
                    udp.tx.flush();
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
        // Timers run on every wake, so a busy socket cannot starve them.
        shard.handle_timeout(Instant::now());
        flush(&mut shard, &mut udp.tx, &mut sinks);
        udp.tx.flush();
        let stats = shard.take_stats();
        if let Some(t) = received_at {
            if stats.rtp_forwarded > 0 {
                metrics.forward_latency.observe(t.elapsed().as_secs_f64());
            }
        }
        metrics.absorb(&stats);
        metrics.send_dropped.inc_by(udp.tx.take_dropped());
        if Instant::now() >= next_gauges {
            next_gauges = Instant::now() + GAUGE_INTERVAL;
            let (rooms, peers, tracks) = shard.gauges();
            metrics.rooms.get_or_create(&label).set(rooms as i64);
            metrics.participants.get_or_create(&label).set(peers as i64);
            metrics.tracks.get_or_create(&label).set(tracks as i64);
            shard.subscriber_estimates(|bps| metrics.estimate.observe(bps as f64));
        }
    }
}

fn on_msg(
    shard: &mut Shard,
    sinks: &mut HashMap<HandleId, EventSink>,
    now: Instant,
    msg: WorkerMsg,
) {
    match msg {
        WorkerMsg::Command {
            handle,
            cmd,
            events,
            reply,
        } => {
            sinks.insert(handle, events);
            let r = shard.handle_command(now, handle, cmd);
            let _ = reply.send(r);
        }
        WorkerMsg::Forget { handle } => {
            sinks.remove(&handle);
        }
    }
}

/// Drains the shard: datagrams into the socket's queue (sent by `Sends::flush`), events to
/// their sessions.
fn flush(shard: &mut Shard, tx: &mut Sends, sinks: &mut HashMap<HandleId, EventSink>) {
    while let Some(o) = shard.poll_output() {
        match o {
            RoomOutput::Transmit(t) => tx.queue(t.destination, &t.contents),
            RoomOutput::Event(h, e) => {
                if let Some(s) = sinks.get(&h) {
                    if s.send((h, e)).is_err() {
                        sinks.remove(&h);
                    }
                }
            }
        }
    }
}

//! The physical limit the forward path is compared with: sending SRTP-sized datagrams
//! (1216 B: a 1200 B RTP packet plus the AEAD-AES-128-GCM tag) on loopback to local sockets.
//!
//! - `quinn_udp_send_1`: one `sendmsg` per datagram through quinn-udp, as a forward to one
//!   subscriber costs today.
//! - `quinn_udp_gso_batch`: quinn-udp's batched send (one `sendmsg` with UDP GSO carrying
//!   up to `max_gso_segments` datagrams to one destination).
//! - `sendmmsg_32_distinct`: Linux `sendmmsg` of 32 datagrams to 4 destinations in one call,
//!   the shape of an SFU fan-out (quinn-udp 0.5 batches by GSO only, not `sendmmsg`).
//!
//! A drain thread empties the receiving sockets with quinn-udp's `recvmmsg`; the bench
//! prints how many datagrams arrived, so a rate the receiver could not keep up with is seen.

use std::hint::black_box;
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};

const DATAGRAM: usize = 1216;
const RECEIVERS: usize = 4;
const MMSG_BATCH: usize = 32;
/// The largest UDP payload (65 535 minus the IPv4 and UDP headers).
const MAX_GSO_BYTES: usize = 65_507;
/// Socket buffers large enough for bursts of a few thousand datagrams.
const SOCKET_BUFFER: usize = 8 << 20;

/// Receiving sockets and the thread that drains them.
struct Sink {
    addrs: Vec<SocketAddr>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn new() -> Self {
        let sockets: Vec<UdpSocket> = (0..RECEIVERS)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind loopback"))
            .collect();
        let addrs = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || drain(&sockets, &r, &s));
        Self {
            addrs,
            received,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drain(sockets: &[UdpSocket], received: &AtomicU64, stop: &AtomicBool) {
    let states: Vec<UdpSocketState> = sockets
        .iter()
        .map(|s| {
            s.set_nonblocking(true).expect("nonblocking");
            let state = UdpSocketState::new(s.into()).expect("quinn-udp state");
            let _ = state.set_recv_buffer_size(s.into(), SOCKET_BUFFER);
            state
        })
        .collect();
    let mut storage = vec![[0u8; 64 * 1024]; BATCH_SIZE];
    let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for (socket, state) in sockets.iter().zip(&states) {
            let mut bufs: Vec<IoSliceMut<'_>> = storage
                .iter_mut()
                .map(|b| IoSliceMut::new(&mut b[..]))
                .collect();
            if let Ok(n) = state.recv(socket.into(), &mut bufs, &mut meta) {
                idle = false;
                let datagrams: usize = meta[..n]
                    .iter()
                    .map(|m| m.len.div_ceil(m.stride.max(1)))
                    .sum();
                received.fetch_add(datagrams as u64, Ordering::Relaxed);
            }
        }
        if idle {
            // Loopback delivery is synchronous with the sender: nothing to wait for but it.
            std::thread::yield_now();
        }
    }
}

fn sender() -> (UdpSocket, UdpSocketState) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let state = UdpSocketState::new((&socket).into()).expect("quinn-udp state");
    let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
    (socket, state)
}

fn quinn_udp(c: &mut Criterion) {
    let sink = Sink::new();
    let (socket, state) = sender();
    // A GSO send is one UDP datagram to the kernel: at most 64 KiB in all.
    let segments = state.max_gso_segments().min(MAX_GSO_BYTES / DATAGRAM);
    let payload = vec![0xA5u8; DATAGRAM * segments];
    let mut sent = 0u64;
    let mut g = c.benchmark_group("udp_loopback");
    g.throughput(Throughput::Elements(1));
    g.bench_function("quinn_udp_send_1x1216B", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            let t = Transmit {
                destination: sink.addrs[i % RECEIVERS],
                ecn: None,
                contents: &payload[..DATAGRAM],
                segment_size: None,
                src_ip: None,
            };
            // Full buffers (WouldBlock) are part of the limit: count only what left.
            sent += sent_or_full(state.try_send((&socket).into(), black_box(&t)), 1);
        })
    });
    g.throughput(Throughput::Elements(segments as u64));
    g.bench_function(format!("quinn_udp_gso_{segments}x1216B"), |b| {
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            let t = Transmit {
                destination: sink.addrs[i % RECEIVERS],
                ecn: None,
                contents: &payload,
                segment_size: (segments > 1).then_some(DATAGRAM),
                src_ip: None,
            };
            sent += sent_or_full(state.try_send((&socket).into(), black_box(&t)), segments);
        })
    });
    g.finish();
    report(&sink, "quinn-udp", sent, segments);
}

/// Datagrams that left; any error but a full buffer means the bench measures nothing.
fn sent_or_full(result: std::io::Result<()>, datagrams: usize) -> u64 {
    match result {
        Ok(()) => datagrams as u64,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("send failed: {e}"),
    }
}

fn report(sink: &Sink, what: &str, sent: u64, segments: usize) {
    // Let the drain catch up with what is already queued before reading the counter.
    let mut last = u64::MAX;
    while last != sink.received.load(Ordering::Relaxed) {
        last = sink.received.load(Ordering::Relaxed);
        std::thread::yield_now();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!(
        "{what}: {sent} datagrams sent, {last} received by the drain (GSO segments per call: {segments})"
    );
}

/// `sendmmsg(2)` of `MMSG_BATCH` datagrams round-robin over the receivers.
fn sendmmsg(c: &mut Criterion) {
    let sink = Sink::new();
    let (socket, _state) = sender();
    let payload = vec![0x5Au8; DATAGRAM];
    let dests: Vec<libc::sockaddr_in> = sink.addrs.iter().map(sockaddr_in).collect();
    let mut iov: Vec<libc::iovec> = (0..MMSG_BATCH)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: DATAGRAM,
        })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    let mut msgs: Vec<libc::mmsghdr> = (0..MMSG_BATCH)
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (i, m) in msgs.iter_mut().enumerate() {
        m.msg_hdr.msg_name = &dests[i % RECEIVERS] as *const libc::sockaddr_in as *mut libc::c_void;
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        m.msg_hdr.msg_iov = &mut iov[i];
        m.msg_hdr.msg_iovlen = 1;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    let mut sent = 0u64;
    let mut g = c.benchmark_group("udp_loopback");
    g.throughput(Throughput::Elements(MMSG_BATCH as u64));
    g.bench_function(
        format!("sendmmsg_{MMSG_BATCH}x1216B_{RECEIVERS}_destinations"),
        |b| {
            b.iter(|| {
                // SAFETY: `msgs` points into `dests`, `iov` and `payload`, all alive and unmoved
                // for this call; the kernel only reads them (and writes msg_len).
                let n =
                    unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), MMSG_BATCH as libc::c_uint, 0) };
                if n > 0 {
                    sent += n as u64;
                }
            })
        },
    );
    g.finish();
    report(&sink, "sendmmsg", sent, 1);
}

fn sockaddr_in(addr: &SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = addr else {
        panic!("receivers bind IPv4 loopback");
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

criterion_group!(benches, quinn_udp, sendmmsg);
criterion_main!(benches);

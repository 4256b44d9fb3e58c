//! UDP sockets through `quinn-udp`: batched receive (`recvmmsg`, GRO), batched sends
//! (GSO: datagrams of one batch that leave the same socket for the same destination with
//! the same size go out in one `sendmsg`), sends with the source address of the client's
//! packet, buffers allocated once per shard.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState, BATCH_SIZE};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use crate::core::allocation::AllocationId;

/// One receive slot: a whole GRO super-datagram fits (the IPv4 UDP maximum).
pub(crate) const SLOT: usize = 65_536;
/// Largest frame the core writes for a client: a Data indication around a 64 kB payload.
pub(crate) const OUT_BUF: usize = SLOT + 128;
/// Listener socket buffers (arbitrary: a few milliseconds of a busy relay; the kernel
/// caps them at `net.core.[rw]mem_max`).
const LISTENER_BUFFER: usize = 8 << 20;
/// Relayed-socket buffers (arbitrary: a burst of video frames for one allocation).
const RELAY_BUFFER: usize = 1 << 20;

/// A UDP socket registered with tokio's reactor, with its quinn-udp state. `AsyncFd`
/// rather than `tokio::net::UdpSocket` so a receive that drained the socket can clear its
/// readiness itself, sparing the `recvmmsg` that would only say `EAGAIN`.
pub(crate) struct UdpIo {
    pub socket: AsyncFd<std::net::UdpSocket>,
    pub state: UdpSocketState,
}

/// What one receive call did.
pub(crate) enum Received {
    /// `n` slots filled; the socket may hold more.
    More(usize),
    /// `n` slots filled (perhaps 0) and the socket is empty: wait for readiness again.
    Drained(usize),
}

impl UdpIo {
    /// Wraps a bound, non-blocking std socket; must run inside a tokio runtime.
    pub fn new(socket: std::net::UdpSocket, buffer: usize) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Best effort: the kernel may clamp these, which only costs headroom.
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), buffer);
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), buffer);
        // SAFETY: the `UdpSocket` owns its descriptor and is neither closed nor replaced
        // while the `AsyncFd` holds it (it is dropped with it).
        let socket = unsafe { AsyncFd::register(socket)? };
        Ok(Self { socket, state })
    }

    pub fn listener(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::new(socket, LISTENER_BUFFER)
    }

    pub fn relay(socket: std::net::UdpSocket) -> io::Result<Self> {
        let io = Self::new(socket, RELAY_BUFFER)?;
        // An optimisation only: a socket that keeps its cmsgs still relays.
        if let Err(e) = without_receive_cmsgs(io.socket.get_ref()) {
            tracing::debug!(error = %e, "relayed socket keeps its receive cmsgs");
        }
        Ok(io)
    }

    /// Waits until the socket is readable.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, std::net::UdpSocket>> {
        self.socket.readable().await
    }

    /// One `recvmmsg` into `bufs`. A batch with free slots left means the kernel had no more
    /// (non-blocking `recvmmsg` stops at the first empty read), so readiness is cleared then
    /// and not only on `WouldBlock`: one syscall per wake-up instead of two under paced
    /// traffic. Clearing is safe against a datagram arriving meanwhile: tokio keeps
    /// readiness that an event newer than `ready` set.
    pub fn recv(
        &self,
        ready: &mut AsyncFdReadyGuard<'_, std::net::UdpSocket>,
        bufs: &mut RecvBuffers,
    ) -> io::Result<Received> {
        let mut chunks = bufs.data.chunks_mut(SLOT);
        // `RecvBuffers::new` made exactly BATCH_SIZE slots.
        let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("BATCH_SIZE slots")));
        match self.state.recv(
            UdpSockRef::from(self.socket.get_ref()),
            &mut iovs,
            &mut bufs.meta,
        ) {
            Ok(n) if n < BATCH_SIZE => {
                ready.clear_ready();
                Ok(Received::Drained(n))
            }
            Ok(n) => Ok(Received::More(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready.clear_ready();
                Ok(Received::Drained(0))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `contents`, datagrams of `segment` bytes (the last may be shorter), in as
    /// few `sendmsg` calls as the socket's GSO allows (one per datagram without GSO). A
    /// full send buffer drops them (UDP: the peers' media and retransmissions cope, as
    /// with loss on the path); returns how many were dropped.
    pub fn send(
        &self,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        contents: &[u8],
        segment: usize,
    ) -> usize {
        // quinn-udp lowers this to 1 if the kernel or NIC refuses GSO at run time.
        let per_call = segment * self.state.max_gso_segments().max(1);
        let mut dropped = 0;
        for chunk in contents.chunks(per_call) {
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: chunk,
                segment_size: (chunk.len() > segment).then_some(segment),
                src_ip,
            };
            // Straight to the socket, not through `try_io`: a relayed socket just opened has
            // no write readiness until the reactor's next turn, and `try_io` would refuse the
            // allocation's first packets although the kernel takes them (the socket is
            // non-blocking either way; a full buffer still fails with WouldBlock).
            let sent = self
                .state
                .send(UdpSockRef::from(self.socket.get_ref()), &transmit);
            if sent.is_err() {
                dropped += chunk.len().div_ceil(segment);
            }
        }
        dropped
    }
}

/// The socket a queued datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The shard's listener (to a UDP client).
    Listener,
    /// An allocation's relayed socket (to a peer).
    Relay(AllocationId),
}

/// Datagrams for one socket to send to one destination: `contents` holds them back to
/// back, each `segment` bytes long but perhaps the last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagrams<'a> {
    pub source: Source,
    pub to: SocketAddr,
    pub src_ip: Option<IpAddr>,
    pub contents: &'a [u8],
    pub segment: usize,
}

/// Datagrams waiting in the outbox for one socket and destination; a shorter datagram
/// can only be the last one, so it closes the group.
struct Group {
    source: Source,
    to: SocketAddr,
    src_ip: Option<IpAddr>,
    segment: usize,
    data: Vec<u8>,
    closed: bool,
}

impl Group {
    fn datagrams(&self) -> Datagrams<'_> {
        Datagrams {
            source: self.source,
            to: self.to,
            src_ip: self.src_ip,
            contents: &self.data,
            segment: self.segment,
        }
    }

    fn count(&self) -> usize {
        self.data.len().div_ceil(self.segment.max(1))
    }

    /// Whether `bytes` can join: same size (or a shorter last one), room left.
    fn takes(&self, len: usize) -> bool {
        !self.closed
            && len <= self.segment
            && self.count() < GSO_SEGMENTS
            && self.data.len() + len <= GSO_BYTES
    }
}

/// Datagrams per GSO send at most (the kernel's UDP_MAX_SEGMENTS).
const GSO_SEGMENTS: usize = 64;
/// Bytes per GSO send at most: one IPv4 UDP datagram's payload limit, rounded down.
const GSO_BYTES: usize = 64_000;
/// Larger datagrams are sent alone: a GSO segment must fit the path MTU or the kernel
/// refuses the whole send (and quinn-udp then turns GSO off for the socket). 1232 bytes
/// fit IPv6's minimum MTU (1280 - 40 - 8), and a 1200-byte RTP packet (libwebrtc's
/// largest) in ChannelData is 1204.
const GSO_MAX_SEGMENT: usize = 1232;
/// Destinations one batch may interleave before everything is flushed (arbitrary: a
/// batch is 32 receive slots; each group's buffer is GSO_BYTES, allocated once).
const OUTBOX_GROUPS: usize = 8;

/// The shard's outgoing UDP datagrams, grouped per (socket, destination) while a receive
/// batch is processed and sent when it ends ([`Outbox::flush`]). Groups keep their
/// datagrams in order; datagrams for different destinations have no order to keep.
pub(crate) struct Outbox {
    groups: Vec<Group>,
    /// `groups[..active]` hold datagrams.
    active: usize,
}

impl Outbox {
    pub fn new() -> Self {
        let groups = (0..OUTBOX_GROUPS)
            .map(|_| Group {
                source: Source::Listener,
                to: SocketAddr::from(([0, 0, 0, 0], 0)),
                src_ip: None,
                segment: 0,
                data: Vec::with_capacity(GSO_BYTES),
                closed: false,
            })
            .collect();
        Self { groups, active: 0 }
    }

    /// Queues one datagram; `send` carries out any group that has to leave first.
    pub fn push(
        &mut self,
        source: Source,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        bytes: &[u8],
        send: &mut dyn FnMut(Datagrams<'_>),
    ) {
        if bytes.len() > GSO_MAX_SEGMENT || bytes.is_empty() {
            // Alone, straight away (still after the same destination's queued ones).
            self.flush_matching(source, to, src_ip, send);
            send(Datagrams {
                source,
                to,
                src_ip,
                contents: bytes,
                segment: bytes.len().max(1),
            });
            return;
        }
        let found = self.groups[..self.active]
            .iter()
            .position(|g| g.source == source && g.to == to && g.src_ip == src_ip);
        let index = match found {
            Some(i) if self.groups[i].takes(bytes.len()) => {
                let g = &mut self.groups[i];
                g.closed = bytes.len() < g.segment;
                g.data.extend_from_slice(bytes);
                return;
            }
            Some(i) => {
                // Same destination, but full or another size: it leaves first, in order.
                send(self.groups[i].datagrams());
                i
            }
            None if self.active < self.groups.len() => {
                self.active += 1;
                self.active - 1
            }
            None => {
                self.flush(send);
                self.active = 1;
                0
            }
        };
        let g = &mut self.groups[index];
        g.source = source;
        g.to = to;
        g.src_ip = src_ip;
        g.segment = bytes.len();
        g.closed = false;
        g.data.clear();
        g.data.extend_from_slice(bytes);
    }

    fn flush_matching(
        &mut self,
        source: Source,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        send: &mut dyn FnMut(Datagrams<'_>),
    ) {
        let found = self.groups[..self.active]
            .iter()
            .position(|g| g.source == source && g.to == to && g.src_ip == src_ip);
        if let Some(i) = found {
            send(self.groups[i].datagrams());
            self.groups.swap(i, self.active - 1);
            self.active -= 1;
        }
    }

    /// Sends every queued group.
    pub fn flush(&mut self, send: &mut dyn FnMut(Datagrams<'_>)) {
        for g in &self.groups[..self.active] {
            send(g.datagrams());
        }
        self.active = 0;
    }
}

/// Receive slots and their metadata, allocated once per shard and reused for every
/// batch on every socket of the shard (one thread: never borrowed twice at once).
pub(crate) struct RecvBuffers {
    pub data: Vec<u8>,
    pub meta: [RecvMeta; BATCH_SIZE],
}

impl RecvBuffers {
    pub fn new() -> Self {
        Self {
            data: vec![0; SLOT * BATCH_SIZE],
            meta: [RecvMeta::default(); BATCH_SIZE],
        }
    }

    /// The datagrams of slot `i`: GRO may have coalesced several of `stride` bytes.
    pub fn datagrams(&self, i: usize) -> (SocketAddr, Option<IpAddr>, std::slice::Chunks<'_, u8>) {
        let meta = &self.meta[i];
        let slot = &self.data[i * SLOT..i * SLOT + meta.len];
        (meta.addr, meta.dst_ip, slot.chunks(meta.stride.max(1)))
    }
}

/// Turns off the per-datagram control messages quinn-udp asks for on every socket (the
/// destination address and the TOS byte): a relayed socket needs neither (one address,
/// no ECN), and the kernel builds them for every datagram it hands over.
fn without_receive_cmsgs(socket: &std::net::UdpSocket) -> io::Result<()> {
    let sock = socket2::SockRef::from(socket);
    match socket.local_addr()? {
        SocketAddr::V4(_) => {
            sock.set_recv_tos_v4(false)?;
            set_int_option(socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 0)
        }
        SocketAddr::V6(_) => {
            sock.set_recv_tclass_v6(false)?;
            if !sock.only_v6()? {
                sock.set_recv_tos_v4(false)?;
            }
            set_int_option(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 0)
        }
    }
}

/// `setsockopt` of an `int` option (socket2 has no setter for the pktinfo ones).
fn set_int_option(
    socket: &std::net::UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor, and a pointer to an `int` with its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A UDP socket bound with `SO_REUSEPORT`, so each shard has its own on the same port
/// and the kernel spreads clients across them by 4-tuple hash.
pub(crate) fn bind_udp_shared(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A relayed address: a plain socket on `addr`.
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A TCP listener with `SO_REUSEPORT` (one per shard, like the UDP listeners).
pub(crate) fn bind_tcp_shared(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Outbox` asked to send: (source, destination, datagram sizes).
    type Sent = Vec<(Source, SocketAddr, Vec<usize>)>;

    fn record(sent: &mut Sent) -> impl FnMut(Datagrams<'_>) + '_ {
        |d| {
            let sizes = d.contents.chunks(d.segment).map(<[u8]>::len).collect();
            sent.push((d.source, d.to, sizes));
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    const A: Source = Source::Relay(AllocationId {
        slot: 0,
        generation: 0,
    });
    const B: Source = Source::Relay(AllocationId {
        slot: 1,
        generation: 0,
    });

    #[test]
    fn outbox_groups_per_socket_destination_and_size_in_order() {
        let mut outbox = Outbox::new();
        let mut sent = Sent::new();
        let mut send = record(&mut sent);
        for _ in 0..3 {
            outbox.push(A, addr(1), None, &[1; 100], &mut send);
            outbox.push(B, addr(1), None, &[2; 100], &mut send);
        }
        // A shorter datagram ends A's group; the next full-size one starts a new group
        // after A's first one has left (same destination: order kept).
        outbox.push(A, addr(1), None, &[1; 40], &mut send);
        outbox.push(A, addr(1), None, &[1; 100], &mut send);
        // Same socket, other destination: its own group.
        outbox.push(A, addr(2), None, &[3; 100], &mut send);
        // Too large for GSO: after A->1's queued group, alone.
        outbox.push(A, addr(1), None, &[4; 1300], &mut send);
        outbox.flush(&mut send);
        drop(send);
        // Order matters per (socket, destination) only.
        let of = |source, to| -> Vec<Vec<usize>> {
            sent.iter()
                .filter(|s| s.0 == source && s.1 == to)
                .map(|s| s.2.clone())
                .collect()
        };
        assert_eq!(
            of(A, addr(1)),
            vec![vec![100, 100, 100, 40], vec![100], vec![1300]]
        );
        assert_eq!(of(B, addr(1)), vec![vec![100, 100, 100]]);
        assert_eq!(of(A, addr(2)), vec![vec![100]]);
        assert_eq!(sent.len(), 5);
    }

    #[test]
    fn outbox_caps_segments_and_groups() {
        let mut outbox = Outbox::new();
        let mut sent = Sent::new();
        let mut send = record(&mut sent);
        for _ in 0..GSO_SEGMENTS + 1 {
            outbox.push(Source::Listener, addr(1), None, &[0; 10], &mut send);
        }
        // More destinations than groups: everything queued leaves, then the newcomer.
        for port in 2..(2 + OUTBOX_GROUPS as u16) {
            outbox.push(Source::Listener, addr(port), None, &[0; 10], &mut send);
        }
        outbox.flush(&mut send);
        drop(send);
        assert_eq!(sent[0].2.len(), GSO_SEGMENTS);
        assert_eq!(sent.len(), 1 + OUTBOX_GROUPS + 1);
        assert_eq!(
            sent.iter().map(|s| s.2.len()).sum::<usize>(),
            GSO_SEGMENTS + 1 + OUTBOX_GROUPS
        );
    }

    /// A runtime with a reactor, for `UdpIo` (entered by the caller).
    fn io_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    }

    /// A relayed socket, IPv4 or IPv6, asks for no receive cmsgs and still receives.
    #[test]
    fn relayed_sockets_receive_without_cmsgs() {
        let runtime = io_runtime();
        let _guard = runtime.enter();
        for (local, level, name) in [
            ("127.0.0.1:0", libc::IPPROTO_IP, libc::IP_PKTINFO),
            ("[::1]:0", libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
        ] {
            let relay = UdpIo::relay(bind_udp(local.parse().unwrap()).unwrap()).unwrap();
            assert_eq!(
                int_option(relay.socket.get_ref(), level, name),
                0,
                "{local}"
            );
            let to = relay.socket.get_ref().local_addr().unwrap();
            let sender = std::net::UdpSocket::bind(local).unwrap();
            sender.send_to(b"relayed", to).unwrap();
            let mut bufs = RecvBuffers::new();
            let n = loop {
                let mut ready = runtime.block_on(relay.readable()).unwrap();
                match relay.recv(&mut ready, &mut bufs).unwrap() {
                    Received::More(n) | Received::Drained(n) if n > 0 => break n,
                    _ => continue,
                }
            };
            assert_eq!(n, 1);
            let (from, dst_ip, mut datagrams) = bufs.datagrams(0);
            assert_eq!(from, sender.local_addr().unwrap());
            assert_eq!(dst_ip, None, "no PKTINFO cmsg: {local}");
            assert_eq!(datagrams.next(), Some(&b"relayed"[..]));
        }
    }

    fn int_option(socket: &std::net::UdpSocket, level: libc::c_int, name: libc::c_int) -> i32 {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid descriptor, and a pointer to an `int` with its size.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
        value
    }

    /// A GSO send reaches a plain socket as separate datagrams of the segment size.
    #[test]
    fn segmented_send_arrives_as_datagrams() {
        let runtime = io_runtime();
        let _guard = runtime.enter();
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Guards against a hang only.
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let sender = UdpIo::relay(bind_udp("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap();
        let mut contents = Vec::new();
        for i in 0..5u8 {
            contents.extend_from_slice(&[i; 100]);
        }
        contents.extend_from_slice(&[9; 30]);
        let to = receiver.local_addr().unwrap();
        // A new socket is writable once the reactor has seen it.
        drop(runtime.block_on(sender.socket.writable()).unwrap());
        assert_eq!(sender.send(to, None, &contents, 100), 0);
        let mut buf = [0u8; 2048];
        for i in 0..5u8 {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 100][..]);
        }
        let (n, _) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[9; 30][..]);
    }
}

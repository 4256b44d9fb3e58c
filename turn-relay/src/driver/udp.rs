//! UDP sockets through `quinn-udp`: batched receive (`recvmmsg`, GRO), sends with the
//! source address of the client's packet, buffers allocated once per shard.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState, BATCH_SIZE};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

/// One receive slot: a whole GRO super-datagram fits (the IPv4 UDP maximum).
pub(crate) const SLOT: usize = 65_536;
/// Largest frame the core writes for a client: a Data indication around a 64 kB payload.
pub(crate) const OUT_BUF: usize = SLOT + 128;
/// Listener socket buffers (arbitrary: a few milliseconds of a busy relay; the kernel
/// caps them at `net.core.[rw]mem_max`).
const LISTENER_BUFFER: usize = 8 << 20;
/// Relayed-socket buffers (arbitrary: a burst of video frames for one allocation).
const RELAY_BUFFER: usize = 1 << 20;

/// A tokio UDP socket with its quinn-udp state.
pub(crate) struct UdpIo {
    pub socket: tokio::net::UdpSocket,
    pub state: UdpSocketState,
}

impl UdpIo {
    /// Wraps a bound, non-blocking std socket; must run inside a tokio runtime.
    pub fn new(socket: std::net::UdpSocket, buffer: usize) -> io::Result<Self> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Best effort: the kernel may clamp these, which only costs headroom.
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), buffer);
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), buffer);
        Ok(Self {
            socket: tokio::net::UdpSocket::from_std(socket)?,
            state,
        })
    }

    pub fn listener(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::new(socket, LISTENER_BUFFER)
    }

    pub fn relay(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::new(socket, RELAY_BUFFER)
    }

    /// One `recvmmsg` into `bufs`; `WouldBlock` when nothing is queued.
    pub fn recv(&self, bufs: &mut RecvBuffers) -> io::Result<usize> {
        let mut chunks = bufs.data.chunks_mut(SLOT);
        // `RecvBuffers::new` made exactly BATCH_SIZE slots.
        let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("BATCH_SIZE slots")));
        self.socket.try_io(Interest::READABLE, || {
            self.state
                .recv(UdpSockRef::from(&self.socket), &mut iovs, &mut bufs.meta)
        })
    }

    /// Sends one datagram; a full send buffer drops it (UDP: the peers' media and
    /// retransmissions cope, as with loss on the path).
    pub fn send(&self, to: SocketAddr, src_ip: Option<IpAddr>, contents: &[u8]) -> bool {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: None,
            src_ip,
        };
        self.socket
            .try_io(Interest::WRITABLE, || {
                self.state.send(UdpSockRef::from(&self.socket), &transmit)
            })
            .is_ok()
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

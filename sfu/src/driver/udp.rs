//! A worker's UDP socket, batched with `quinn-udp`: `recvmmsg` (and GRO) in, GSO out where the
//! kernel has them, plain syscalls elsewhere. Buffers are allocated once per socket.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;

/// Receive buffer per batch slot: a full-size datagram (GRO may coalesce several of one
/// stride into one slot, up to 64 KiB).
const SLOT_BYTES: usize = 65_536;

pub struct UdpIo {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl UdpIo {
    /// Wraps a bound std socket (must be called inside a tokio runtime).
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Bigger kernel buffers absorb bursts of a 12-party room (best effort).
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self {
            socket,
            state,
            bufs: (0..BATCH_SIZE).map(|_| vec![0; SLOT_BYTES]).collect(),
            meta: vec![RecvMeta::default(); BATCH_SIZE],
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Receives one batch without blocking and hands each datagram to `f`. Returns how many
    /// datagrams there were (0 when the socket had nothing).
    pub fn recv_batch(&mut self, mut f: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        let Self {
            socket,
            state,
            bufs,
            meta,
        } = self;
        let mut slices: Vec<IoSliceMut<'_>> = bufs
            .iter_mut()
            .map(|b| IoSliceMut::new(&mut b[..]))
            .collect();
        let n = match socket.try_io(Interest::READABLE, || {
            state.recv(UdpSockRef::from(&*socket), &mut slices, meta)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for (m, buf) in meta.iter().zip(slices.iter()).take(n) {
            let data = &buf[..m.len];
            let stride = m.stride.max(1);
            for d in data.chunks(stride) {
                f(m.addr, d);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Sends one datagram. Errors are not fatal for UDP (peers retransmit); quinn-udp logs.
    pub fn send(&self, destination: SocketAddr, contents: &[u8]) {
        let t = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        };
        // Straight to the kernel: a full send buffer drops the datagram (WouldBlock), which
        // is what a congested link does too; waiting would stall every other peer.
        let _ = self.state.send(UdpSockRef::from(&self.socket), &t);
    }
}

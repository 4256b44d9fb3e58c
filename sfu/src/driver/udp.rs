//! A worker's UDP socket: `recvmmsg` (and GRO) in through `quinn-udp`; out, the datagrams of
//! a batch are queued ([`super::outbox`]) and sent with one `sendmmsg`, same-size runs to one
//! destination as one GSO message (Linux; one send per datagram elsewhere). Buffers are
//! allocated once per socket.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;

use super::outbox::Outbox;
#[cfg(target_os = "linux")]
use super::outbox::OUTBOX_SLOTS;

/// Receive buffer per batch slot: a full-size datagram (GRO may coalesce several of one
/// stride into one slot, up to 64 KiB).
const SLOT_BYTES: usize = 65_536;

pub struct UdpIo {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    /// The sending half: queued datagrams and their `sendmmsg` arrays.
    pub tx: Sends,
}

/// The sending half of a worker's socket (a duplicate descriptor of it), apart from the
/// receive buffers so datagrams can be queued while a received batch is being read.
pub struct Sends {
    socket: std::net::UdpSocket,
    /// Datagrams waiting for [`Sends::flush`].
    outbox: Outbox,
    #[cfg(target_os = "linux")]
    mmsg: Box<Mmsg>,
    /// Datagrams per GSO send (1: no GSO), from quinn-udp's probe of the kernel.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    gso_segments: usize,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    ipv6: bool,
    dropped: u64,
}

impl UdpIo {
    /// Wraps a bound std socket (must be called inside a tokio runtime).
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Bigger kernel buffers absorb bursts of a 12-party room (best effort).
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let tx = Sends {
            socket: socket.try_clone()?,
            outbox: Outbox::new(),
            #[cfg(target_os = "linux")]
            mmsg: Mmsg::new(),
            gso_segments: state.max_gso_segments().max(1),
            ipv6: socket.local_addr()?.is_ipv6(),
            dropped: 0,
        };
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self {
            socket,
            state,
            bufs: (0..BATCH_SIZE).map(|_| vec![0; SLOT_BYTES]).collect(),
            meta: vec![RecvMeta::default(); BATCH_SIZE],
            tx,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Receives one batch without blocking and hands each datagram to `f`, with the sending
    /// half to queue answers on. Returns how many
    /// datagrams there were (0 when the socket had nothing); fewer than `BATCH_SIZE` means
    /// the socket is drained and its readiness cleared.
    pub fn recv_batch(
        &mut self,
        mut f: impl FnMut(SocketAddr, &[u8], &mut Sends),
    ) -> io::Result<usize> {
        let Self {
            socket,
            state,
            bufs,
            meta,
            tx,
        } = self;
        let mut slices: Vec<IoSliceMut<'_>> = bufs
            .iter_mut()
            .map(|b| IoSliceMut::new(&mut b[..]))
            .collect();
        // A batch with free slots means the kernel had no more (a non-blocking `recvmmsg`
        // stops at the first empty read): the closure then reports WouldBlock so `try_io`
        // clears the readiness, sparing the `recvmmsg` that would only say EAGAIN. Safe
        // against a datagram arriving meanwhile: tokio keeps readiness newer than this read.
        let mut filled = 0;
        let slots = slices.len();
        let r = socket.try_io(Interest::READABLE, || {
            filled = state.recv(UdpSockRef::from(&*socket), &mut slices, meta)?;
            if filled < slots {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        let n = match r {
            Ok(()) => filled,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => filled,
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for (m, buf) in meta.iter().zip(slices.iter()).take(n) {
            let data = &buf[..m.len];
            let stride = m.stride.max(1);
            for d in data.chunks(stride) {
                f(m.addr, d, tx);
                count += 1;
            }
        }
        Ok(count)
    }
}

impl Sends {
    /// Queues a datagram; [`Self::flush`] sends the queue. A full queue is sent first;
    /// a datagram too large for a queue slot leaves alone, after the queue (order kept).
    pub fn queue(&mut self, destination: SocketAddr, contents: &[u8]) {
        if !Outbox::fits(contents) {
            self.flush();
            self.send_one(destination, contents);
            return;
        }
        if self.outbox.is_full() {
            self.flush();
        }
        self.outbox.push(destination, contents);
    }

    /// Datagrams dropped at send since the last call (full send buffer or a send error).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// One datagram straight to the kernel (non-blocking: a full send buffer drops it, which
    /// is what a congested link does too; waiting would stall every other peer).
    fn send_one(&mut self, destination: SocketAddr, contents: &[u8]) {
        if self.socket.send_to(contents, destination).is_err() {
            self.dropped += 1;
        }
    }

    /// Sends everything queued: one `sendmmsg` (more only if the kernel takes part), one
    /// message per GSO run. A full send buffer (EAGAIN) drops what is left; a message the
    /// kernel refuses is dropped alone (and GSO turned off if it was a GSO send).
    #[cfg(target_os = "linux")]
    pub fn flush(&mut self) {
        use std::os::fd::AsRawFd;
        if self.outbox.is_empty() {
            return;
        }
        self.outbox.plan(self.gso_segments);
        let outbox = &self.outbox;
        let mm = &mut *self.mmsg;
        let messages = outbox.messages();
        for (k, &slot) in outbox.order().iter().enumerate() {
            let d = outbox.datagram(slot);
            mm.iovs[k] = libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            };
        }
        mm.addrs.clear();
        for m in messages {
            mm.addrs
                .push(socket2::SockAddr::from(map_destination(self.ipv6, m.to)));
        }
        for (i, m) in messages.iter().enumerate() {
            let h = &mut mm.hdrs[i];
            // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths).
            *h = unsafe { std::mem::zeroed() };
            let addr = &mm.addrs[i];
            h.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = addr.len();
            // SAFETY: `start + count <= order().len()`, the iovecs filled above.
            h.msg_hdr.msg_iov = unsafe { mm.iovs.as_mut_ptr().add(m.start) };
            h.msg_hdr.msg_iovlen = m.count as _;
            if m.count > 1 {
                let control = &mut mm.controls[i];
                h.msg_hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE of a u16 (24 bytes on 64-bit) fits the 32-byte control
                // buffer, which is 8-byte aligned; CMSG_FIRSTHDR is non-null for it.
                unsafe {
                    h.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, m.segment as u16);
                }
            }
        }
        let fd = self.socket.as_raw_fd();
        let mut next = 0;
        while next < messages.len() {
            let left = messages.len() - next;
            // SAFETY: `hdrs[next..next + left]` were filled above and point at `addrs`,
            // `iovs`, `controls` and the outbox's slots, all alive and unmoved until this
            // returns; the kernel only reads them (and writes `msg_len`).
            let n = unsafe {
                libc::sendmmsg(fd, mm.hdrs.as_mut_ptr().add(next), left as libc::c_uint, 0)
            };
            if n > 0 {
                next += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted if n < 0 => continue,
                io::ErrorKind::WouldBlock => {
                    self.dropped += messages[next..].iter().map(|m| m.count as u64).sum::<u64>();
                    break;
                }
                _ => {
                    let m = messages[next];
                    if m.count > 1
                        && matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL))
                        && self.gso_segments > 1
                    {
                        // Some devices refuse GSO only when it is used.
                        tracing::info!(error = %e, "GSO send refused; sending without GSO");
                        self.gso_segments = 1;
                    } else {
                        tracing::debug!(error = %e, to = %m.to, "send failed");
                    }
                    self.dropped += m.count as u64;
                    next += 1;
                }
            }
        }
        self.outbox.clear();
    }

    /// Without `sendmmsg`: one send per datagram.
    #[cfg(not(target_os = "linux"))]
    pub fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        self.outbox.plan(1);
        for i in 0..self.outbox.messages().len() {
            let m = self.outbox.messages()[i];
            let slot = self.outbox.order()[m.start];
            if self
                .socket
                .send_to(self.outbox.datagram(slot), m.to)
                .is_err()
            {
                self.dropped += 1;
            }
        }
        self.outbox.clear();
    }
}

/// An IPv4 destination seen through an IPv6 socket is IPv4-mapped.
#[cfg(target_os = "linux")]
fn map_destination(ipv6_socket: bool, to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) if ipv6_socket => {
            SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
        }
        _ => to,
    }
}

/// `sendmmsg`'s arrays, one entry per queue slot, allocated once per socket. They hold raw
/// pointers only while a flush runs.
#[cfg(target_os = "linux")]
struct Mmsg {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<socket2::SockAddr>,
    /// One control buffer (a UDP_SEGMENT cmsg) per message, 8-byte aligned.
    controls: Vec<[u64; 4]>,
}

#[cfg(target_os = "linux")]
impl Mmsg {
    fn new() -> Box<Self> {
        Box::new(Self {
            // SAFETY: all-zero mmsghdr and iovec are valid values.
            hdrs: (0..OUTBOX_SLOTS)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            iovs: (0..OUTBOX_SLOTS)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            addrs: Vec::with_capacity(OUTBOX_SLOTS),
            controls: vec![[0; 4]; OUTBOX_SLOTS],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Receives `n` datagrams on `socket` (bounded by a read timeout, not synchronised by it).
    fn receive(socket: &std::net::UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 4096];
        (0..n)
            .map(|_| {
                let len = socket.recv(&mut buf).expect("datagram");
                buf[..len].to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn queued_datagrams_arrive_intact_and_in_order_per_destination() {
        let mut io = UdpIo::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let peers: Vec<std::net::UdpSocket> = (0..3)
            .map(|_| {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        // Per peer: same-size runs (GSO), a shorter last one, a larger one, one too large for
        // a queue slot (sent alone, after the queue), interleaved across peers; more than
        // one queue's worth so a full queue is flushed mid-way.
        let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); peers.len()];
        let sizes = [1000, 1000, 1000, 400, 1200, 3000, 1100, 1100];
        for round in 0..10u8 {
            for (i, &len) in sizes.iter().enumerate() {
                for (p, peer) in peers.iter().enumerate() {
                    let mut d = vec![round; len];
                    d[0] = p as u8;
                    d[1] = i as u8;
                    io.tx.queue(peer.local_addr().unwrap(), &d);
                    expected[p].push(d);
                }
            }
        }
        io.tx.flush();
        assert_eq!(io.tx.take_dropped(), 0);
        for (p, peer) in peers.iter().enumerate() {
            assert_eq!(receive(peer, expected[p].len()), expected[p], "peer {p}");
        }
    }
}

//! Datagrams the kernel dropped because a listener socket's receive buffer was full: the
//! `drops` column of `/proc/self/net/udp` and `udp6`, read when metrics are scraped. A
//! receive buffer or coalescing window too small for the load shows here, and nowhere else.

use std::io;
use std::os::fd::AsRawFd;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// The socket's inode, the key of its row in `/proc/net/udp`.
pub(crate) fn socket_inode(socket: &impl AsRawFd) -> io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd()))?;
    link.to_str()
        .and_then(|l| l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{} is not a socket", link.display())))
}

/// Sum of the kernel's receive drops over the sockets with these inodes.
pub(crate) fn udp_drops(inodes: &[u64]) -> io::Result<u64> {
    let mut total = 0;
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => total += drops_in(&text, inodes),
            // A kernel without IPv6 has no udp6 table.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// One table's rows: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref ptr drops`.
fn drops_in(table: &str, inodes: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let columns: Vec<&str> = row.split_whitespace().collect();
            let inode: u64 = columns.get(9)?.parse().ok()?;
            let drops: u64 = columns.get(12)?.parse().ok()?;
            inodes.contains(&inode).then_some(drops)
        })
        .sum()
}

/// `switchboard_turn_listener_receive_drops_total`, over the UDP listeners of every shard.
#[derive(Debug)]
pub struct ListenerDrops {
    inodes: Vec<u64>,
}

impl ListenerDrops {
    pub(crate) fn new(inodes: Vec<u64>) -> Self {
        Self { inodes }
    }
}

impl Collector for ListenerDrops {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Without /proc (another OS, a sandbox) the metric is left out, not reported as 0.
        let Ok(drops) = udp_drops(&self.inodes) else {
            return Ok(());
        };
        let counter = ConstCounter::new(drops);
        let metric = encoder.encode_descriptor(
            "listener_receive_drops",
            "Datagrams the kernel dropped because a UDP listener's receive buffer was full",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::UdpSocket;

    #[test]
    fn rows_of_other_sockets_and_the_header_are_not_counted() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
           1: 0100007F:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
           2: 0100007F:0D97 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 5\n\
           3: 0100007F:0D98 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 100\n";
        assert_eq!(drops_in(table, &[4242, 4343]), 22);
        assert_eq!(drops_in(table, &[]), 0);
        assert_eq!(drops_in("garbage\nmore garbage", &[4242]), 0);
    }

    #[test]
    fn a_full_receive_buffer_shows_as_drops_of_that_socket_only() {
        let full = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        // The kernel raises this to its minimum, a few datagrams' worth.
        full.set_recv_buffer_size(1).unwrap();
        full.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let full: UdpSocket = full.into();
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Loopback delivers within send_to, so the drops are counted when it returns.
        for _ in 0..200 {
            sender
                .send_to(&[0u8; 1000], full.local_addr().unwrap())
                .unwrap();
        }
        let full_inode = socket_inode(&full).unwrap();
        let quiet_inode = socket_inode(&quiet).unwrap();
        assert!(udp_drops(&[full_inode]).unwrap() > 0);
        assert_eq!(udp_drops(&[quiet_inode]).unwrap(), 0);
    }

    #[test]
    fn a_file_that_is_no_socket_is_an_error() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(socket_inode(&file).is_err());
    }
}

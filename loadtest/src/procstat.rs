//! A server's CPU seconds and resident memory from `/proc/PID/stat` and `/proc/PID/status`,
//! and the host's UDP receive-buffer drops from `/proc/net/snmp`.

use std::path::PathBuf;

/// Clock ticks per second of `/proc/PID/stat` times (Linux's USER_HZ, 100 on every
/// architecture the kernel exports to user space).
const USER_HZ: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User + system CPU seconds of all its threads so far.
    pub cpu_s: f64,
    /// The system (kernel) part of `cpu_s`.
    pub kernel_cpu_s: f64,
    pub rss_bytes: u64,
}

/// Reads a process's usage; `None` once it has gone away.
pub fn read(pid: u32) -> Option<Usage> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let (user, kernel) = parse_stat_cpu_split(&stat)?;
    Some(Usage {
        cpu_s: user + kernel,
        kernel_cpu_s: kernel,
        rss_bytes: parse_status_rss(&status)?,
    })
}

/// utime + stime (fields 14 and 15) in seconds. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself, so fields count from the last `)`.
pub fn parse_stat_cpu_s(stat: &str) -> Option<f64> {
    parse_stat_cpu_split(stat).map(|(user, kernel)| user + kernel)
}

/// (utime, stime) in seconds.
fn parse_stat_cpu_split(stat: &str) -> Option<(f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime is field 14, the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime as f64 / USER_HZ, stime as f64 / USER_HZ))
}

/// `VmRSS:  12345 kB` in bytes.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// UDP datagrams the host dropped for a full socket receive buffer so far (all sockets of
/// the machine, `RcvbufErrors` of `/proc/net/snmp`): where UDP loss on loopback happens.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    parse_snmp_udp(
        &std::fs::read_to_string("/proc/net/snmp").ok()?,
        "RcvbufErrors",
    )
}

/// A field of the `Udp:` lines of `/proc/net/snmp` (a header line, then a value line).
pub fn parse_snmp_udp(snmp: &str, field: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_snmp_udp_fields() {
        let snmp = "Tcp: RtoAlgorithm RtoMin\nTcp: 1 200\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 22660400 1216 1184809 19173903 1184808 0\n\
                    UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(parse_snmp_udp(snmp, "RcvbufErrors"), Some(1_184_808));
        assert_eq!(parse_snmp_udp(snmp, "InDatagrams"), Some(22_660_400));
        assert_eq!(parse_snmp_udp(snmp, "Nonsense"), None);
        assert_eq!(parse_snmp_udp("Tcp: x\nTcp: 1\n", "RcvbufErrors"), None);
    }

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 9000 0 12 0 \
                    250 130 0 0 20 0 9 0 1234 123456789 3000 18446744073709551615";
        assert_eq!(parse_stat_cpu_s(stat), Some(3.8));
        let (user, kernel) = parse_stat_cpu_split(stat).unwrap();
        assert!((user + kernel - 3.8).abs() < 1e-9 && kernel > 0.0 && user > kernel);
        assert_eq!(parse_stat_cpu_s("garbage"), None);
    }

    #[test]
    fn parses_status_rss() {
        let status = "Name:\tswitchboard\nVmPeak:\t  99999 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss(status), Some(20480 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let u = read(std::process::id()).expect("own /proc entry");
        assert!(u.rss_bytes > 0);
        assert!(u.cpu_s >= 0.0);
    }
}

//! A real TURN client against the relay: coturn's `turnutils_uclient` allocates with
//! REST API credentials over UDP and TCP and relays to `turnutils_peer` (an echo peer on
//! loopback, which this test's config explicitly allows), with zero loss at a modest
//! rate; the same run with a wrong secret is refused. Never starts coturn's server.
//!
//! uclient runs with its defaults: each client pair allocates an RTP port with EVEN-PORT
//! (R bit) and an RTCP port from another socket with the RESERVATION-TOKEN it got, over
//! two relay shards (the RTCP socket may hash to the other one).
//!
//! The tools come from Debian's `coturn` package (scripts/test.sh installs it). Without
//! them the tests are skipped locally and fail under `CI=true`.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use turn_relay::{PortRange, TurnConfig, TurnMetrics, TurnServer};

const SECRET: &str = "uclient-test-secret";
/// Guards against a hung tool only; no assertion depends on it.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The tool's path, or `None` (skip) when missing outside CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci =
            std::env::var("CI").is_ok_and(|v| matches!(v.as_str(), "true" | "TRUE" | "1" | "yes"));
        assert!(
            !ci,
            "{name} is missing (Debian package coturn); CI=true: nothing may be skipped"
        );
        eprintln!("SKIP: {name} not found (apt-get install coturn)");
    }
    found
}

struct Relay {
    server: Option<TurnServer>,
    registry: Registry,
}

impl Relay {
    fn start(relay_ports: PortRange) -> Self {
        Self::configured(relay_ports, |_| {})
    }

    /// The test's relay, with `tweak` applied to its config last.
    fn configured(relay_ports: PortRange, tweak: impl FnOnce(&mut TurnConfig)) -> Self {
        let mut registry = Registry::default();
        let metrics = TurnMetrics::register(&mut registry);
        let mut config = TurnConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            Some(SECRET.as_bytes().to_vec()),
        );
        config.relay_ports = relay_ports;
        config.allow_peers = vec!["127.0.0.1".parse().unwrap()];
        config.workers = 2;
        tweak(&mut config);
        let server = TurnServer::start(config, metrics).expect("relay starts");
        server.register_kernel_drops(&mut registry);
        Self {
            server: Some(server),
            registry,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().udp_addr
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }

    /// An unlabelled counter's value.
    fn counter(&self, name: &str) -> u64 {
        let metrics = self.metrics();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

/// `turnutils_peer`: echoes every UDP datagram back to its sender.
struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(binary: &PathBuf) -> Self {
        // A free port: bind, read it, release it for the peer.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn turnutils_peer");
        let peer = Self { child, port };
        peer.wait_until_echoing();
        peer
    }

    /// Probes until the peer echoes (bounded; each probe waits for its own answer).
    fn wait_until_echoing(&self) {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 16];
        while Instant::now() < deadline {
            let _ = probe.send_to(b"ping", ("127.0.0.1", self.port));
            if probe.recv_from(&mut buf).is_ok() {
                return;
            }
        }
        panic!("turnutils_peer never echoed on port {}", self.port);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the client to completion (killed past RUN_LIMIT).
fn uclient(binary: &PathBuf, relay: SocketAddr, peer: u16, secret: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(
        [
            "-e",
            "127.0.0.1",
            "-r",
            &peer.to_string(),
            "-u",
            "alice",
            "-W",
            secret,
            "-p",
            &relay.port().to_string(),
            "127.0.0.1",
        ]
        .map(String::from),
    );
    let child = Command::new(binary)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn turnutils_uclient");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.expect("uclient output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("turnutils_uclient did not finish within {RUN_LIMIT:?}");
        }
    }
}

/// `(sent, received, lost)` from uclient's closing report.
fn report(output: &Output) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let number_after = |key: &str| -> u64 {
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no {key:?} in uclient output:\n{text}"));
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad {key:?} line: {line}"))
    };
    (
        number_after("tot_send_msgs="),
        number_after("tot_recv_msgs="),
        number_after("Total lost packets"),
    )
}

/// 4 clients × 100 messages of 200 bytes, 10 ms apart: a modest rate.
const LOAD: [&str; 8] = ["-m", "4", "-n", "100", "-l", "200", "-z", "10"];

fn relays_everything(transport: &[&str], ports: PortRange) {
    relays_everything_with(transport, ports, turn_relay::DEFAULT_COALESCE);
}

/// Relays uclient's load without loss; returns how often the shards waited out their
/// coalescing window.
fn relays_everything_with(transport: &[&str], ports: PortRange, coalesce: Duration) -> u64 {
    let (Some(client), Some(peer_bin)) = (tool("turnutils_uclient"), tool("turnutils_peer")) else {
        return 0;
    };
    let relay = Relay::configured(ports, |c| c.coalesce = coalesce);
    let peer = Peer::start(&peer_bin);
    let mut extra = transport.to_vec();
    extra.extend_from_slice(&LOAD);
    let output = uclient(&client, relay.addr(), peer.port, SECRET, &extra);
    let (sent, received, lost) = report(&output);
    assert!(output.status.success(), "uclient failed: {output:?}");
    assert_eq!(sent, 400, "{output:?}");
    assert_eq!((received, lost), (sent, 0), "{output:?}");
    let metrics = relay.metrics();
    assert!(
        metrics.contains("switchboard_turn_allocations_created_total{transport="),
        "{metrics}"
    );
    // Nothing lost, so nothing overflowed a listener's receive buffer either.
    assert_eq!(
        relay.counter("switchboard_turn_listener_receive_drops_total"),
        0
    );
    relay.counter("switchboard_turn_coalesce_waits_total")
}

#[test]
fn uclient_relays_over_udp_with_channels_without_loss() {
    relays_everything(
        &[],
        PortRange {
            min: 43000,
            max: 43199,
        },
    );
}

/// With the default window the shards wait for more datagrams after busy wakes (hundreds
/// of wakes, each a few microseconds of work against a 200 µs window); with none they never
/// do, and both relay everything.
#[test]
fn coalescing_waits_only_when_on_and_loses_nothing() {
    let on = relays_everything_with(
        &[],
        PortRange {
            min: 44000,
            max: 44199,
        },
        turn_relay::DEFAULT_COALESCE,
    );
    let off = relays_everything_with(
        &[],
        PortRange {
            min: 44200,
            max: 44399,
        },
        Duration::ZERO,
    );
    if tool("turnutils_uclient").is_some() {
        assert!(on > 0, "no coalescing wait with the default window");
        assert_eq!(off, 0, "a zero window waited");
    }
}

#[test]
fn uclient_relays_over_udp_with_send_indications_without_loss() {
    relays_everything(
        &["-s"],
        PortRange {
            min: 43200,
            max: 43399,
        },
    );
}

#[test]
fn uclient_relays_over_tcp_without_loss() {
    relays_everything(
        &["-t"],
        PortRange {
            min: 43400,
            max: 43599,
        },
    );
}

#[test]
fn uclient_relays_over_tls_without_loss() {
    let (Some(client), Some(peer_bin)) = (tool("turnutils_uclient"), tool("turnutils_peer")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let tls = turn_relay::TlsListener {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert,
        key,
    };
    let relay = Relay::configured(
        PortRange {
            min: 43800,
            max: 43999,
        },
        |c| c.tls = Some(tls),
    );
    let tls_addr = relay.server.as_ref().unwrap().tls_addr.unwrap();
    let peer = Peer::start(&peer_bin);
    let mut extra = vec!["-t", "-S"];
    extra.extend_from_slice(&LOAD);
    let output = uclient(&client, tls_addr, peer.port, SECRET, &extra);
    let (sent, received, lost) = report(&output);
    assert!(output.status.success(), "uclient failed: {output:?}");
    assert_eq!((sent, received, lost), (400, 400, 0), "{output:?}");
    let metrics = relay.metrics();
    assert!(
        metrics.contains("switchboard_turn_allocations_created_total{transport=\"tls\"}"),
        "{metrics}"
    );
}

#[test]
fn uclient_with_a_wrong_secret_is_refused() {
    let (Some(client), Some(peer_bin)) = (tool("turnutils_uclient"), tool("turnutils_peer")) else {
        return;
    };
    let relay = Relay::start(PortRange {
        min: 43600,
        max: 43799,
    });
    let peer = Peer::start(&peer_bin);
    for transport in [&[][..], &["-t"][..]] {
        let mut extra = transport.to_vec();
        extra.extend_from_slice(&["-n", "5"]);
        let output = uclient(&client, relay.addr(), peer.port, "not-the-secret", &extra);
        assert!(!output.status.success(), "{output:?}");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(text.contains("Cannot complete Allocation"), "{text}");
    }
    let metrics = relay.metrics();
    assert!(
        metrics.contains("switchboard_turn_auth_failures_total{reason=\"bad_credentials\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("switchboard_turn_allocations_created_total{"),
        "{metrics}"
    );
}

//! The relay alone, for profiling the hot path (perf, callgrind) without the rest of the
//! binary; bench/turn.sh measures the real `switchboard serve --roles turn`.
//!
//!   cargo build --release -p turn-relay --example relay
//!   relay ADDR SECRET [ALLOW_CIDR] [WORKERS]     # runs until killed

use turn_relay::{TurnConfig, TurnMetrics, TurnServer};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(secret)) = (args.next(), args.next()) else {
        eprintln!("usage: relay ADDR SECRET [ALLOW_CIDR] [WORKERS]");
        std::process::exit(2);
    };
    let mut config = TurnConfig::new(
        addr.parse().expect("ADDR: host:port"),
        Some(secret.into_bytes()),
    );
    if let Some(allow) = args.next() {
        config.allow_peers = vec![allow.parse().expect("ALLOW_CIDR")];
    }
    if let Some(workers) = args.next() {
        config.workers = workers.parse().expect("WORKERS");
    }
    // As bench/turn.sh configures the binary: no bandwidth cap, room for many clients.
    config.max_bandwidth = None;
    config.user_quota = 1000;
    let server = TurnServer::start(config, TurnMetrics::default()).expect("relay starts");
    println!("relay ready on {}", server.udp_addr);
    loop {
        std::thread::park();
    }
}

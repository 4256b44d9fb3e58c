//! The command line. Every serve setting can also come from a `SWITCHBOARD_*` environment
//! variable or the TOML config file; the command line wins, then the environment, then
//! the file, then the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `switchboard` alone is `switchboard serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Manage applications: their ids and credentials (QuickBlox's Dashboard).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Manage an application's custom-object classes (QuickBlox's Dashboard).
    Class {
        #[command(subcommand)]
        command: ClassCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClassCommand {
    /// Create a class with typed fields and default record permissions.
    Create {
        /// Application id.
        #[arg(long)]
        app: i64,
        #[arg(long)]
        name: String,
        /// `NAME:TYPE`, repeated; TYPE is integer, float, boolean, string, date, location,
        /// file, or an array of one (`string[]`).
        #[arg(long = "field", value_name = "NAME:TYPE")]
        fields: Vec<String>,
        /// Default read access: open, owner, not_allowed, users:ID,ID or groups:TAG,TAG [default: open].
        #[arg(long, value_name = "ACCESS")]
        read: Option<String>,
        /// Default update access [default: owner].
        #[arg(long, value_name = "ACCESS")]
        update: Option<String>,
        /// Default delete access [default: owner].
        #[arg(long, value_name = "ACCESS")]
        delete: Option<String>,
        /// Whether users may create records: open or not_allowed [default: open].
        #[arg(long, value_name = "ACCESS")]
        create: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add fields to a class or change its default permissions (as PUT /class/NAME.json).
    Update {
        #[arg(long)]
        app: i64,
        #[arg(long)]
        name: String,
        /// A field to add, `NAME:TYPE`, repeated (one already there with its type is fine).
        #[arg(long = "field", value_name = "NAME:TYPE")]
        fields: Vec<String>,
        /// New default read access (as for `create`); unchanged when left out.
        #[arg(long, value_name = "ACCESS")]
        read: Option<String>,
        #[arg(long, value_name = "ACCESS")]
        update: Option<String>,
        #[arg(long, value_name = "ACCESS")]
        delete: Option<String>,
        /// open or not_allowed.
        #[arg(long, value_name = "ACCESS")]
        create: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List an application's classes with their fields.
    List {
        #[arg(long)]
        app: i64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a class, all its records, their `_parent_id` descendants and their files.
    Delete {
        #[arg(long)]
        app: i64,
        #[arg(long)]
        name: String,
        /// Where `serve` keeps uploaded files (as its `--blob-storage`) [default: local].
        #[arg(long, env = "SWITCHBOARD_BLOB_STORAGE", value_name = "SPEC")]
        blob_storage: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the configuration and the database are.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the generated TLS certificate and blobs [default: ./data].
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite` (DATA_DIR/switchboard.db), `sqlite://PATH` or `postgres://USER@HOST/DB` [default: sqlite].
    #[arg(long, env = "SWITCHBOARD_STORE", value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Roles this process plays, comma-separated [default: all of them].
    #[arg(
        long,
        env = "SWITCHBOARD_ROLES",
        value_name = "ROLES",
        value_delimiter = ','
    )]
    pub roles: Option<Vec<crate::roles::Role>>,
    /// Plain-HTTP listener for the REST API, /metrics and /health [default: 127.0.0.1:8080].
    #[arg(long, env = "SWITCHBOARD_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// TLS listener for the REST API (the SDKs only speak https) [default: 127.0.0.1:8443].
    #[arg(long, env = "SWITCHBOARD_HTTPS_ADDR", value_name = "ADDR")]
    pub https_addr: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener [default: a self-signed one in DATA_DIR/tls].
    #[arg(
        long,
        env = "SWITCHBOARD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    #[arg(
        long,
        env = "SWITCHBOARD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Log format [default: human].
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// API URL announced by GET /account_settings.json [default: https://<https-addr>].
    #[arg(long, env = "SWITCHBOARD_PUBLIC_API_URL", value_name = "URL")]
    pub public_api_url: Option<String>,
    /// Where uploaded files go: `local` (DATA_DIR/blobs), `local:PATH` or `s3://BUCKET[/PREFIX]` (AWS_* env) [default: local].
    #[arg(long, env = "SWITCHBOARD_BLOB_STORAGE", value_name = "SPEC")]
    pub blob_storage: Option<String>,
    /// Largest accepted file upload in bytes [default: 104857600].
    #[arg(long, env = "SWITCHBOARD_BLOB_MAX_BYTES", value_name = "BYTES")]
    pub blob_max_bytes: Option<u64>,
    /// XMPP over TCP listener [default: 0.0.0.0:5222].
    #[arg(long, env = "SWITCHBOARD_XMPP_ADDR", value_name = "ADDR")]
    pub xmpp_addr: Option<SocketAddr>,
    /// Refuse XMPP authentication over TCP before STARTTLS.
    #[arg(long, env = "SWITCHBOARD_XMPP_REQUIRE_TLS")]
    pub xmpp_require_tls: bool,
    /// Stanzas per second one XMPP connection may send, sustained; a flood beyond the burst
    /// ends its stream with policy-violation; 0 = no limit [default: 50].
    #[arg(long, env = "SWITCHBOARD_XMPP_STANZA_RATE", value_name = "N")]
    pub xmpp_stanza_rate: Option<u32>,
    /// XMPP domain, announced as the chat endpoint [default: localhost].
    #[arg(long, env = "SWITCHBOARD_XMPP_DOMAIN", value_name = "DOMAIN")]
    pub xmpp_domain: Option<String>,
    /// Opponents one caller may ring in a mesh call (caller + N peers) [default: 3].
    #[arg(long, env = "SWITCHBOARD_CALL_MAX_OPPONENTS", value_name = "N")]
    pub call_max_opponents: Option<usize>,
    /// SFU media (UDP) address of worker 0; worker k uses port + k [default: 0.0.0.0:10000].
    #[arg(long, env = "SWITCHBOARD_SFU_ADDR", value_name = "ADDR")]
    pub sfu_addr: Option<SocketAddr>,
    /// IP announced in the SFU's ICE candidates [default: the bind IP, or 127.0.0.1].
    #[arg(long, env = "SWITCHBOARD_SFU_PUBLIC_IP", value_name = "IP")]
    pub sfu_public_ip: Option<std::net::IpAddr>,
    /// SFU worker threads, each owning whole rooms and one UDP port [default: one per core].
    #[arg(long, env = "SWITCHBOARD_SFU_WORKERS", value_name = "N")]
    pub sfu_workers: Option<usize>,
    /// Publishers per conference room [default: 12].
    #[arg(long, env = "SWITCHBOARD_SFU_MAX_PUBLISHERS", value_name = "N")]
    pub sfu_max_publishers: Option<usize>,
    /// Shared secret of conference join grants [default: random, kept in DATA_DIR/sfu-grant.key].
    #[arg(
        long,
        env = "SWITCHBOARD_SFU_GRANT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub sfu_grant_secret: Option<String>,
    #[command(flatten)]
    pub turn: TurnArgs,
    #[command(flatten)]
    pub push: PushArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an application and print its credentials.
    Create {
        #[arg(long)]
        name: String,
        /// Print `{"application_id","auth_key","auth_secret","account_key","api_key"}`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List applications with their credentials.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete an application and everything it owns (users, sessions).
    Delete {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace the owner's API key (`Authorization: ApiKey <key>` for /class.json); the
    /// old key stops working at once.
    RotateKey {
        id: i64,
        /// Print `{"application_id","api_key"}`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The TURN relay (`turn` role).
#[derive(Debug, Clone, Default, Args)]
pub struct TurnArgs {
    /// TURN/STUN over UDP and TCP [default: 0.0.0.0:3478].
    #[arg(long, env = "SWITCHBOARD_TURN_ADDR", value_name = "ADDR")]
    pub turn_addr: Option<SocketAddr>,
    /// TURN over TLS (turns:), e.g. 0.0.0.0:5349 [default: off].
    #[arg(long, env = "SWITCHBOARD_TURN_TLS_ADDR", value_name = "ADDR")]
    pub turn_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain for --turn-tls-addr [default: the REST API's certificate].
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_TLS_CERT",
        value_name = "FILE",
        requires = "turn_tls_key"
    )]
    pub turn_tls_cert: Option<PathBuf>,
    /// PEM private key for --turn-tls-addr.
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_TLS_KEY",
        value_name = "FILE",
        requires = "turn_tls_cert"
    )]
    pub turn_tls_key: Option<PathBuf>,
    /// UDP port range of relayed addresses [default: 49152-65535].
    #[arg(long, env = "SWITCHBOARD_TURN_RELAY_PORTS", value_name = "MIN-MAX")]
    pub turn_relay_ports: Option<String>,
    /// Address relayed sockets bind to and announce [default: the address the client reached].
    #[arg(long, env = "SWITCHBOARD_TURN_RELAY_IP", value_name = "IP")]
    pub turn_relay_ip: Option<std::net::IpAddr>,
    /// TURN REST API shared secret [default: a random one kept in DATA_DIR/turn-secret].
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,
    /// TURN realm [default: switchboard].
    #[arg(long, env = "SWITCHBOARD_TURN_REALM", value_name = "REALM")]
    pub turn_realm: Option<String>,
    /// Host announced in the ICE server URLs [default: the TURN listener, 127.0.0.1 if wildcard].
    #[arg(long, env = "SWITCHBOARD_TURN_PUBLIC_HOST", value_name = "HOST")]
    pub turn_public_host: Option<String>,
    /// Peer CIDRs allowed despite the default deny list (loopback, private, link-local...).
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_ALLOW_PEERS",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub turn_allow_peers: Option<Vec<String>>,
    /// Peer CIDRs always refused.
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_DENY_PEERS",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub turn_deny_peers: Option<Vec<String>>,
    /// Allocations one user may hold at once [default: 10].
    #[arg(long, env = "SWITCHBOARD_TURN_USER_QUOTA", value_name = "N")]
    pub turn_user_quota: Option<u32>,
    /// Allocations the relay holds at once [default: 10000].
    #[arg(long, env = "SWITCHBOARD_TURN_TOTAL_QUOTA", value_name = "N")]
    pub turn_total_quota: Option<u32>,
    /// Per-allocation relay budget in bytes/s, 0 for unlimited [default: 1000000].
    #[arg(long, env = "SWITCHBOARD_TURN_MAX_BANDWIDTH", value_name = "BYTES")]
    pub turn_max_bandwidth: Option<u64>,
    /// UDP listener sockets (SO_REUSEPORT) and threads [default: cores, at most 8].
    #[arg(long, env = "SWITCHBOARD_TURN_WORKERS", value_name = "N")]
    pub turn_workers: Option<usize>,
    /// Receive coalescing window in microseconds, at most 1000: a busy relay reads its
    /// sockets at most once per window, trading at most this much delay per packet for
    /// larger batches; 0 turns it off [default: 200].
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_COALESCE_US",
        value_name = "MICROSECONDS"
    )]
    pub turn_coalesce_us: Option<u64>,
}

/// Push providers: FCM HTTP v1 (`gcm` subscriptions) and APNs (`apns`, `apns_voip`).
#[derive(Debug, Clone, Default, Args)]
pub struct PushArgs {
    /// Google service-account JSON key file of the Firebase project [default: no FCM].
    #[arg(
        long,
        env = "SWITCHBOARD_PUSH_FCM_SERVICE_ACCOUNT",
        value_name = "FILE"
    )]
    pub push_fcm_service_account: Option<PathBuf>,
    /// FCM API base URL, for a proxy or a test stand-in [default: https://fcm.googleapis.com].
    #[arg(long, env = "SWITCHBOARD_PUSH_FCM_ENDPOINT", value_name = "URL")]
    pub push_fcm_endpoint: Option<String>,
    /// APNs token-auth key (.p8 file from the Apple developer account) [default: no APNs].
    #[arg(long, env = "SWITCHBOARD_PUSH_APNS_KEY", value_name = "FILE")]
    pub push_apns_key: Option<PathBuf>,
    /// The APNs key's 10-character key id.
    #[arg(long, env = "SWITCHBOARD_PUSH_APNS_KEY_ID", value_name = "ID")]
    pub push_apns_key_id: Option<String>,
    /// The Apple developer team id.
    #[arg(long, env = "SWITCHBOARD_PUSH_APNS_TEAM_ID", value_name = "ID")]
    pub push_apns_team_id: Option<String>,
    /// apns-topic (the app's bundle id) for subscriptions without a bundle_identifier.
    #[arg(long, env = "SWITCHBOARD_PUSH_APNS_TOPIC", value_name = "BUNDLE_ID")]
    pub push_apns_topic: Option<String>,
    /// APNs base URL for both environments, for a proxy or a test stand-in
    /// [default: https://api.push.apple.com, https://api.sandbox.push.apple.com for development].
    #[arg(long, env = "SWITCHBOARD_PUSH_APNS_ENDPOINT", value_name = "URL")]
    pub push_apns_endpoint: Option<String>,
    /// PEM file of CA certificates the push clients trust besides the system's (a private CA
    /// in front of the providers).
    #[arg(long, env = "SWITCHBOARD_PUSH_CA_FILE", value_name = "FILE")]
    pub push_ca_file: Option<PathBuf>,
}

//! Resolved settings: defaults, overridden by the TOML file, the environment and the flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::cli::{LogFormat, ServeArgs, StoreArgs};
use crate::roles::Role;

/// The TOML file; every key is optional and documented in README.md.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub roles: Option<Vec<Role>>,
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub public_api_url: Option<String>,
    pub blob_storage: Option<String>,
    pub blob_max_bytes: Option<u64>,
    pub blob_upload_ttl_secs: Option<u64>,
    pub xmpp_domain: Option<String>,
    pub xmpp_addr: Option<SocketAddr>,
    pub xmpp_require_tls: Option<bool>,
    pub xmpp_stanza_rate: Option<u32>,
    pub call_max_opponents: Option<usize>,
    pub sfu_addr: Option<SocketAddr>,
    pub sfu_public_ip: Option<IpAddr>,
    pub sfu_workers: Option<usize>,
    pub sfu_max_publishers: Option<usize>,
    pub sfu_grant_secret: Option<String>,
    pub sfu_session_timeout_secs: Option<u64>,
    pub session_ttl_secs: Option<u64>,
    pub session_cache_ttl_secs: Option<u64>,
    pub signature_max_skew_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub turn_addr: Option<SocketAddr>,
    pub turn_tls_addr: Option<SocketAddr>,
    pub turn_tls_cert: Option<PathBuf>,
    pub turn_tls_key: Option<PathBuf>,
    pub turn_relay_ports: Option<String>,
    pub turn_relay_ip: Option<IpAddr>,
    pub turn_secret: Option<String>,
    pub turn_realm: Option<String>,
    pub turn_public_host: Option<String>,
    pub turn_allow_peers: Option<Vec<String>>,
    pub turn_deny_peers: Option<Vec<String>>,
    pub turn_user_quota: Option<u32>,
    pub turn_total_quota: Option<u32>,
    pub turn_max_bandwidth: Option<u64>,
    pub turn_workers: Option<usize>,
    pub turn_coalesce_us: Option<u64>,
    pub turn_credential_ttl_secs: Option<u64>,
    /// Static TURN users, `"name:password"` each (REST credentials need none).
    pub turn_users: Option<Vec<String>>,
    pub push_fcm_service_account: Option<PathBuf>,
    pub push_fcm_endpoint: Option<String>,
    pub push_apns_key: Option<PathBuf>,
    pub push_apns_key_id: Option<String>,
    pub push_apns_team_id: Option<String>,
    pub push_apns_topic: Option<String>,
    pub push_apns_endpoint: Option<String>,
    pub push_ca_file: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// Where the data lives; shared by `serve` and the `app` commands.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub store: String,
}

impl StoreSettings {
    pub fn resolve(args: &StoreArgs, file: &FileConfig) -> Self {
        Self {
            data_dir: args
                .data_dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from("./data")),
            store: args
                .store
                .clone()
                .or_else(|| file.store.clone())
                .unwrap_or_else(|| "sqlite".into()),
        }
    }

    /// The store spec with any password hidden, for logs and the banner.
    pub fn display_store(&self) -> String {
        if self.store == "sqlite" {
            return self.data_dir.join("switchboard.db").display().to_string();
        }
        match (self.store.find("://"), self.store.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &self.store[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                format!(
                    "{}{}@{}",
                    &self.store[..scheme + 3],
                    user,
                    &self.store[at + 1..]
                )
            }
            _ => self.store.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreSettings,
    pub roles: Vec<Role>,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub log_format: LogFormat,
    pub public_api_url: Option<String>,
    /// Blob storage spec (`local`, `local:PATH`, `s3://BUCKET[/PREFIX]`) and limits.
    pub blob_storage: String,
    pub blob_max_bytes: u64,
    pub blob_upload_ttl: Duration,
    pub xmpp_domain: String,
    pub xmpp_addr: SocketAddr,
    /// Refuse XMPP authentication over TCP until the client has done STARTTLS.
    pub xmpp_require_tls: bool,
    /// Sustained stanzas per second per XMPP connection (burst: four seconds' worth).
    pub xmpp_stanza_rate: u32,
    /// Opponents one caller may ring in a mesh call (QuickBlox: 3).
    pub call_max_opponents: usize,
    pub sfu: SfuSettings,
    pub session_ttl: Duration,
    /// How long a resolved `QB-Token` is served from memory (0: always ask the store).
    pub session_cache_ttl: Duration,
    pub signature_max_skew: Duration,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    pub turn: TurnSettings,
    pub push: PushSettings,
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = FileConfig::load(args.store.config.as_deref())?;
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert.clone()),
            args.tls_key.clone().or(file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key must be given together"),
        };
        let settings = Self {
            store: StoreSettings::resolve(&args.store, &file),
            roles: args
                .roles
                .clone()
                .or(file.roles.clone())
                .unwrap_or_else(|| Role::ALL.to_vec()),
            http_addr: args.http_addr.or(file.http_addr).unwrap_or(local(8080)),
            https_addr: args.https_addr.or(file.https_addr).unwrap_or(local(8443)),
            tls,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            public_api_url: args.public_api_url.clone().or(file.public_api_url.clone()),
            blob_storage: args
                .blob_storage
                .clone()
                .or(file.blob_storage.clone())
                .unwrap_or_else(|| "local".into()),
            blob_max_bytes: args
                .blob_max_bytes
                .or(file.blob_max_bytes)
                .unwrap_or(100 * 1024 * 1024),
            blob_upload_ttl: Duration::from_secs(file.blob_upload_ttl_secs.unwrap_or(3600)),
            xmpp_domain: args
                .xmpp_domain
                .clone()
                .or(file.xmpp_domain.clone())
                .unwrap_or_else(|| "localhost".into()),
            xmpp_addr: args
                .xmpp_addr
                .or(file.xmpp_addr)
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5222)),
            sfu: SfuSettings::resolve(args, &file),
            xmpp_require_tls: args.xmpp_require_tls || file.xmpp_require_tls.unwrap_or(false),
            xmpp_stanza_rate: args
                .xmpp_stanza_rate
                .or(file.xmpp_stanza_rate)
                .unwrap_or(50),
            call_max_opponents: args
                .call_max_opponents
                .or(file.call_max_opponents)
                .unwrap_or(3),
            session_ttl: Duration::from_secs(file.session_ttl_secs.unwrap_or(2 * 3600)),
            session_cache_ttl: Duration::from_secs(file.session_cache_ttl_secs.unwrap_or(5)),
            signature_max_skew: Duration::from_secs(file.signature_max_skew_secs.unwrap_or(3600)),
            shutdown_grace: Duration::from_secs(file.shutdown_grace_secs.unwrap_or(30)),
            turn: TurnSettings::resolve(&args.turn, &file)?,
            push: PushSettings::resolve(&args.push, &file)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.has_role(Role::Sfu) {
            self.sfu.config.validate()?;
            anyhow::ensure!(
                self.sfu.grant_secret.as_ref().is_none_or(|s| s.len() >= 16),
                "sfu_grant_secret must be at least 16 characters"
            );
        }
        anyhow::ensure!(!self.roles.is_empty(), "roles must name at least one role");
        // Every peer of a mesh sends its media to every other: beyond a handful, use the SFU.
        anyhow::ensure!(
            (1..=15).contains(&self.call_max_opponents),
            "call_max_opponents must be between 1 and 15, got {}",
            self.call_max_opponents
        );
        anyhow::ensure!(self.blob_max_bytes > 0, "blob_max_bytes must be positive");
        anyhow::ensure!(
            !self.blob_upload_ttl.is_zero(),
            "blob_upload_ttl_secs must be positive"
        );
        anyhow::ensure!(
            !self.session_ttl.is_zero(),
            "session_ttl_secs must be positive"
        );
        anyhow::ensure!(
            self.session_cache_ttl < self.session_ttl,
            "session_cache_ttl_secs must be shorter than session_ttl_secs"
        );
        anyhow::ensure!(
            !self.xmpp_domain.is_empty() && !self.xmpp_domain.contains(['/', ':', '@', ' ']),
            "xmpp_domain must be a bare host name, got {:?}",
            self.xmpp_domain
        );
        if let Some(url) = &self.public_api_url {
            anyhow::ensure!(
                url.starts_with("https://") || url.starts_with("http://"),
                "public_api_url must start with https:// or http://, got {url:?}"
            );
        }
        Ok(())
    }
}

/// The SFU's settings (role `sfu`).
#[derive(Debug, Clone)]
pub struct SfuSettings {
    pub config: sfu::config::SfuConfig,
    /// `None`: a random secret kept in the data dir (see `roles::sfu::grant_secret`).
    pub grant_secret: Option<String>,
}

impl SfuSettings {
    fn resolve(args: &ServeArgs, file: &FileConfig) -> Self {
        let bind = args
            .sfu_addr
            .or(file.sfu_addr)
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 10000));
        let mut config = sfu::config::SfuConfig::local(bind);
        if let Some(ip) = args.sfu_public_ip.or(file.sfu_public_ip) {
            config.public_ip = ip;
        }
        if let Some(n) = args.sfu_workers.or(file.sfu_workers) {
            config.workers = n;
        }
        if let Some(n) = args.sfu_max_publishers.or(file.sfu_max_publishers) {
            config.max_publishers = n;
        }
        if let Some(s) = file.sfu_session_timeout_secs {
            config.session_timeout = Duration::from_secs(s);
        }
        Self {
            config,
            grant_secret: args
                .sfu_grant_secret
                .clone()
                .or(file.sfu_grant_secret.clone()),
        }
    }
}

/// The TURN relay's settings (the `turn` role, and the ICE servers the api role announces).
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    /// Certificate and key for `tls_addr`; `None` uses the REST API's.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub relay_ports: turn_relay::PortRange,
    pub relay_ip: Option<IpAddr>,
    /// `None`: a random secret persisted in DATA_DIR/turn-secret.
    pub secret: Option<String>,
    pub realm: String,
    pub public_host: Option<String>,
    pub allow_peers: Vec<turn_relay::core::policy::Cidr>,
    pub deny_peers: Vec<turn_relay::core::policy::Cidr>,
    pub user_quota: u32,
    pub total_quota: u32,
    pub max_bandwidth: Option<u64>,
    pub workers: Option<usize>,
    /// Receive coalescing window (`turn_relay::TurnConfig::coalesce`).
    pub coalesce: Duration,
    /// Lifetime of minted TURN credentials: they must outlive a call (a Refresh with
    /// expired credentials fails), so a day, as coturn's REST examples use.
    pub credential_ttl: Duration,
    pub static_users: std::collections::HashMap<String, String>,
}

impl TurnSettings {
    fn resolve(args: &crate::cli::TurnArgs, file: &FileConfig) -> anyhow::Result<Self> {
        let cidrs = |list: Option<Vec<String>>, key: &str| -> anyhow::Result<Vec<_>> {
            list.unwrap_or_default()
                .iter()
                .filter(|c| !c.trim().is_empty())
                .map(|c| c.parse().map_err(|e: String| anyhow::anyhow!("{key}: {e}")))
                .collect()
        };
        let tls = match (
            args.turn_tls_cert.clone().or(file.turn_tls_cert.clone()),
            args.turn_tls_key.clone().or(file.turn_tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("turn_tls_cert and turn_tls_key must be given together"),
        };
        let relay_ports = match args
            .turn_relay_ports
            .clone()
            .or(file.turn_relay_ports.clone())
        {
            Some(r) => r
                .parse()
                .map_err(|e: String| anyhow::anyhow!("turn_relay_ports: {e}"))?,
            None => turn_relay::PortRange {
                min: 49152,
                max: 65535,
            },
        };
        let mut static_users = std::collections::HashMap::new();
        for entry in file.turn_users.clone().unwrap_or_default() {
            let (name, password) = entry
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("turn_users entries are \"name:password\""))?;
            static_users.insert(name.to_string(), password.to_string());
        }
        let max_bandwidth = args
            .turn_max_bandwidth
            .or(file.turn_max_bandwidth)
            .unwrap_or(1_000_000);
        Ok(Self {
            addr: args
                .turn_addr
                .or(file.turn_addr)
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3478)),
            tls_addr: args.turn_tls_addr.or(file.turn_tls_addr),
            tls,
            relay_ports,
            relay_ip: args.turn_relay_ip.or(file.turn_relay_ip),
            secret: args.turn_secret.clone().or(file.turn_secret.clone()),
            realm: args
                .turn_realm
                .clone()
                .or(file.turn_realm.clone())
                .unwrap_or_else(|| "switchboard".into()),
            public_host: args
                .turn_public_host
                .clone()
                .or(file.turn_public_host.clone()),
            allow_peers: cidrs(
                args.turn_allow_peers
                    .clone()
                    .or(file.turn_allow_peers.clone()),
                "turn_allow_peers",
            )?,
            deny_peers: cidrs(
                args.turn_deny_peers
                    .clone()
                    .or(file.turn_deny_peers.clone()),
                "turn_deny_peers",
            )?,
            user_quota: args.turn_user_quota.or(file.turn_user_quota).unwrap_or(10),
            total_quota: args
                .turn_total_quota
                .or(file.turn_total_quota)
                .unwrap_or(10_000),
            max_bandwidth: (max_bandwidth > 0).then_some(max_bandwidth),
            workers: args.turn_workers.or(file.turn_workers),
            coalesce: args
                .turn_coalesce_us
                .or(file.turn_coalesce_us)
                .map_or(turn_relay::DEFAULT_COALESCE, Duration::from_micros),
            credential_ttl: Duration::from_secs(file.turn_credential_ttl_secs.unwrap_or(86_400)),
            static_users,
        })
    }
}

/// The push providers' settings; a provider is configured by all of its keys or none.
#[derive(Debug, Clone, Default)]
pub struct PushSettings {
    /// FCM: the service-account JSON key file and an optional API base URL.
    pub fcm: Option<(PathBuf, Option<String>)>,
    pub apns: Option<ApnsSettings>,
    /// Extra CA certificates (PEM) the provider clients trust.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ApnsSettings {
    pub key: PathBuf,
    pub key_id: String,
    pub team_id: String,
    pub topic: Option<String>,
    pub endpoint: Option<String>,
}

impl PushSettings {
    fn resolve(args: &crate::cli::PushArgs, file: &FileConfig) -> anyhow::Result<Self> {
        let pick = |arg: &Option<String>, file: &Option<String>| {
            arg.clone()
                .or(file.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let fcm_account = args
            .push_fcm_service_account
            .clone()
            .or(file.push_fcm_service_account.clone());
        let fcm_endpoint = pick(&args.push_fcm_endpoint, &file.push_fcm_endpoint);
        let fcm = match (fcm_account, fcm_endpoint) {
            (Some(account), endpoint) => {
                Some((account, checked_url(endpoint, "push_fcm_endpoint")?))
            }
            (None, Some(_)) => anyhow::bail!("push_fcm_endpoint needs push_fcm_service_account"),
            (None, None) => None,
        };
        let key = args.push_apns_key.clone().or(file.push_apns_key.clone());
        let key_id = pick(&args.push_apns_key_id, &file.push_apns_key_id);
        let team_id = pick(&args.push_apns_team_id, &file.push_apns_team_id);
        let topic = pick(&args.push_apns_topic, &file.push_apns_topic);
        let endpoint = pick(&args.push_apns_endpoint, &file.push_apns_endpoint);
        let apns = match (key, key_id, team_id) {
            (Some(key), Some(key_id), Some(team_id)) => Some(ApnsSettings {
                key,
                key_id,
                team_id,
                topic,
                endpoint: checked_url(endpoint, "push_apns_endpoint")?,
            }),
            (None, None, None) => {
                anyhow::ensure!(
                    topic.is_none() && endpoint.is_none(),
                    "push_apns_topic and push_apns_endpoint need push_apns_key, push_apns_key_id and push_apns_team_id"
                );
                None
            }
            _ => anyhow::bail!(
                "APNs needs push_apns_key, push_apns_key_id and push_apns_team_id together"
            ),
        };
        Ok(Self {
            fcm,
            apns,
            ca_file: args.push_ca_file.clone().or(file.push_ca_file.clone()),
        })
    }
}

fn checked_url(url: Option<String>, key: &str) -> anyhow::Result<Option<String>> {
    if let Some(url) = &url {
        anyhow::ensure!(
            url.starts_with("https://") || url.starts_with("http://"),
            "{key} must start with https:// or http://, got {url:?}"
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../deploy/switchboard.example.toml");

    /// The file's keys, as serde names them when it refuses an unknown one.
    fn file_keys() -> Vec<String> {
        let err = toml::from_str::<FileConfig>("no_such_key = 1")
            .unwrap_err()
            .to_string();
        let expected = err.split("expected one of").nth(1).expect(&err);
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// The example with its commented-out `# key = value` lines turned on.
    fn example_with_every_line_on() -> String {
        EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_example_file_shows_every_key() {
        let keys = file_keys();
        // The first and last fields: the list was read whole.
        assert!(
            keys.iter().any(|k| k == "data_dir") && keys.iter().any(|k| k == "push_ca_file"),
            "{keys:?}"
        );
        let shown = example_with_every_line_on();
        for key in keys {
            assert!(
                shown.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "deploy/switchboard.example.toml does not show {key}"
            );
        }
    }

    #[test]
    fn the_example_file_parses_with_every_line_on() {
        toml::from_str::<FileConfig>(EXAMPLE).expect("the example as shipped");
        let file: FileConfig =
            toml::from_str(&example_with_every_line_on()).expect("every example line on");
        let turn = TurnSettings::resolve(&crate::cli::TurnArgs::default(), &file)
            .expect("the example's TURN values resolve");
        assert_eq!(turn.coalesce, turn_relay::DEFAULT_COALESCE);
        assert_eq!(turn.allow_peers.len(), 1);
    }
}

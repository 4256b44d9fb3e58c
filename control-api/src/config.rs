//! Tunables of the control plane, validated by the binary at startup.

use std::time::Duration;

/// Settings the domain services need. Defaults follow QuickBlox's documented behaviour.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Sessions expire this long after their last request (QuickBlox: 2 hours, sliding).
    pub session_ttl: Duration,
    /// How long a resolved `QB-Token` (and, for `POST /session.json`, an application) is
    /// answered from memory without asking the store (zero: always ask). Sessions changed
    /// by this process are dropped from memory at once; one destroyed by another node
    /// sharing the store stays usable here this long.
    /// Five seconds: most requests of a busy client skip the store, and a logout elsewhere
    /// takes effect about as fast as a client notices.
    pub session_cache_ttl: Duration,
    /// A `POST /session.json` whose `timestamp` is further than this from our clock is
    /// refused, which bounds how long a captured signed request can be replayed.
    pub signature_max_skew: Duration,
    /// `api_endpoint` answered by `GET /account_settings.json` (scheme, host and port).
    pub public_api_url: String,
    /// `chat_endpoint` answered by `GET /account_settings.json`: the XMPP domain.
    pub chat_endpoint: String,
    /// Stanzas kept per offline user; beyond it the oldest are dropped (arbitrary: a
    /// long weekend of a busy group chat, a few hundred KiB per user).
    pub chat_offline_cap: usize,
    /// The TURN relay announced by `GET /calls/ice_servers.json`; `None` answers 404.
    pub ice: Option<crate::domain::ice::IceConfig>,
    pub content: ContentConfig,
    /// The SFU that `POST /calls/conference/token.json` admits to; `None` answers 503.
    pub conference: Option<crate::domain::conference::ConferenceConfig>,
}

/// Content (blob) limits.
#[derive(Debug, Clone)]
pub struct ContentConfig {
    /// Largest accepted upload; beyond it the upload is refused with 413 (arbitrary:
    /// QuickBlox's own limit for a file, enough for a chat video).
    pub max_blob_bytes: u64,
    /// How long the write grant of a new blob stays valid (S3 policies: one hour).
    pub upload_ttl: Duration,
}

impl Default for ContentConfig {
    fn default() -> Self {
        Self {
            max_blob_bytes: 100 * 1024 * 1024,
            upload_ttl: Duration::from_secs(3600),
        }
    }
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(2 * 3600),
            session_cache_ttl: Duration::from_secs(5),
            signature_max_skew: Duration::from_secs(3600),
            public_api_url: "https://127.0.0.1:8443".into(),
            chat_endpoint: "localhost".into(),
            chat_offline_cap: 1000,
            ice: None,
            content: ContentConfig::default(),
            conference: None,
        }
    }
}

//! Limits of the XMPP server.

/// Defaults assume chat traffic: stanzas of a few KiB with attachments as links.
#[derive(Clone)]
pub struct XmppConfig {
    /// STARTTLS on the TCP listener with this certificate; `None` offers no TLS.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Refuse authentication on TCP until STARTTLS (only meaningful with `tls`).
    pub require_tls: bool,
    /// Largest stanza accepted; a bigger one ends the stream with `policy-violation`.
    /// 64 KiB fits any QuickBlox message with its extraParams many times over.
    pub max_stanza_bytes: usize,
    /// Stanzas queued for one connection before further ones are dropped (slow reader).
    pub outbound_queue: usize,
    /// Sustained stanzas per second one connection may send; beyond the burst the stream
    /// ends with `policy-violation`. Far above a person typing, below a flood.
    pub stanza_rate: u32,
    pub stanza_burst: u32,
    /// Mesh call limits (opponents per call, live calls, ring timeout).
    pub calls: crate::core::calls::table::CallLimits,
    /// How long a resumable (XEP-0198) session outlives its connection; a phone switching
    /// networks comes back well within it.
    pub resume_window: std::time::Duration,
}

impl std::fmt::Debug for XmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConfig")
            .field("tls", &self.tls.is_some())
            .field("require_tls", &self.require_tls)
            .field("max_stanza_bytes", &self.max_stanza_bytes)
            .field("outbound_queue", &self.outbound_queue)
            .field("stanza_rate", &self.stanza_rate)
            .field("stanza_burst", &self.stanza_burst)
            .field("calls", &self.calls)
            .field("resume_window", &self.resume_window)
            .finish()
    }
}

impl Default for XmppConfig {
    fn default() -> Self {
        Self {
            tls: None,
            require_tls: false,
            max_stanza_bytes: 64 * 1024,
            outbound_queue: 1024,
            stanza_rate: 50,
            stanza_burst: 200,
            calls: Default::default(),
            resume_window: std::time::Duration::from_secs(300),
        }
    }
}

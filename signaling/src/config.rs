//! Limits of the XMPP server.

/// Defaults assume chat traffic: stanzas of a few KiB with attachments as links.
#[derive(Debug, Clone)]
pub struct XmppConfig {
    /// Largest stanza accepted; a bigger one ends the stream with `policy-violation`.
    /// 64 KiB fits any QuickBlox message with its extraParams many times over.
    pub max_stanza_bytes: usize,
    /// Stanzas queued for one connection before further ones are dropped (slow reader).
    pub outbound_queue: usize,
}

impl Default for XmppConfig {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 64 * 1024,
            outbound_queue: 1024,
        }
    }
}

//! What every connection of the XMPP server shares.

use std::sync::Arc;

use control_api::ControlPlane;

use super::calls::Calls;
use super::resume::ResumeTable;
use super::router::Router;
use crate::config::XmppConfig;
use crate::metrics::XmppMetrics;

pub struct XmppContext {
    pub control: ControlPlane,
    pub router: Arc<Router>,
    /// The XMPP domain: JIDs are `{user}-{app}@domain`, rooms live at `muc.domain`.
    pub domain: String,
    pub config: XmppConfig,
    pub metrics: XmppMetrics,
    /// Mesh call tracking (QuickBlox WebRTC signaling).
    pub calls: Calls,
    /// Sessions waiting for XEP-0198 resumption.
    pub resume: ResumeTable,
}

//! The sender the control plane uses: each channel to its provider's client.

use async_trait::async_trait;

use super::{ApnsSender, FcmSender};
use crate::domain::push::{Channel, PushMessage, PushOutcome, PushSender};

/// Routes `gcm` to FCM and `apns`/`apns_voip` to APNs; a channel whose provider is not
/// configured fails (and is counted) without a request.
#[derive(Default)]
pub struct ProviderSender {
    fcm: Option<FcmSender>,
    apns: Option<ApnsSender>,
}

impl ProviderSender {
    pub fn new(fcm: Option<FcmSender>, apns: Option<ApnsSender>) -> Self {
        Self { fcm, apns }
    }

    /// `fcm (project X), apns (team T, key K)` or `none configured ...`, for the banner.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.fcm.as_ref().map(FcmSender::describe),
            self.apns.as_ref().map(ApnsSender::describe),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "none configured (pushes are counted as failed)".into()
        } else {
            parts.join(", ")
        }
    }
}

#[async_trait]
impl PushSender for ProviderSender {
    async fn send(&self, message: &PushMessage) -> PushOutcome {
        let sender: Option<&dyn PushSender> = match message.channel {
            Channel::Gcm => self.fcm.as_ref().map(|s| s as &dyn PushSender),
            Channel::Apns | Channel::ApnsVoip => self.apns.as_ref().map(|s| s as &dyn PushSender),
        };
        match sender {
            Some(sender) => sender.send(message).await,
            None => PushOutcome::Failed(format!(
                "no {} provider configured",
                message.channel.provider()
            )),
        }
    }
}

/// The provider clients' common HTTP setup: rustls with the system roots, plus
/// `extra_roots` (a private CA in front of the providers, or a test's stand-in).
pub(crate) fn client_builder(extra_roots: &[reqwest::Certificate]) -> reqwest::ClientBuilder {
    extra_roots
        .iter()
        .fold(reqwest::Client::builder(), |builder, root| {
            builder.add_root_certificate(root.clone())
        })
}

/// Reads a PEM file of CA certificates for `extra_roots`.
pub fn load_roots(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("reading CA file {}: {e}", path.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("parsing CA file {}: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    Ok(roots)
}

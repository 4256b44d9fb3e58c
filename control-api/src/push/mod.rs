//! Provider clients behind [`PushSender`](crate::domain::push::PushSender): FCM HTTP v1
//! (`gcm`), the APNs provider API over HTTP/2 (`apns`, `apns_voip`), and the
//! [`ProviderSender`] that routes each channel to its client.

mod apns;
mod fcm;
mod providers;

pub use apns::{ApnsConfig, ApnsSender, PushType, DEVELOPMENT_ENDPOINT, PRODUCTION_ENDPOINT};
pub use fcm::{FcmConfig, FcmSender, ServiceAccount};
pub use providers::{load_roots, ProviderSender};

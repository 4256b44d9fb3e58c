//! Provider clients behind [`PushSender`](crate::domain::push::PushSender): FCM HTTP v1.
//! (APNs over HTTP/2 with token auth is the next one; see CONTENT_NOTES.md.)

mod fcm;

pub use fcm::{FcmConfig, FcmSender, ServiceAccount};

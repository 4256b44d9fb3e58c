//! Delivery through providers behind [`PushSender`], with retries.

use std::time::Duration;

use async_trait::async_trait;

use super::model::{PushMessage, PushOutcome};

#[async_trait]
pub trait PushSender: Send + Sync + 'static {
    /// One attempt to deliver `message`.
    async fn send(&self, message: &PushMessage) -> PushOutcome;
}

/// The sender of a control plane configured with no provider: every push fails (and is
/// counted), nothing is sent.
pub struct NoPushSender;

#[async_trait]
impl PushSender for NoPushSender {
    async fn send(&self, message: &PushMessage) -> PushOutcome {
        PushOutcome::Failed(format!(
            "no {} provider configured",
            message.channel.provider()
        ))
    }
}

/// Attempts per message: the first and up to three retries.
pub const MAX_ATTEMPTS: u32 = 4;
/// First retry delay, doubled each time (APNs and FCM both ask for exponential backoff).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// A `Retry-After` longer than this is not waited for: the attempt counts as failed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Sends with retries on [`PushOutcome::Retry`], backing off exponentially (or as the
/// provider asked); returns the last outcome and the attempts made.
pub async fn send_with_retries(
    sender: &dyn PushSender,
    message: &PushMessage,
) -> (PushOutcome, u32) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        let outcome = sender.send(message).await;
        let PushOutcome::Retry(after) = outcome else {
            return (outcome, attempt);
        };
        if attempt == MAX_ATTEMPTS {
            return (PushOutcome::Retry(after), attempt);
        }
        let wait = after.unwrap_or(backoff);
        if wait > MAX_BACKOFF {
            return (PushOutcome::Retry(after), attempt);
        }
        tokio::time::sleep(wait).await;
        backoff *= 2;
    }
    unreachable!("the loop returns on its last attempt")
}

//! The offline queue: stanzas for a user with no online resource, delivered and removed at
//! their next login.

use time::OffsetDateTime;

use crate::domain::error::DomainError;
use crate::domain::model::{AppId, UserId};
use crate::domain::ControlPlane;

impl ControlPlane {
    /// Queues a stanza for `user`; beyond the configured cap (`chat_offline_cap`) the oldest
    /// are dropped.
    pub async fn queue_offline(
        &self,
        app: AppId,
        user: UserId,
        stanza_xml: String,
    ) -> Result<(), DomainError> {
        let cap = self.config.chat_offline_cap;
        let dropped = self
            .chat
            .push_offline(app, user, &stanza_xml, self.now(), cap)
            .await?;
        if dropped > 0 {
            tracing::debug!(%app, %user, dropped, "offline queue full: oldest stanzas dropped");
        }
        Ok(())
    }

    /// Removes and returns `user`'s queued stanzas, oldest first, with when each was stored
    /// (for the `<delay stamp>` of XEP-0203).
    pub async fn take_offline(
        &self,
        app: AppId,
        user: UserId,
    ) -> Result<Vec<(String, OffsetDateTime)>, DomainError> {
        Ok(self.chat.take_offline(app, user).await?)
    }
}

//! The push persistence boundary; `crate::store` implements it on the same database.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::model::{PushEvent, Subscription};
use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreResult;

#[async_trait]
pub trait PushStore: Send + Sync + 'static {
    /// Inserts or replaces the subscription of the same user, device and channel.
    async fn upsert_subscription(&self, s: &Subscription) -> StoreResult<Subscription>;
    async fn subscriptions_of(
        &self,
        app: AppId,
        users: &[UserId],
    ) -> StoreResult<Vec<Subscription>>;
    async fn delete_subscription(&self, app: AppId, user: UserId, id: i64) -> StoreResult<bool>;
    /// Removes a subscription whose token the provider reported dead.
    async fn delete_subscription_by_id(&self, app: AppId, id: i64) -> StoreResult<()>;
    async fn count_subscriptions(&self) -> StoreResult<i64>;
    /// Users of `app` having any / all of the tags, less those having an excluded one.
    async fn users_by_tags(
        &self,
        app: AppId,
        any: &[String],
        all: &[String],
        exclude: &[String],
    ) -> StoreResult<Vec<UserId>>;

    async fn insert_event(&self, e: &PushEvent) -> StoreResult<PushEvent>;
    async fn update_event_counts(&self, e: &PushEvent) -> StoreResult<()>;
    async fn event(&self, app: AppId, id: i64) -> StoreResult<Option<PushEvent>>;
    async fn list_events(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<PushEvent>, i64)>;
    async fn delete_event(&self, app: AppId, user: UserId, id: i64) -> StoreResult<bool>;
    /// Events of every application whose next delivery is at or before `now`, earliest
    /// first.
    async fn due_events(&self, now: OffsetDateTime, limit: i64) -> StoreResult<Vec<PushEvent>>;
    /// Takes the delivery due at `due` for this node: moves the event's next delivery to
    /// `next` and counts the occurrence, only if no other node did so first.
    async fn claim_delivery(
        &self,
        app: AppId,
        id: i64,
        due: OffsetDateTime,
        next: Option<OffsetDateTime>,
    ) -> StoreResult<bool>;

    /// Switches a dialog's notifications off (`muted`) or on for one occupant; false when
    /// the user is no occupant of the dialog.
    async fn set_dialog_muted(
        &self,
        app: AppId,
        dialog: &str,
        user: UserId,
        muted: bool,
    ) -> StoreResult<bool>;
    /// Whether the occupant switched the dialog's notifications off; `None` for a
    /// non-occupant.
    async fn dialog_muted(
        &self,
        app: AppId,
        dialog: &str,
        user: UserId,
    ) -> StoreResult<Option<bool>>;
    /// Those of `users` who switched the dialog's notifications off.
    async fn muted_among(
        &self,
        app: AppId,
        dialog: &str,
        users: &[UserId],
    ) -> StoreResult<Vec<UserId>>;
}

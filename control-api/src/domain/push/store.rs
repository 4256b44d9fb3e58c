//! The push persistence boundary; `crate::store` implements it on the same database.

use async_trait::async_trait;

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
}

//! Applications: the tenants, managed from the CLI (the Dashboard's job in QuickBlox).

use std::sync::Arc;

use super::error::DomainError;
use super::ids;
use super::model::{App, AppId};
use super::store::NewApp;
use super::ControlPlane;

/// Length of generated auth keys, secrets and account keys; about 119 bits each.
const CREDENTIAL_LEN: usize = 20;
/// Length of the owner's API key: about 238 bits. It is permanent and grants class
/// management, so longer than the SDK credentials (QuickBlox's are 43 characters).
const API_KEY_LEN: usize = 40;

impl ControlPlane {
    pub async fn create_app(&self, name: &str) -> Result<App, DomainError> {
        self.insert_app(name, false).await
    }

    /// Returns the default application, creating it on first start.
    pub async fn ensure_default_app(&self) -> Result<(App, bool), DomainError> {
        if let Some(app) = self.store.default_app().await? {
            return Ok((app, false));
        }
        Ok((self.insert_app("default", true).await?, true))
    }

    pub async fn list_apps(&self) -> Result<Vec<App>, DomainError> {
        Ok(self.store.list_apps().await?)
    }

    pub async fn delete_app(&self, id: AppId) -> Result<(), DomainError> {
        match self.store.delete_app(id).await? {
            true => {
                self.apps.forget(&id);
                self.sessions.forget_where(|s| s.app_id == id);
                Ok(())
            }
            false => Err(DomainError::NotFound),
        }
    }

    /// The application whose owner's API key this is (`Authorization: ApiKey <key>`).
    pub async fn app_by_api_key(&self, api_key: &str) -> Result<App, DomainError> {
        if api_key.len() > 2 * API_KEY_LEN {
            return Err(DomainError::Unauthorized);
        }
        self.store
            .app_by_api_key(api_key)
            .await?
            .ok_or(DomainError::Unauthorized)
    }

    /// Replaces the owner's API key: the old one stops working at once.
    pub async fn rotate_api_key(&self, id: AppId) -> Result<App, DomainError> {
        let key = ids::credential(API_KEY_LEN);
        if !self.store.set_app_api_key(id, &key).await? {
            return Err(DomainError::NotFound);
        }
        self.apps.forget(&id);
        self.store.app(id).await?.ok_or(DomainError::NotFound)
    }

    pub async fn app_by_account_key(&self, account_key: &str) -> Result<App, DomainError> {
        self.store
            .app_by_account_key(account_key)
            .await?
            .ok_or(DomainError::NotFound)
    }

    /// The application by id, from the application cache when it was read less than
    /// `session_cache_ttl` ago. Its `auth_key` and `auth_secret` never change; an
    /// application deleted by another process meanwhile cannot get sessions anyway (they
    /// reference it in the store).
    pub(crate) async fn cached_app(&self, id: AppId) -> Result<Option<Arc<App>>, DomainError> {
        let now = self.now();
        if let Some(app) = self.apps.get(&id, now) {
            return Ok(Some(app));
        }
        let epoch = self.apps.epoch();
        let Some(app) = self.store.app(id).await? else {
            return Ok(None);
        };
        let app = Arc::new(app);
        self.apps.fill(epoch, id, &app, now);
        Ok(Some(app))
    }

    async fn insert_app(&self, name: &str, is_default: bool) -> Result<App, DomainError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("name", "can't be blank"));
        }
        let app = NewApp {
            name: name.to_string(),
            auth_key: ids::credential(CREDENTIAL_LEN),
            auth_secret: ids::credential(CREDENTIAL_LEN),
            account_key: ids::credential(CREDENTIAL_LEN),
            is_default,
            created_at: self.now(),
        };
        let app = self.store.insert_app(app).await?;
        // The key is a second statement (`NewApp` predates it); should that fail, the
        // application exists without a key until `app rotate-key` gives it one.
        self.rotate_api_key(app.id).await
    }
}

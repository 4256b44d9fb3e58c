//! Applications: the tenants, managed from the CLI (the Dashboard's job in QuickBlox).

use super::error::DomainError;
use super::ids;
use super::model::{App, AppId};
use super::store::NewApp;
use super::ControlPlane;

/// Length of generated auth keys, secrets and account keys; about 119 bits each.
const CREDENTIAL_LEN: usize = 20;

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
            true => Ok(()),
            false => Err(DomainError::NotFound),
        }
    }

    pub async fn app_by_account_key(&self, account_key: &str) -> Result<App, DomainError> {
        self.store
            .app_by_account_key(account_key)
            .await?
            .ok_or(DomainError::NotFound)
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
        Ok(self.store.insert_app(app).await?)
    }
}

//! Users: sign-up, lookup, listing with QuickBlox filters, own-profile update and deletion.

use std::collections::BTreeMap;

use super::error::DomainError;
use super::model::{User, UserId, UserProfile};
use super::password;
use super::sessions::Caller;
use super::store::StoreError;
use super::user_query::{UserLookup, UserQuery};
use super::ControlPlane;

const NO_PERMISSION: &str = "You don't have appropriate permissions to perform this operation";
/// Generous bounds that keep one user row small; QuickBlox's own are tighter.
const MAX_FIELD_LEN: usize = 255;
const MAX_CUSTOM_DATA_LEN: usize = 64 * 1024;
const MAX_TAGS: usize = 50;
const MAX_TAG_LEN: usize = 64;

/// The `user[...]` parameters of a sign-up or update, keyed by field name.
#[derive(Clone, Debug, Default)]
pub struct UserParams(pub BTreeMap<String, String>);

impl UserParams {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl ControlPlane {
    /// `POST /users.json`: any session of the app may sign a user up.
    pub async fn sign_up(&self, caller: &Caller, params: &UserParams) -> Result<User, DomainError> {
        let mut profile = UserProfile::default();
        apply_profile(&mut profile, params)?;
        if profile.login.is_none() && profile.email.is_none() {
            return Err(DomainError::invalid("base", "login or email is required"));
        }
        let password = params
            .get("password")
            .ok_or_else(|| DomainError::invalid("password", "can't be blank"))?;
        password::validate(password)?;
        let hash = password::hash(password.to_string()).await?;
        self.store
            .insert_user(caller.app_id(), &profile, &hash, self.now())
            .await
            .map_err(conflict_to_validation)
    }

    pub async fn user(&self, caller: &Caller, lookup: &UserLookup) -> Result<User, DomainError> {
        self.store
            .user(caller.app_id(), lookup)
            .await?
            .ok_or(DomainError::NotFound)
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        query: &UserQuery,
    ) -> Result<(Vec<User>, i64), DomainError> {
        Ok(self.store.list_users(caller.app_id(), query).await?)
    }

    /// `PUT /users/{id}.json`: only the user themself; a new password needs the old one.
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: UserId,
        params: &UserParams,
    ) -> Result<User, DomainError> {
        if caller.require_user()? != id {
            return Err(DomainError::Forbidden(NO_PERMISSION));
        }
        let lookup = UserLookup::Id(id);
        let (current, stored_hash) = self
            .store
            .user_credentials(caller.app_id(), &lookup)
            .await?
            .ok_or(DomainError::NotFound)?;
        let mut profile = current.profile.clone();
        apply_profile(&mut profile, params)?;
        if profile.login.is_none() && profile.email.is_none() {
            return Err(DomainError::invalid("base", "login or email is required"));
        }
        let new_hash = match params.get("password") {
            None => None,
            Some(new_password) => {
                password::validate(new_password)?;
                let old = params
                    .get("old_password")
                    .ok_or_else(|| DomainError::invalid("old_password", "can't be blank"))?;
                if !password::verify(old.to_string(), stored_hash).await {
                    return Err(DomainError::invalid("old_password", "is incorrect"));
                }
                Some(password::hash(new_password.to_string()).await?)
            }
        };
        self.store
            .update_user(
                caller.app_id(),
                id,
                &profile,
                new_hash.as_deref(),
                self.now(),
            )
            .await
            .map_err(conflict_to_validation)?
            .ok_or(DomainError::NotFound)
    }

    /// `DELETE /users/{id}.json`: only the user themself; their sessions end with them.
    pub async fn delete_user(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
    ) -> Result<(), DomainError> {
        let me = caller.require_user()?;
        let target = self.user(caller, lookup).await?;
        if target.id != me {
            return Err(DomainError::Forbidden(NO_PERMISSION));
        }
        self.store.delete_user(caller.app_id(), me).await?;
        let app = caller.app_id();
        self.sessions
            .forget_where(|s| s.app_id == app && s.user_id == Some(me));
        Ok(())
    }

    pub async fn count_users(&self) -> Result<i64, DomainError> {
        Ok(self.store.count_users().await?)
    }
}

fn conflict_to_validation(err: StoreError) -> DomainError {
    match err {
        StoreError::Conflict { field } => DomainError::invalid(field, "has already been taken"),
        other => other.into(),
    }
}

/// Applies the given fields over `profile`; an empty value clears an optional field.
fn apply_profile(profile: &mut UserProfile, params: &UserParams) -> Result<(), DomainError> {
    let mut errors = Vec::new();
    for (key, raw) in &params.0 {
        let value = raw.trim();
        let text = || (!value.is_empty()).then(|| value.to_string());
        let result = match key.as_str() {
            "login" => check_len(key, value, MAX_FIELD_LEN).map(|_| profile.login = text()),
            "email" => check_email(value).map(|_| profile.email = text().map(|e| e.to_lowercase())),
            "full_name" => check_len(key, value, MAX_FIELD_LEN).map(|_| profile.full_name = text()),
            "phone" => check_len(key, value, MAX_FIELD_LEN).map(|_| profile.phone = text()),
            "website" => check_len(key, value, MAX_FIELD_LEN).map(|_| profile.website = text()),
            "facebook_id" => {
                check_len(key, value, MAX_FIELD_LEN).map(|_| profile.facebook_id = text())
            }
            "twitter_id" => {
                check_len(key, value, MAX_FIELD_LEN).map(|_| profile.twitter_id = text())
            }
            "custom_data" => check_len(key, raw, MAX_CUSTOM_DATA_LEN)
                .map(|_| profile.custom_data = text().map(|_| raw.clone())),
            "external_user_id" => optional_int(key, value).map(|v| profile.external_user_id = v),
            "blob_id" => optional_int(key, value).map(|v| profile.blob_id = v),
            "tag_list" => parse_tags(value).map(|tags| profile.tags = tags),
            // Handled by the caller, or harmless extras QuickBlox also ignores.
            _ => Ok(()),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Validation(errors))
    }
}

type FieldError = (String, String);

fn check_len(key: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err((
            key.to_string(),
            format!("is too long (maximum is {max} characters)"),
        ));
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), FieldError> {
    check_len("email", value, MAX_FIELD_LEN)?;
    let valid = value.is_empty()
        || value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !value.contains(char::is_whitespace)
        });
    if valid {
        Ok(())
    } else {
        Err(("email".into(), "is invalid".into()))
    }
}

fn optional_int(key: &str, value: &str) -> Result<Option<i64>, FieldError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| (key.to_string(), "is not a number".to_string()))
}

/// Parses `a, b,c` into distinct tags, in order.
pub fn parse_tags(value: &str) -> Result<Vec<String>, FieldError> {
    let mut tags: Vec<String> = Vec::new();
    for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tag.chars().count() > MAX_TAG_LEN {
            return Err((
                "tag_list".into(),
                format!("has a tag longer than {MAX_TAG_LEN} characters"),
            ));
        }
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(("tag_list".into(), format!("has more than {MAX_TAGS} tags")));
    }
    Ok(tags)
}

//! Dialogs: creation (one private dialog per pair), visibility, listing, occupant changes,
//! deletion for everyone or for one user.

use std::collections::HashMap;

use serde_json::Value;

use super::model::{Dialog, DialogType};
use super::query::DialogQuery;
use crate::domain::error::DomainError;
use crate::domain::ids;
use crate::domain::model::{AppId, User, UserId};
use crate::domain::store::StoreError;
use crate::domain::user_query::UserLookup;
use crate::domain::ControlPlane;

/// Arbitrary, far above a group chat's size, small enough that an occupant list stays one
/// cheap row set.
pub const MAX_OCCUPANTS: usize = 1000;
const MAX_NAME_LEN: usize = 255;
const MAX_PHOTO_LEN: usize = 1024;
const MAX_DATA_LEN: usize = 64 * 1024;

const ONLY_CREATOR: &str = "Only the dialog owner can do this";

/// What `POST /chat/Dialog.json` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDialog {
    pub kind: DialogType,
    /// Besides the creator, who is always added.
    pub occupants: Vec<UserId>,
    pub name: Option<String>,
    pub photo: Option<String>,
    pub data: Option<Value>,
    pub is_join_required: Option<bool>,
}

/// What `PUT /chat/Dialog/{id}.json` asks for; `None` leaves a field as it is, an empty
/// photo clears it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DialogUpdate {
    pub push_occupants: Vec<UserId>,
    pub pull_occupants: Vec<UserId>,
    pub name: Option<String>,
    pub photo: Option<String>,
    pub data: Option<Value>,
    pub is_join_required: Option<bool>,
}

/// One page of a user's dialogs with their unread counts for that user.
#[derive(Clone, Debug, PartialEq)]
pub struct DialogPage {
    pub dialogs: Vec<Dialog>,
    pub total: i64,
    pub unread: HashMap<String, i64>,
}

impl DialogPage {
    pub fn unread_of(&self, dialog: &str) -> i64 {
        self.unread.get(dialog).copied().unwrap_or(0)
    }
}

/// The answer to a multi-id delete: `{"SuccessfullyDeleted":{"ids":..},"NotFound":{"ids":..}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
}

impl ControlPlane {
    /// XMPP login: `secret` is a live session token of this user (a user session of the
    /// same application) or the user's password.
    pub async fn authenticate_chat_user(
        &self,
        app: AppId,
        user: UserId,
        secret: &str,
    ) -> Result<User, DomainError> {
        if secret.is_empty() {
            return Err(DomainError::Unauthorized);
        }
        match self.authenticate(secret).await {
            Ok(caller) if caller.app_id() == app && caller.user_id() == Some(user) => {
                return self
                    .store
                    .user(app, &UserLookup::Id(user))
                    .await?
                    .ok_or(DomainError::Unauthorized);
            }
            // Another user's (or app's) token is no password of this user either.
            Ok(_) => return Err(DomainError::Unauthorized),
            Err(DomainError::SessionNotFound) => {}
            Err(e) => return Err(e),
        }
        self.check_password(app, &UserLookup::Id(user), secret.to_string())
            .await
    }

    pub async fn chat_user_exists(&self, app: AppId, user: UserId) -> Result<bool, DomainError> {
        Ok(self.store.user(app, &UserLookup::Id(user)).await?.is_some())
    }

    /// The dialog if `user` may see it (an occupant, or any user of the application for a
    /// public dialog); `NotFound` otherwise.
    pub async fn dialog_for_user(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
    ) -> Result<Dialog, DomainError> {
        if !is_object_id(dialog_id) {
            return Err(DomainError::NotFound);
        }
        self.chat
            .dialog(app, dialog_id)
            .await?
            .filter(|d| d.is_visible_to(user))
            .ok_or(DomainError::NotFound)
    }

    /// Finds or creates the private (type 3) dialog of two users; it reappears in `a`'s list
    /// if `a` had deleted it for themself.
    pub async fn private_dialog(
        &self,
        app: AppId,
        a: UserId,
        b: UserId,
    ) -> Result<Dialog, DomainError> {
        let (dialog, _) = self.find_or_create_private(app, a, b).await?;
        Ok(dialog)
    }

    /// `POST /chat/Dialog.json`; the flag says whether the dialog is new (a private dialog
    /// of an existing pair is returned as it is).
    pub async fn create_dialog(
        &self,
        app: AppId,
        creator: UserId,
        new: NewDialog,
    ) -> Result<(Dialog, bool), DomainError> {
        if new.kind == DialogType::Private {
            let peers: Vec<UserId> = dedup(
                new.occupants
                    .iter()
                    .copied()
                    .filter(|o| *o != creator)
                    .collect(),
            );
            let [peer] = peers.as_slice() else {
                return Err(DomainError::invalid(
                    "occupants_ids",
                    "a private dialog needs exactly one other occupant",
                ));
            };
            return self.find_or_create_private(app, creator, *peer).await;
        }
        let name = new.name.as_deref().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Err(DomainError::invalid("name", "can't be blank"));
        }
        check_fields(Some(name), new.photo.as_deref(), new.data.as_ref())?;
        let mut occupants = vec![creator];
        occupants.extend(new.occupants.iter().copied());
        let occupants = dedup(occupants);
        self.check_occupants(app, &occupants).await?;
        let mut dialog = self.fresh_dialog(app, new.kind, creator, occupants);
        dialog.name = Some(name.to_string());
        dialog.photo = new.photo.filter(|p| !p.trim().is_empty());
        dialog.data = new.data;
        dialog.is_join_required = new.is_join_required;
        self.chat.insert_dialog(&dialog).await?;
        Ok((dialog, true))
    }

    async fn find_or_create_private(
        &self,
        app: AppId,
        a: UserId,
        b: UserId,
    ) -> Result<(Dialog, bool), DomainError> {
        if a == b {
            return Err(DomainError::invalid(
                "occupants_ids",
                "can't chat privately with yourself",
            ));
        }
        if let Some(dialog) = self.chat.private_dialog_of(app, a, b).await? {
            self.chat.hide_dialog(app, &dialog.id, a, false).await?;
            return Ok((dialog, false));
        }
        self.check_occupants(app, &[a, b]).await?;
        let dialog = self.fresh_dialog(app, DialogType::Private, a, vec![a, b]);
        match self.chat.insert_dialog(&dialog).await {
            Ok(()) => Ok((dialog, true)),
            // Both users opened the pair at once: the other insert won.
            Err(StoreError::Conflict { .. }) => self
                .chat
                .private_dialog_of(app, a, b)
                .await?
                .map(|d| (d, false))
                .ok_or(DomainError::Unavailable),
            Err(e) => Err(e.into()),
        }
    }

    /// A dialog created now, without name, photo, data or messages.
    fn fresh_dialog(
        &self,
        app: AppId,
        kind: DialogType,
        creator: UserId,
        occupants: Vec<UserId>,
    ) -> Dialog {
        let now = self.now();
        Dialog {
            id: ids::object_id(now),
            app_id: app,
            kind,
            name: None,
            photo: None,
            user_id: creator,
            occupants,
            data: None,
            is_join_required: None,
            created_at: now,
            updated_at: now,
            last_message: None,
            last_message_date_sent: None,
            last_message_user_id: None,
            last_message_id: None,
        }
    }

    /// Every occupant must be a user of this application.
    async fn check_occupants(&self, app: AppId, occupants: &[UserId]) -> Result<(), DomainError> {
        if occupants.len() > MAX_OCCUPANTS {
            return Err(DomainError::invalid(
                "occupants_ids",
                format!("too many occupants (maximum is {MAX_OCCUPANTS})"),
            ));
        }
        let existing = self.chat.existing_users(app, occupants).await?;
        let missing: Vec<String> = occupants
            .iter()
            .filter(|o| !existing.contains(o))
            .map(|o| o.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "occupants_ids",
                format!("contains unknown users: {}", missing.join(", ")),
            ))
        }
    }

    /// `GET /chat/Dialog.json`: what `user` sees, with unread counts.
    pub async fn list_dialogs(
        &self,
        app: AppId,
        user: UserId,
        query: &DialogQuery,
    ) -> Result<DialogPage, DomainError> {
        let (dialogs, total) = self.chat.list_dialogs(app, user, query).await?;
        let ids: Vec<String> = dialogs.iter().map(|d| d.id.clone()).collect();
        let unread = if ids.is_empty() {
            HashMap::new()
        } else {
            self.chat
                .unread_counts(app, user, Some(&ids))
                .await?
                .into_iter()
                .collect()
        };
        Ok(DialogPage {
            dialogs,
            total,
            unread,
        })
    }

    /// Unread messages of `user`, per dialog, for the listed dialogs or all of them.
    pub async fn unread_counts(
        &self,
        app: AppId,
        user: UserId,
        dialogs: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>, DomainError> {
        Ok(self.chat.unread_counts(app, user, dialogs).await?)
    }

    /// `PUT /chat/Dialog/{id}.json`. Group occupants and names are the creator's to change
    /// (anyone may remove themself); public dialogs are the creator's except for joining
    /// and leaving; private dialogs keep their two occupants.
    pub async fn update_dialog(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        update: DialogUpdate,
    ) -> Result<Dialog, DomainError> {
        let mut dialog = self.dialog_for_user(app, user, dialog_id).await?;
        check_update_allowed(&dialog, user, &update)?;
        check_fields(
            update.name.as_deref(),
            update.photo.as_deref(),
            update.data.as_ref(),
        )?;
        if let Some(name) = &update.name {
            let name = name.trim();
            if name.is_empty() {
                return Err(DomainError::invalid("name", "can't be blank"));
            }
            dialog.name = Some(name.to_string());
        }
        if let Some(photo) = update.photo {
            dialog.photo = (!photo.trim().is_empty()).then_some(photo);
        }
        if let Some(data) = update.data {
            dialog.data = Some(data);
        }
        if let Some(required) = update.is_join_required {
            dialog.is_join_required = Some(required);
        }
        let added: Vec<UserId> = dedup(update.push_occupants)
            .into_iter()
            .filter(|u| !dialog.occupants.contains(u))
            .collect();
        self.check_occupants(app, &added).await?;
        let removed: Vec<UserId> = dialog
            .occupants
            .iter()
            .copied()
            .filter(|u| update.pull_occupants.contains(u))
            .collect();
        dialog.occupants.retain(|u| !removed.contains(u));
        dialog.occupants.extend(added);
        if dialog.occupants.len() > MAX_OCCUPANTS {
            return Err(DomainError::invalid(
                "occupants_ids",
                format!("too many occupants (maximum is {MAX_OCCUPANTS})"),
            ));
        }
        dialog.updated_at = self.now();
        self.chat.update_dialog(&dialog, &removed).await?;
        Ok(dialog)
    }

    /// `DELETE /chat/Dialog/{ids}.json`. With `force` the creator deletes a dialog for
    /// everyone; otherwise a user leaves a group or public dialog and hides a private one.
    pub async fn delete_dialogs(
        &self,
        app: AppId,
        user: UserId,
        ids: &[String],
        force: bool,
    ) -> Result<DeleteOutcome, DomainError> {
        let mut found = Vec::new();
        let mut outcome = DeleteOutcome::default();
        for id in dedup(ids.to_vec()) {
            match self.dialog_for_user(app, user, &id).await {
                Ok(dialog) => found.push(dialog),
                Err(DomainError::NotFound) => outcome.not_found.push(id),
                Err(e) => return Err(e),
            }
        }
        // Check every dialog before changing any, so a refusal changes nothing.
        for dialog in &found {
            let owner = dialog.user_id == user;
            if dialog.kind == DialogType::Public && !owner && !dialog.is_occupant(user) {
                return Err(DomainError::Forbidden(ONLY_CREATOR));
            }
            if force && !owner {
                return Err(DomainError::Forbidden(ONLY_CREATOR));
            }
        }
        for mut dialog in found {
            let owner = dialog.user_id == user;
            if (force || dialog.kind == DialogType::Public) && owner {
                self.chat.delete_dialog(app, &dialog.id).await?;
            } else if dialog.kind == DialogType::Private {
                self.chat.hide_dialog(app, &dialog.id, user, true).await?;
            } else {
                dialog.occupants.retain(|o| *o != user);
                dialog.updated_at = self.now();
                self.chat.update_dialog(&dialog, &[user]).await?;
            }
            outcome.deleted.push(dialog.id);
        }
        Ok(outcome)
    }
}

fn check_update_allowed(
    dialog: &Dialog,
    user: UserId,
    update: &DialogUpdate,
) -> Result<(), DomainError> {
    let owner = dialog.user_id == user;
    let only_self = |ids: &[UserId]| ids.iter().all(|u| *u == user);
    let occupant_change = !update.push_occupants.is_empty() || !update.pull_occupants.is_empty();
    match dialog.kind {
        DialogType::Private if occupant_change => Err(DomainError::Forbidden(
            "The occupants of a private dialog can't be changed",
        )),
        DialogType::Private => Ok(()),
        DialogType::Group if owner => Ok(()),
        DialogType::Group => {
            if !update.push_occupants.is_empty()
                || !only_self(&update.pull_occupants)
                || update.name.is_some()
            {
                Err(DomainError::Forbidden(ONLY_CREATOR))
            } else {
                Ok(())
            }
        }
        DialogType::Public if owner => Ok(()),
        DialogType::Public => {
            let joins_or_leaves =
                only_self(&update.push_occupants) && only_self(&update.pull_occupants);
            let other_fields = update.name.is_some()
                || update.photo.is_some()
                || update.data.is_some()
                || update.is_join_required.is_some();
            if joins_or_leaves && !other_fields {
                Ok(())
            } else {
                Err(DomainError::Forbidden(ONLY_CREATOR))
            }
        }
    }
}

fn check_fields(
    name: Option<&str>,
    photo: Option<&str>,
    data: Option<&Value>,
) -> Result<(), DomainError> {
    let too_long = |field: &str, max: usize| {
        DomainError::invalid(field, format!("is too long (maximum is {max} characters)"))
    };
    if name.is_some_and(|n| n.chars().count() > MAX_NAME_LEN) {
        return Err(too_long("name", MAX_NAME_LEN));
    }
    if photo.is_some_and(|p| p.chars().count() > MAX_PHOTO_LEN) {
        return Err(too_long("photo", MAX_PHOTO_LEN));
    }
    if data.is_some_and(|d| d.to_string().len() > MAX_DATA_LEN) {
        return Err(too_long("data", MAX_DATA_LEN));
    }
    Ok(())
}

/// Keeps the first of each value, in order.
pub(crate) fn dedup<T: Eq + std::hash::Hash + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// 24 hex characters: the shape of every dialog and message id.
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

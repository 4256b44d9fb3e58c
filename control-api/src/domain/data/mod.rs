//! Custom objects: application-defined classes with typed fields, and their records.
//!
//! Classes are managed by the application's owner (the CLI: `switchboard class ...`, or
//! `/class.json` with the application's API key); records are created, queried, updated
//! and deleted by users at `/data/{Class}.json`. File fields hold a [`FileRef`]; their
//! bytes go to blob storage through [`files`].
//!
//! **Storage choice.** A record is one row whose typed field values are a JSON object in a
//! text column (`data_records.fields`); classes keep their field list as JSON too. Queries
//! are evaluated in Rust over the class's decoded records, not in SQL: SQLite's
//! `json_extract` and PostgreSQL's `->>` differ in syntax and typing, the permission model
//! (owner, user ids, user tags, per-record overrides) has to be applied to every candidate
//! anyway, and `near`/`all`/`ctn` on arrays have no portable SQL. The cost is a scan of one
//! class per query, fine for the embedded deployments this targets; a class that grows to
//! hundreds of thousands of records wants SQL push-down of the plain comparisons (noted).
//!
//! **Permissions.** Each record has read/update/delete access (`open`, `owner`,
//! `open_for_users_ids`, `open_for_groups` = user tags, `not_allowed`): the class's
//! defaults (QuickBlox's: read open, update and delete owner), overridden per record by a
//! `permissions` object on create or update. The owner keeps every right on their record
//! unless the class says `not_allowed`. A record a user may not read never shows in their
//! queries, counts included; one they may not change is `403` by id and skipped by
//! criteria. Deleting a record deletes its descendants (`_parent_id`, any depth, any
//! class of the application) in one transaction, and then the bytes of their files.

pub mod files;
pub mod model;
pub mod query;
pub mod store;

use std::collections::HashSet;

use serde_json::{Map, Value};

pub use files::RecordFileUpload;
pub use model::{
    Access, Action, DataClass, FieldDef, FieldType, FileRef, Permissions, Record, Scalar,
};
pub use query::DataQuery;
pub use store::DataStore;

use super::error::DomainError;
use super::ids;
use super::model::{AppId, UserId};
use super::user_query::UserLookup;
use super::ControlPlane;

/// Class and field names: an identifier, as QuickBlox's dashboard allows.
const MAX_NAME: usize = 64;
/// Names a class field may not take: the record's own keys and the request's.
const RESERVED_FIELDS: [&str; 7] = [
    "id",
    "user_id",
    "created_at",
    "updated_at",
    "permissions",
    "class_name",
    "token",
];

/// Who asks: a user with their tags, or an application session.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    pub user: Option<UserId>,
    pub tags: Vec<String>,
}

/// Outcome of deleting records by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordDeletion {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
    pub wrong_permissions: Vec<String>,
}

impl ControlPlane {
    // Classes (the owner's).

    pub async fn create_class(
        &self,
        app: AppId,
        name: &str,
        fields: Vec<FieldDef>,
        permissions: Option<Permissions>,
    ) -> Result<DataClass, DomainError> {
        self.define_class(app, name, fields, permissions, true)
            .await
    }

    /// [`ControlPlane::create_class`] with the class-level `create` access: whether users
    /// may create records at all.
    pub async fn define_class(
        &self,
        app: AppId,
        name: &str,
        fields: Vec<FieldDef>,
        permissions: Option<Permissions>,
        create_allowed: bool,
    ) -> Result<DataClass, DomainError> {
        checked_name("name", name)?;
        checked_fields(&[], &fields)?;
        let class = DataClass {
            id: 0,
            app_id: app,
            name: name.to_string(),
            fields,
            permissions: permissions.unwrap_or_default(),
            create_allowed,
            created_at: self.now(),
        };
        Ok(self.data.insert_class(&class).await?)
    }

    pub async fn list_classes(&self, app: AppId) -> Result<Vec<DataClass>, DomainError> {
        Ok(self.data.list_classes(app).await?)
    }

    /// Adds `fields` (one already there with the same type is left alone; another type is
    /// refused, as records may hold values of the old one) and replaces the default
    /// permissions and `create` access when given.
    pub async fn update_class(
        &self,
        app: AppId,
        name: &str,
        fields: Vec<FieldDef>,
        permissions: Option<Permissions>,
        create_allowed: Option<bool>,
    ) -> Result<DataClass, DomainError> {
        let mut class = self.data_class(app, name).await?;
        let mut added = Vec::new();
        for field in fields {
            match class.field(&field.name) {
                Some(old) if old.kind == field.kind => {}
                Some(old) => {
                    return Err(DomainError::invalid(
                        "fields",
                        format!(
                            "{} is already a field of type {}",
                            old.name,
                            old.kind.name()
                        ),
                    ))
                }
                None => added.push(field),
            }
        }
        checked_fields(&class.fields, &added)?;
        class.fields.extend(added);
        if let Some(permissions) = permissions {
            class.permissions = permissions;
        }
        if let Some(create) = create_allowed {
            class.create_allowed = create;
        }
        self.data.update_class(&class).await?;
        Ok(class)
    }

    /// Deletes the class, its records, their descendants in any class, and their files.
    pub async fn delete_class(&self, app: AppId, name: &str) -> Result<(), DomainError> {
        let deleted = self
            .data
            .delete_class(app, name)
            .await?
            .ok_or(DomainError::NotFound)?;
        self.remove_files(app, &deleted).await;
        Ok(())
    }

    pub async fn data_class(&self, app: AppId, name: &str) -> Result<DataClass, DomainError> {
        self.data
            .class(app, name)
            .await?
            .ok_or(DomainError::NotFound)
    }

    /// The caller as the permission checks see them (their user tags loaded).
    pub async fn data_viewer(
        &self,
        app: AppId,
        user: Option<UserId>,
    ) -> Result<Viewer, DomainError> {
        let Some(id) = user else {
            return Ok(Viewer::default());
        };
        let tags = self
            .store
            .user(app, &UserLookup::Id(id))
            .await?
            .map(|u| u.profile.tags)
            .unwrap_or_default();
        Ok(Viewer {
            user: Some(id),
            tags,
        })
    }

    // Records.

    pub async fn create_record(
        &self,
        class: &DataClass,
        user: UserId,
        body: &Map<String, Value>,
    ) -> Result<Record, DomainError> {
        if !class.create_allowed {
            return Err(DomainError::Forbidden(
                "Creating records of this class is not allowed",
            ));
        }
        let now = self.now();
        let mut record = Record {
            id: ids::object_id(now),
            app_id: class.app_id,
            class_id: class.id,
            user_id: user,
            parent_id: None,
            fields: Map::new(),
            permissions: None,
            created_at: now,
            updated_at: now,
        };
        apply_body(class, &mut record, body)?;
        self.data.insert_record(&record).await?;
        Ok(record)
    }

    /// The records `viewer` may read that match `query`: one page, and the number of
    /// matches.
    pub async fn list_records(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        query: &DataQuery,
    ) -> Result<(Vec<Record>, usize), DomainError> {
        let mut records = self.matching(class, viewer, query, Action::Read).await?;
        let total = records.len();
        query.sort(&mut records);
        let page = records
            .into_iter()
            .skip(query.skip)
            .take(query.limit)
            .collect();
        Ok((page, total))
    }

    pub async fn record(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Record, DomainError> {
        let ids = [id.to_string()];
        let record = self
            .data
            .records(class.app_id, class.id, Some(&ids))
            .await?
            .pop()
            .filter(|r| allowed(class, r, viewer, Action::Read))
            .ok_or(DomainError::NotFound)?;
        Ok(record)
    }

    pub async fn update_record(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        id: &str,
        body: &Map<String, Value>,
    ) -> Result<Record, DomainError> {
        let mut record = self.record(class, viewer, id).await?;
        if !allowed(class, &record, viewer, Action::Update) {
            return Err(DomainError::Forbidden(
                "You have no permission to update this record",
            ));
        }
        self.save_update(class, &mut record, body).await?;
        Ok(record)
    }

    /// Multi-record update: every record matching `query` that `viewer` may update.
    pub async fn update_records(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        query: &DataQuery,
        body: &Map<String, Value>,
    ) -> Result<Vec<Record>, DomainError> {
        let mut records = self.matching(class, viewer, query, Action::Update).await?;
        records.truncate(query.limit);
        for record in &mut records {
            self.save_update(class, record, body).await?;
        }
        Ok(records)
    }

    pub async fn delete_records(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        ids: &[String],
    ) -> Result<RecordDeletion, DomainError> {
        let found = self.data.records(class.app_id, class.id, Some(ids)).await?;
        let mut outcome = RecordDeletion::default();
        for id in ids {
            match found.iter().find(|r| &r.id == id) {
                Some(r) if !allowed(class, r, viewer, Action::Read) => {
                    outcome.not_found.push(id.clone())
                }
                Some(r) if allowed(class, r, viewer, Action::Delete) => {
                    outcome.deleted.push(id.clone())
                }
                Some(_) => outcome.wrong_permissions.push(id.clone()),
                None => outcome.not_found.push(id.clone()),
            }
        }
        if !outcome.deleted.is_empty() {
            let deleted = self
                .data
                .delete_records(class.app_id, &outcome.deleted)
                .await?;
            self.remove_files(class.app_id, &deleted).await;
        }
        Ok(outcome)
    }

    /// Deletes every record matching `query` that `viewer` may delete; returns how many.
    pub async fn delete_records_by(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        query: &DataQuery,
    ) -> Result<u64, DomainError> {
        let ids: Vec<String> = self
            .matching(class, viewer, query, Action::Delete)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let deleted = self.data.delete_records(class.app_id, &ids).await?;
        self.remove_files(class.app_id, &deleted).await;
        // Descendants in the answer would surprise: QuickBlox counts the matches.
        let matched: HashSet<&String> = ids.iter().collect();
        Ok(deleted.iter().filter(|r| matched.contains(&r.id)).count() as u64)
    }

    pub async fn count_records(&self) -> Result<i64, DomainError> {
        Ok(self.data.count_records().await?)
    }

    /// Records matching `query` that `viewer` may read and do `action` on, oldest first.
    async fn matching(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        query: &DataQuery,
        action: Action,
    ) -> Result<Vec<Record>, DomainError> {
        let records = self.data.records(class.app_id, class.id, None).await?;
        Ok(records
            .into_iter()
            .filter(|r| allowed(class, r, viewer, Action::Read))
            .filter(|r| allowed(class, r, viewer, action))
            .filter(|r| query.matches(r))
            .collect())
    }

    async fn save_update(
        &self,
        class: &DataClass,
        record: &mut Record,
        body: &Map<String, Value>,
    ) -> Result<(), DomainError> {
        apply_body(class, record, body)?;
        apply_operators(class, record, body)?;
        record.updated_at = self.now();
        self.data.update_record(record).await?;
        Ok(())
    }
}

/// Whether `viewer` may do `action` on `record`.
pub fn allowed(class: &DataClass, record: &Record, viewer: &Viewer, action: Action) -> bool {
    let access = record
        .permissions
        .as_ref()
        .unwrap_or(&class.permissions)
        .of(action);
    if matches!(class.permissions.of(action), Access::NotAllowed) {
        return false;
    }
    let owner = viewer.user == Some(record.user_id);
    match access {
        Access::Open => true,
        Access::NotAllowed => false,
        Access::Owner => owner,
        Access::OpenForUsersIds { ids } => owner || viewer.user.is_some_and(|u| ids.contains(&u)),
        Access::OpenForGroups { groups } => owner || viewer.tags.iter().any(|t| groups.contains(t)),
    }
}

/// Field values, `_parent_id` and `permissions` from a create or update body; update
/// operators (`inc`, `push`, ...) are left to [`apply_operators`].
fn apply_body(
    class: &DataClass,
    record: &mut Record,
    body: &Map<String, Value>,
) -> Result<(), DomainError> {
    let mut errors = Vec::new();
    for (key, value) in body {
        match key.as_str() {
            "_id" | "user_id" | "created_at" | "updated_at" | "class_name" | "token" => {}
            "inc" | "push" | "pull" | "pull_all" | "pop" | "add_to_set" if value.is_object() => {}
            "_parent_id" => {
                record.parent_id = match value {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            }
            "permissions" => match parse_permissions(value, &record.permissions, class) {
                Ok(p) => record.permissions = Some(p),
                Err(message) => errors.push(("permissions".to_string(), message)),
            },
            _ => match class.field(key) {
                None => errors.push((key.clone(), format!("is not a field of {}", class.name))),
                // Files come and go through their own endpoint, which keeps storage in
                // step; a record sent back as read (its file unchanged) is fine.
                Some(def) if def.kind.scalar == Scalar::File => {
                    if record.fields.get(key).unwrap_or(&Value::Null) != value {
                        errors.push((
                            key.clone(),
                            format!(
                                "is a file field: use POST or DELETE /data/{}/{{id}}/file.json",
                                class.name
                            ),
                        ));
                    }
                }
                Some(def) => match coerce(def.kind, value) {
                    Ok(Value::Null) => {
                        record.fields.remove(key);
                    }
                    Ok(v) => {
                        record.fields.insert(key.clone(), v);
                    }
                    Err(message) => errors.push((key.clone(), message)),
                },
            },
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Validation(errors))
    }
}

/// `inc`, `push`, `pull`, `pull_all`, `pop`, `add_to_set`: `{"op": {"field": value}}`.
fn apply_operators(
    class: &DataClass,
    record: &mut Record,
    body: &Map<String, Value>,
) -> Result<(), DomainError> {
    for op in ["inc", "push", "pull", "pull_all", "pop", "add_to_set"] {
        let Some(Value::Object(targets)) = body.get(op) else {
            continue;
        };
        for (field, arg) in targets {
            let def = class.field(field).ok_or_else(|| {
                DomainError::invalid(field, format!("is not a field of {}", class.name))
            })?;
            let current = record.fields.get(field).cloned().unwrap_or(Value::Null);
            let updated = operate(op, def.kind, current, arg)
                .map_err(|message| DomainError::invalid(field, message))?;
            record.fields.insert(field.clone(), updated);
        }
    }
    Ok(())
}

fn operate(op: &str, kind: FieldType, current: Value, arg: &Value) -> Result<Value, String> {
    if op == "inc" {
        if kind.array || !matches!(kind.scalar, Scalar::Integer | Scalar::Float) {
            return Err("inc needs a number field".into());
        }
        let by = coerce(kind, arg)?;
        let sum = current.as_f64().unwrap_or(0.0) + by.as_f64().unwrap_or(0.0);
        return coerce(kind, &Value::from(sum));
    }
    if !kind.array {
        return Err(format!("{op} needs an array field"));
    }
    let element = FieldType {
        scalar: kind.scalar,
        array: false,
    };
    let mut items = match current {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let args: Vec<Value> = match arg {
        Value::Array(list) => list
            .iter()
            .map(|v| coerce(element, v))
            .collect::<Result<_, _>>()?,
        other => vec![coerce(element, other)?],
    };
    match op {
        "push" => items.extend(args),
        "add_to_set" => {
            for v in args {
                if !items.contains(&v) {
                    items.push(v);
                }
            }
        }
        "pull" | "pull_all" => items.retain(|v| !args.contains(v)),
        "pop" => {
            if arg.as_i64() == Some(-1) || arg.as_str() == Some("-1") {
                if !items.is_empty() {
                    items.remove(0);
                }
            } else {
                items.pop();
            }
        }
        _ => {}
    }
    Ok(Value::Array(items))
}

/// A value of the field's type, converted from JSON or from form text.
pub fn coerce(kind: FieldType, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if kind.array {
        let element = FieldType {
            scalar: kind.scalar,
            array: false,
        };
        let items: Vec<Value> = match value {
            Value::Array(items) => items.clone(),
            Value::String(s) if s.is_empty() => Vec::new(),
            Value::String(s) => s
                .split(',')
                .map(|p| Value::String(p.trim().into()))
                .collect(),
            other => vec![other.clone()],
        };
        return items
            .iter()
            .map(|v| coerce(element, v))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    let text = match value {
        Value::String(s) => Some(s.trim()),
        _ => None,
    };
    match kind.scalar {
        Scalar::Integer => value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .or_else(|| text.and_then(|t| t.parse().ok()))
            .map(Value::from)
            .ok_or_else(|| "must be an integer".into()),
        Scalar::Float => value
            .as_f64()
            .or_else(|| text.and_then(|t| t.parse().ok()))
            .filter(|f| f.is_finite())
            .map(Value::from)
            .ok_or_else(|| "must be a number".into()),
        Scalar::Boolean => match (value, text) {
            (Value::Bool(b), _) => Ok(Value::Bool(*b)),
            (_, Some("true" | "1")) => Ok(Value::Bool(true)),
            (_, Some("false" | "0")) => Ok(Value::Bool(false)),
            (Value::Number(n), _) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
            (Value::Number(n), _) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
            _ => Err("must be true or false".into()),
        },
        Scalar::String | Scalar::File => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err("must be a string".into()),
        },
        Scalar::Date => match value {
            Value::Number(n) if n.is_i64() => Ok(value.clone()),
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(secs) => Ok(Value::from(secs)),
                Err(_) if !s.trim().is_empty() => Ok(Value::String(s.trim().into())),
                Err(_) => Err("must be a date".into()),
            },
            _ => Err("must be a date (unix seconds or a date string)".into()),
        },
        Scalar::Location => {
            let coords: Vec<f64> = match value {
                Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
                Value::String(s) => s.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
                _ => Vec::new(),
            };
            match coords[..] {
                [lon, lat] if (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) => {
                    Ok(Value::from(vec![lon, lat]))
                }
                _ => Err("must be [longitude, latitude]".into()),
            }
        }
    }
}

/// A `permissions` object: `{"read":{"access":"open"},"update":{"access":
/// "open_for_users_ids","ids":[3]},"delete":{"access":"open_for_groups","groups":["g"]}}`;
/// actions left out keep their current (or the class's) access.
pub fn parse_permissions(
    value: &Value,
    current: &Option<Permissions>,
    class: &DataClass,
) -> Result<Permissions, String> {
    let Value::Object(actions) = value else {
        return Err("must be an object of read, update and delete".into());
    };
    let mut permissions = current.clone().unwrap_or_else(|| class.permissions.clone());
    for (action, spec) in actions {
        let slot = match action.as_str() {
            "read" => &mut permissions.read,
            "update" => &mut permissions.update,
            "delete" => &mut permissions.delete,
            "create" => continue,
            other => return Err(format!("unknown action {other:?}")),
        };
        *slot = parse_access(spec)?;
    }
    Ok(permissions)
}

/// A class's `permissions` object: record defaults for `read`, `update` and `delete` (as
/// [`parse_access`]) over `current`, and the class-level `create` (`open` or
/// `not_allowed`), `None` when not given.
pub fn parse_class_permissions(
    value: &Value,
    current: &Permissions,
) -> Result<(Permissions, Option<bool>), String> {
    let Value::Object(actions) = value else {
        return Err("must be an object of create, read, update and delete".into());
    };
    let mut permissions = current.clone();
    let mut create = None;
    for (action, spec) in actions {
        let slot = match action.as_str() {
            "read" => &mut permissions.read,
            "update" => &mut permissions.update,
            "delete" => &mut permissions.delete,
            "create" => {
                create = Some(match parse_access(spec)? {
                    Access::Open => true,
                    Access::NotAllowed => false,
                    _ => return Err("create access must be open or not_allowed".into()),
                });
                continue;
            }
            other => return Err(format!("unknown action {other:?}")),
        };
        *slot = parse_access(spec)?;
    }
    Ok((permissions, create))
}

pub fn parse_access(spec: &Value) -> Result<Access, String> {
    let access = spec
        .get("access")
        .and_then(Value::as_str)
        .or_else(|| spec.as_str())
        .ok_or("needs an access level")?;
    let list = |key: &str| -> Vec<String> {
        match spec.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
            Some(Value::Object(members)) => members
                .values()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    Ok(match access {
        "open" => Access::Open,
        "owner" => Access::Owner,
        "not_allowed" => Access::NotAllowed,
        "open_for_users_ids" => Access::OpenForUsersIds {
            // `users_ids` is how QuickBlox's class ACL names them.
            ids: [list("ids"), list("users_ids")]
                .concat()
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse()
                        .map(UserId)
                        .map_err(|_| format!("{s:?} is not a user id"))
                })
                .collect::<Result<_, _>>()?,
        },
        "open_for_groups" => Access::OpenForGroups {
            groups: list("groups")
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
        },
        other => return Err(format!("unknown access level {other:?}")),
    })
}

/// `added` fields' names and types, checked against each other and `existing`.
fn checked_fields(existing: &[FieldDef], added: &[FieldDef]) -> Result<(), DomainError> {
    for (i, field) in added.iter().enumerate() {
        checked_name("fields", &field.name)?;
        if field.name.starts_with('_') || RESERVED_FIELDS.contains(&field.name.as_str()) {
            return Err(DomainError::invalid(
                "fields",
                format!("{} is a reserved name", field.name),
            ));
        }
        if existing
            .iter()
            .chain(&added[..i])
            .any(|f| f.name == field.name)
        {
            return Err(DomainError::invalid(
                "fields",
                format!("{} is given twice", field.name),
            ));
        }
        if field.kind.array && field.kind.scalar == Scalar::File {
            // A file field holds one file: the file endpoints name a field, not an element.
            return Err(DomainError::invalid(
                "fields",
                format!("{} can't be an array of files", field.name),
            ));
        }
    }
    Ok(())
}

fn checked_name(field: &str, name: &str) -> Result<(), DomainError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("{name:?} must be a name of letters, digits and _ (at most {MAX_NAME})"),
        ))
    }
}

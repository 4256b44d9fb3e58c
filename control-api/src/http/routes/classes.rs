//! `/class.json`: custom-object classes, managed by the application's owner with the
//! application's API key (`Authorization: ApiKey <key>`, QuickBlox's server-API header;
//! `switchboard app list` shows the key). Create (QuickBlox's `POST /class.json` body:
//! `name`, `fields` `{"age":"Integer","tags":"String_a"}`, `permissions` with `create`,
//! `read`, `update`, `delete`), list, show, update (add fields, replace permissions) and
//! delete (`/class/{name}.json`, with every record and its files). User and application
//! sessions are refused: they may use classes, not define them.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::data::observe;
use crate::domain::data::{
    parse_class_permissions, Access, DataClass, FieldDef, FieldType, Permissions,
};
use crate::domain::model::App;
use crate::domain::DomainError;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::TOKEN_HEADER;
use crate::http::state::AppState;
use crate::http::wire_chat::ChatBody;

/// The answer to a session where the owner's key belongs.
const OWNER_ONLY: &str =
    "Classes are managed by the application owner: use Authorization: ApiKey <key>";
/// The `Authorization` scheme QuickBlox's server API uses for API keys.
const SCHEME: &str = "ApiKey";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/class", get(list).post(create))
        .route("/class/{name}", get(show).put(update).delete(delete))
}

/// The application whose owner's API key the request carries.
pub struct Owner(pub App);

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            if parts.headers.contains_key(TOKEN_HEADER) {
                return Err(DomainError::Forbidden(OWNER_ONLY).into());
            }
            return Err(ApiError::ApiKeyRequired);
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(SCHEME))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty())
            .ok_or(DomainError::Unauthorized)?;
        Ok(Owner(state.control.app_by_api_key(key).await?))
    }
}

async fn create(
    State(state): State<AppState>,
    owner: Result<Owner, ApiError>,
    ChatBody(body): ChatBody,
) -> ApiResult<Response> {
    let result = async {
        let Owner(app) = owner?;
        let name = match body.get("name") {
            Some(Value::String(name)) => name.trim().to_string(),
            _ => return Err(DomainError::invalid("name", "is required").into()),
        };
        let fields = field_defs(body.get("fields"))?;
        let (permissions, create) = match body.get("permissions") {
            None | Some(Value::Null) => (Permissions::default(), None),
            Some(value) => parse_class_permissions(value, &Permissions::default())
                .map_err(|e| DomainError::invalid("permissions", e))?,
        };
        let class = state
            .control
            .define_class(
                app.id,
                &name,
                fields,
                Some(permissions),
                create.unwrap_or(true),
            )
            .await
            .map_err(taken_name)?;
        Ok(class_json(&class))
    }
    .await;
    observe(&state, "class_create", &result);
    Ok((StatusCode::CREATED, Json(result?)).into_response())
}

async fn list(
    State(state): State<AppState>,
    owner: Result<Owner, ApiError>,
) -> ApiResult<Json<Value>> {
    let result = async {
        let Owner(app) = owner?;
        let classes = state.control.list_classes(app.id).await?;
        Ok(json!({
            "items": classes.iter().map(class_json).collect::<Vec<_>>(),
            "total_entries": classes.len(),
        }))
    }
    .await;
    observe(&state, "class_list", &result);
    result.map(Json)
}

async fn show(
    State(state): State<AppState>,
    owner: Result<Owner, ApiError>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let result = async {
        let Owner(app) = owner?;
        Ok(class_json(&state.control.data_class(app.id, &name).await?))
    }
    .await;
    observe(&state, "class_show", &result);
    result.map(Json)
}

/// `fields` are added (the ones already there, with their type, are fine to repeat);
/// `permissions` replace the actions they name.
async fn update(
    State(state): State<AppState>,
    owner: Result<Owner, ApiError>,
    Path(name): Path<String>,
    ChatBody(body): ChatBody,
) -> ApiResult<Json<Value>> {
    let result = async {
        let Owner(app) = owner?;
        let current = state.control.data_class(app.id, &name).await?;
        let fields = field_defs(body.get("fields"))?;
        let (permissions, create) = match body.get("permissions") {
            None | Some(Value::Null) => (None, None),
            Some(value) => {
                let (p, create) = parse_class_permissions(value, &current.permissions)
                    .map_err(|e| DomainError::invalid("permissions", e))?;
                (Some(p), create)
            }
        };
        let class = state
            .control
            .update_class(app.id, &name, fields, permissions, create)
            .await?;
        Ok(class_json(&class))
    }
    .await;
    observe(&state, "class_update", &result);
    result.map(Json)
}

async fn delete(
    State(state): State<AppState>,
    owner: Result<Owner, ApiError>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let result = async {
        let Owner(app) = owner?;
        state.control.delete_class(app.id, &name).await?;
        Ok(())
    }
    .await;
    observe(&state, "class_delete", &result);
    result.map(|()| StatusCode::OK)
}

/// `{"age":"Integer","tags":"String_a"}` (QuickBlox's form), or the `custom_fields` list
/// this API answers with (`[{"name":"tags","type":"String","is_array":"1"}]`).
fn field_defs(value: Option<&Value>) -> Result<Vec<FieldDef>, DomainError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(members)) => members
            .iter()
            .map(|(name, kind)| field_def(name, kind, false))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                let kind = item.get("type").unwrap_or(&Value::Null);
                field_def(name, kind, truthy(item.get("is_array")))
            })
            .collect(),
        Some(_) => Err(DomainError::invalid(
            "fields",
            "must be an object of field names and types",
        )),
    }
}

fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn field_def(name: &str, kind: &Value, array: bool) -> Result<FieldDef, DomainError> {
    let spec = kind.as_str().unwrap_or_default();
    let mut kind = FieldType::parse(spec).ok_or_else(|| {
        DomainError::invalid(
            "fields",
            format!(
                "{name}: unknown type {spec:?} (Integer, Float, Boolean, String, Date, \
                 Location, File; TYPE_a for an array)"
            ),
        )
    })?;
    kind.array |= array;
    Ok(FieldDef {
        name: name.trim().to_string(),
        kind,
    })
}

/// A taken class name is a validation error on `name`, as QuickBlox answers.
fn taken_name(error: DomainError) -> DomainError {
    match error {
        DomainError::Store(crate::StoreError::Conflict { .. }) => {
            DomainError::invalid("name", "has already been taken")
        }
        other => other,
    }
}

/// A class as QuickBlox's Class model shows it: `custom_fields` with capitalized types
/// (`is_array` "1" for arrays) and the `acl` of the four actions.
pub fn class_json(class: &DataClass) -> Value {
    let fields: Vec<Value> = class
        .fields
        .iter()
        .map(|f| {
            let mut field = Map::new();
            field.insert("name".into(), json!(f.name));
            field.insert("type".into(), json!(f.kind.scalar.wire_name()));
            if f.kind.array {
                field.insert("is_array".into(), json!("1"));
            }
            Value::Object(field)
        })
        .collect();
    let create = if class.create_allowed {
        "open"
    } else {
        "not_allowed"
    };
    let p = &class.permissions;
    json!({
        "_id": class.id.to_string(),
        "name": class.name,
        "application_id": class.app_id,
        "custom_fields": fields,
        "acl": {
            "create": {"access": create},
            "read": acl(&p.read),
            "update": acl(&p.update),
            "delete": acl(&p.delete),
        },
        "created_at": class.created_at.unix_timestamp(),
    })
}

fn acl(access: &Access) -> Value {
    match access {
        Access::OpenForUsersIds { ids } => json!({
            "access": "open_for_users_ids",
            "users_ids": ids.iter().map(|id| id.0.to_string()).collect::<Vec<_>>(),
        }),
        other => json!(other),
    }
}

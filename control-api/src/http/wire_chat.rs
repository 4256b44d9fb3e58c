//! QuickBlox chat JSON shapes (dialogs, messages, delete outcomes) and the decoding of chat
//! request bodies, which may be JSON or form-encoded.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::RawParams;
use super::wire::iso;
use crate::domain::chat::{ChatMessage, DeleteOutcome, Dialog};
use crate::domain::model::UserId;
use crate::domain::DomainError;

/// `_id`, `type`, `occupants_ids`, `xmpp_room_jid`, `last_message*` and the caller's
/// `unread_messages_count`.
pub fn dialog(d: &Dialog, unread: i64, chat_endpoint: &str) -> Value {
    json!({
        "_id": d.id,
        "user_id": d.user_id,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "type": d.kind.number(),
        "name": d.name,
        "photo": d.photo,
        "xmpp_room_jid": d.xmpp_room_jid(chat_endpoint),
        "occupants_ids": d.occupants,
        "last_message": d.last_message,
        "last_message_date_sent": d.last_message_date_sent,
        "last_message_user_id": d.last_message_user_id,
        "last_message_id": d.last_message_id,
        "unread_messages_count": unread,
        "is_join_required": d.is_join_required.map(i64::from),
        "data": d.data,
    })
}

/// A message as `viewer` sees it (`read` is whether they read it); custom parameters sit
/// beside the standard fields, which win a name clash.
pub fn message(m: &ChatMessage, viewer: UserId) -> Value {
    let mut object: Map<String, Value> = m.custom.clone();
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| Value::Object(a.fields.clone()))
        .collect();
    let standard = json!({
        "_id": m.id,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "chat_dialog_id": m.dialog_id,
        "message": m.body,
        "date_sent": m.date_sent,
        "sender_id": m.sender_id,
        "recipient_id": m.recipient_id,
        "read": i64::from(m.read_ids.contains(&viewer)),
        "read_ids": m.read_ids,
        "delivered_ids": m.delivered_ids,
        "attachments": attachments,
        "markable": i64::from(m.markable),
    });
    if let Value::Object(fields) = standard {
        object.extend(fields);
    }
    Value::Object(object)
}

pub fn delete_outcome(outcome: &DeleteOutcome) -> Value {
    json!({
        "SuccessfullyDeleted": {"ids": outcome.deleted},
        "NotFound": {"ids": outcome.not_found},
    })
}

/// A chat write's parameters as one JSON object: a JSON body as sent, or the query and a
/// form body with `a[b][c]` names nested (`data[class_name]=x` → `{"data":{"class_name":"x"}}`).
#[derive(Clone, Debug, Default)]
pub struct ChatBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for ChatBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawParams::read(req, state).await?;
        let blank = raw.body_is_blank();
        let (mut pairs, body) = (raw.query, raw.body);
        if raw.is_json && !blank {
            let value: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::Malformed(format!("invalid JSON body: {e}")))?;
            let Value::Object(members) = value else {
                return Err(ApiError::Malformed(
                    "the JSON body must be an object".into(),
                ));
            };
            let mut object = nest(&pairs);
            object.extend(members);
            return Ok(Self(object));
        }
        if !blank {
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Self(nest(&pairs)))
    }
}

/// `a[b][]=v` pairs into nested objects; a trailing `[]` is dropped (the SDK's array
/// marker), the last value of a name wins.
fn nest(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in pairs {
        let key = key.strip_suffix("[]").unwrap_or(key);
        let mut path: Vec<&str> = Vec::new();
        let (head, mut rest) = key.split_once('[').map_or((key, ""), |(h, r)| (h, r));
        path.push(head);
        while let Some((segment, after)) = rest.split_once(']') {
            path.push(segment);
            rest = after.strip_prefix('[').unwrap_or(after);
        }
        insert_path(&mut root, &path, value);
    }
    root
}

fn insert_path(object: &mut Map<String, Value>, path: &[&str], value: &str) {
    let [first, rest @ ..] = path else { return };
    if rest.is_empty() {
        object.insert(first.to_string(), Value::String(value.to_string()));
        return;
    }
    let entry = object
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        insert_path(inner, rest, value);
    }
}

/// Reading typed fields out of a [`ChatBody`] (or one of its nested objects).
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    /// A scalar as text; `None` when absent or null.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(i64::from(*b).to_string()),
            other => Some(other.to_string()),
        }
    }

    /// `1`/`0`, `true`/`false`; anything else is a validation error.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, DomainError> {
        let Some(raw) = self.text(key) else {
            return Ok(None);
        };
        match raw.trim() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" | "" => Ok(Some(false)),
            _ => Err(DomainError::invalid(key, "must be 0 or 1")),
        }
    }

    pub fn integer(&self, key: &str) -> Result<Option<i64>, DomainError> {
        match self.text(key) {
            None => Ok(None),
            Some(raw) if raw.trim().is_empty() => Ok(None),
            Some(raw) => raw
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| DomainError::invalid(key, "is not a number")),
        }
    }

    /// User ids as a JSON array or a comma list (`"12, 13"`).
    pub fn user_ids(&self, key: &str) -> Result<Vec<UserId>, DomainError> {
        let raw: Vec<String> = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(scalar).collect(),
            Some(Value::Object(members)) => members.values().map(scalar).collect(),
            Some(other) => scalar(other).split(',').map(str::to_string).collect(),
        };
        raw.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .map(UserId)
                    .ok_or_else(|| DomainError::invalid(key, "must be a list of user ids"))
            })
            .collect()
    }

    pub fn object(&self, key: &str) -> Option<&Map<String, Value>> {
        self.0.get(key).and_then(Value::as_object)
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Path ids `a,b` (the multi-id form of delete and update).
pub fn path_ids(raw: &str) -> Vec<String> {
    let ids: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut seen = BTreeMap::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone(), ()).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_form_names() {
        let pairs = vec![
            ("data[class_name]".to_string(), "Info".to_string()),
            ("push_all[occupants_ids][]".to_string(), "3,4".to_string()),
            ("attachments[0][type]".to_string(), "image".to_string()),
            ("name".to_string(), "n".to_string()),
        ];
        let object = Value::Object(nest(&pairs));
        assert_eq!(
            object,
            json!({"data":{"class_name":"Info"},"push_all":{"occupants_ids":"3,4"},
                   "attachments":{"0":{"type":"image"}},"name":"n"})
        );
    }

    #[test]
    fn reads_user_id_lists_in_every_shape() {
        let object = json!({"a": "12, 13", "b": [3, "4"], "c": "x", "d": null})
            .as_object()
            .cloned()
            .unwrap();
        let fields = Fields(&object);
        assert_eq!(fields.user_ids("a").unwrap(), vec![UserId(12), UserId(13)]);
        assert_eq!(fields.user_ids("b").unwrap(), vec![UserId(3), UserId(4)]);
        assert!(fields.user_ids("c").is_err());
        assert!(fields.user_ids("d").unwrap().is_empty());
    }
}

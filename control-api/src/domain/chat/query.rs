//! QuickBlox chat list parameters (`type[in]=1,2`, `updated_at[gt]=..`, `sort_desc=..`,
//! `skip`, `limit`) parsed into typed queries; only whitelisted fields ever reach SQL.

use crate::domain::error::DomainError;
use crate::domain::user_query::{parse_time, unix_millis, FilterValue};

/// QuickBlox's default and largest page of dialogs or messages.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 100;
/// Values of one `[in]`/`[nin]`/`[all]` filter: a page's worth of ids.
pub const MAX_LIST_VALUES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Integer,
    Text,
    /// Unix seconds or RFC 3339 on the wire, unix milliseconds as stored.
    Time,
}

/// A field a chat list can be filtered or sorted by.
pub trait ChatField: Copy + Sized {
    fn parse(name: &str) -> Option<Self>;
    fn kind(self) -> ValueKind;
    fn sortable(self) -> bool;
    fn allows(self, op: ChatOp) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogField {
    Id,
    Type,
    Name,
    UserId,
    CreatedAt,
    UpdatedAt,
    LastMessageDateSent,
    /// Membership: `occupants_ids[in]=3,4`, `occupants_ids[all]=3,4`, `occupants_ids=3`.
    OccupantsIds,
}

impl ChatField for DialogField {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "_id" => Self::Id,
            "type" => Self::Type,
            "name" => Self::Name,
            "user_id" => Self::UserId,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "last_message_date_sent" => Self::LastMessageDateSent,
            "occupants_ids" => Self::OccupantsIds,
            _ => return None,
        })
    }

    fn kind(self) -> ValueKind {
        match self {
            Self::Id | Self::Name => ValueKind::Text,
            Self::CreatedAt | Self::UpdatedAt => ValueKind::Time,
            _ => ValueKind::Integer,
        }
    }

    fn sortable(self) -> bool {
        self != Self::OccupantsIds
    }

    fn allows(self, op: ChatOp) -> bool {
        match self {
            Self::OccupantsIds => {
                matches!(
                    op,
                    ChatOp::Eq | ChatOp::Ne | ChatOp::In | ChatOp::Nin | ChatOp::All
                )
            }
            Self::Name => op != ChatOp::All,
            _ => !matches!(op, ChatOp::All | ChatOp::Ctn),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageField {
    Id,
    DateSent,
    SenderId,
    RecipientId,
    CreatedAt,
    UpdatedAt,
    /// The body (`message[ctn]=hello`).
    Message,
}

impl ChatField for MessageField {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "_id" => Self::Id,
            "date_sent" => Self::DateSent,
            "sender_id" => Self::SenderId,
            "recipient_id" => Self::RecipientId,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "message" => Self::Message,
            _ => return None,
        })
    }

    fn kind(self) -> ValueKind {
        match self {
            Self::Id | Self::Message => ValueKind::Text,
            Self::CreatedAt | Self::UpdatedAt => ValueKind::Time,
            _ => ValueKind::Integer,
        }
    }

    fn sortable(self) -> bool {
        self != Self::Message
    }

    fn allows(self, op: ChatOp) -> bool {
        match self {
            Self::Message => op != ChatOp::All,
            _ => !matches!(op, ChatOp::All | ChatOp::Ctn),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Nin,
    /// Every listed value (occupants).
    All,
    /// Case-insensitive substring.
    Ctn,
}

impl ChatOp {
    fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "in" => Self::In,
            "nin" => Self::Nin,
            "all" => Self::All,
            "ctn" => Self::Ctn,
            _ => return None,
        })
    }

    fn is_list(self) -> bool {
        matches!(self, Self::In | Self::Nin | Self::All)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatFilter<F> {
    pub field: F,
    pub op: ChatOp,
    pub values: Vec<FilterValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatSort<F> {
    pub field: F,
    pub descending: bool,
}

/// One page of a chat list: filters, sort (the store adds a stable tie-break), skip, limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatQuery<F> {
    pub filters: Vec<ChatFilter<F>>,
    pub sort: ChatSort<F>,
    pub skip: i64,
    pub limit: i64,
}

pub type DialogQuery = ChatQuery<DialogField>;
pub type MessageQuery = ChatQuery<MessageField>;

impl<F: ChatField> ChatQuery<F> {
    /// Parses the list parameters; names that are not fields (`limit`, `chat_dialog_id`,
    /// `mark_as_read`, ...) are left to the caller, a known field with a bad operator or
    /// value is a validation error.
    pub fn parse(
        params: &[(String, String)],
        default_sort: ChatSort<F>,
    ) -> Result<Self, DomainError> {
        let mut query = Self {
            filters: Vec::new(),
            sort: default_sort,
            skip: 0,
            limit: DEFAULT_LIMIT,
        };
        for (key, raw) in params {
            let value = raw.trim();
            match key.as_str() {
                "skip" => query.skip = non_negative(key, value)?,
                "limit" => query.limit = non_negative(key, value)?.clamp(1, MAX_LIMIT),
                "sort_asc" | "sort_desc" => {
                    let field = F::parse(value)
                        .filter(|f| f.sortable())
                        .ok_or_else(|| DomainError::invalid(key, "is not a sortable field"))?;
                    query.sort = ChatSort {
                        field,
                        descending: key == "sort_desc",
                    };
                }
                _ => {
                    if let Some(filter) = parse_filter::<F>(key, value)? {
                        query.filters.push(filter);
                    }
                }
            }
        }
        Ok(query)
    }
}

fn non_negative(key: &str, value: &str) -> Result<i64, DomainError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| DomainError::invalid(key, "must be a non-negative integer"))
}

/// `field` or `field[op]`; `None` when the name is not a field of this list.
fn parse_filter<F: ChatField>(
    key: &str,
    value: &str,
) -> Result<Option<ChatFilter<F>>, DomainError> {
    let (name, op) = match key.split_once('[') {
        Some((name, rest)) => {
            let Some(op) = rest.strip_suffix(']') else {
                return Ok(None);
            };
            (name, Some(op))
        }
        None => (key, None),
    };
    let Some(field) = F::parse(name) else {
        return Ok(None);
    };
    let op = match op {
        None => ChatOp::Eq,
        Some(op) => {
            ChatOp::parse(op).ok_or_else(|| DomainError::invalid(key, "has an unknown operator"))?
        }
    };
    if !field.allows(op) {
        return Err(DomainError::invalid(
            key,
            "operator not supported for this field",
        ));
    }
    let raw_values: Vec<&str> = if op.is_list() {
        value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    } else {
        vec![value]
    };
    if raw_values.is_empty() {
        return Err(DomainError::invalid(key, "needs a value"));
    }
    if raw_values.len() > MAX_LIST_VALUES {
        return Err(DomainError::invalid(
            key,
            format!("takes at most {MAX_LIST_VALUES} values"),
        ));
    }
    let mut values: Vec<FilterValue> = Vec::with_capacity(raw_values.len());
    for raw in raw_values {
        let value = typed(field.kind(), raw)
            .ok_or_else(|| DomainError::invalid(key, "has a value of the wrong type"))?;
        if !values.contains(&value) {
            values.push(value);
        }
    }
    Ok(Some(ChatFilter { field, op, values }))
}

fn typed(kind: ValueKind, raw: &str) -> Option<FilterValue> {
    match kind {
        ValueKind::Integer => raw.parse().ok().map(FilterValue::Integer),
        ValueKind::Text => Some(FilterValue::Text(raw.to_string())),
        ValueKind::Time => parse_time(raw).map(|t| FilterValue::Integer(unix_millis(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn default_sort() -> ChatSort<DialogField> {
        ChatSort {
            field: DialogField::LastMessageDateSent,
            descending: true,
        }
    }

    #[test]
    fn parses_dialog_filters_sort_and_paging() {
        let q = DialogQuery::parse(
            &params(&[
                ("type[in]", "1,2"),
                ("name", "Team"),
                ("updated_at[gt]", "1700000000"),
                ("sort_asc", "created_at"),
                ("skip", "5"),
                ("limit", "500"),
                ("count", "1"),
            ]),
            default_sort(),
        )
        .unwrap();
        assert_eq!(q.filters.len(), 3);
        assert_eq!(q.filters[0].op, ChatOp::In);
        assert_eq!(
            q.filters[0].values,
            vec![FilterValue::Integer(1), FilterValue::Integer(2)]
        );
        assert_eq!(
            q.filters[2].values,
            vec![FilterValue::Integer(1_700_000_000_000)]
        );
        assert_eq!(
            q.sort,
            ChatSort {
                field: DialogField::CreatedAt,
                descending: false
            }
        );
        assert_eq!((q.skip, q.limit), (5, MAX_LIMIT));
    }

    #[test]
    fn rejects_bad_operators_values_and_sorts() {
        let bad =
            |pairs: &[(&str, &str)]| DialogQuery::parse(&params(pairs), default_sort()).is_err();
        assert!(bad(&[("type[like]", "1")]));
        assert!(bad(&[("type", "one")]));
        assert!(bad(&[("type[ctn]", "1")]));
        assert!(bad(&[("occupants_ids[gt]", "1")]));
        assert!(bad(&[("sort_desc", "occupants_ids")]));
        assert!(bad(&[("sort_desc", "password")]));
        assert!(bad(&[("skip", "-1")]));
        assert!(bad(&[("limit", "x")]));
        assert!(bad(&[("type[in]", ",")]));
    }

    #[test]
    fn ignores_parameters_that_are_not_fields() {
        let q = MessageQuery::parse(
            &params(&[
                ("chat_dialog_id", "x"),
                ("mark_as_read", "0"),
                ("date_sent[lt]", "5"),
            ]),
            ChatSort {
                field: MessageField::DateSent,
                descending: false,
            },
        )
        .unwrap();
        assert_eq!(q.filters.len(), 1);
        assert_eq!(q.filters[0].field, MessageField::DateSent);
    }
}

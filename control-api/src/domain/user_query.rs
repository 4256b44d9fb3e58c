//! Parsing of the QuickBlox user filters (`filter[]=number id in 1,2`, `order=asc string login`)
//! into a typed query the store turns into SQL.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::DomainError;
use super::model::UserId;

/// One way to find a single user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    Id(UserId),
    Login(String),
    Email(String),
    FacebookId(String),
    TwitterId(String),
    Phone(String),
    ExternalId(i64),
}

/// Filterable and sortable user columns; the only names that ever reach SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserField {
    Id,
    Login,
    Email,
    FullName,
    Phone,
    Website,
    ExternalUserId,
    FacebookId,
    TwitterId,
    BlobId,
    CreatedAt,
    UpdatedAt,
    LastRequestAt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Integer,
    Text,
    Time,
}

impl UserField {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Self::Id,
            "login" => Self::Login,
            "email" => Self::Email,
            "full_name" => Self::FullName,
            "phone" => Self::Phone,
            "website" => Self::Website,
            "external_user_id" => Self::ExternalUserId,
            "facebook_id" => Self::FacebookId,
            "twitter_id" => Self::TwitterId,
            "blob_id" => Self::BlobId,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "last_request_at" => Self::LastRequestAt,
            _ => return None,
        })
    }

    pub fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Login => "login",
            Self::Email => "email",
            Self::FullName => "full_name",
            Self::Phone => "phone",
            Self::Website => "website",
            Self::ExternalUserId => "external_user_id",
            Self::FacebookId => "facebook_id",
            Self::TwitterId => "twitter_id",
            Self::BlobId => "blob_id",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::LastRequestAt => "last_request_at",
        }
    }

    pub fn kind(self) -> FieldKind {
        match self {
            Self::Id | Self::ExternalUserId | Self::BlobId => FieldKind::Integer,
            Self::CreatedAt | Self::UpdatedAt | Self::LastRequestAt => FieldKind::Time,
            _ => FieldKind::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOp {
    Lt,
    Gt,
    Lte,
    Gte,
    Eq,
    Ne,
    Between,
    In,
    Nin,
}

impl FilterOp {
    fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "lt" => Self::Lt,
            "gt" => Self::Gt,
            "lte" => Self::Lte,
            "gte" => Self::Gte,
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "between" => Self::Between,
            "in" => Self::In,
            "nin" => Self::Nin,
            _ => return None,
        })
    }
}

/// A typed filter value; times are unix milliseconds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterValue {
    Integer(i64),
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub field: UserField,
    pub op: FilterOp,
    pub values: Vec<FilterValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    pub field: UserField,
    pub descending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserQuery {
    pub conditions: Vec<Condition>,
    /// Users carrying any of these tags.
    pub tags_any: Vec<String>,
    /// Case-insensitive substring of `full_name`.
    pub full_name_contains: Option<String>,
    pub order: Order,
    pub offset: i64,
    pub limit: i64,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            conditions: Vec::new(),
            tags_any: Vec::new(),
            full_name_contains: None,
            order: Order {
                field: UserField::Id,
                descending: false,
            },
            offset: 0,
            limit: DEFAULT_PER_PAGE,
        }
    }
}

/// QuickBlox's default page size for user lists.
pub const DEFAULT_PER_PAGE: i64 = 10;
/// Largest page QuickBlox serves; bigger requests are clamped.
pub const MAX_PER_PAGE: i64 = 100;

const FILTER_TYPES: [&str; 4] = ["string", "number", "date", "boolean"];

/// Splits `filter[]` values. The SDK joins several filters into one comma-separated value
/// (`number id in 1,2,string login eq bob`), so a comma starts a new filter only when a
/// type word and a space follow it.
pub fn split_filters(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in raw.match_indices(',') {
        let rest = raw[i + 1..].trim_start();
        if FILTER_TYPES
            .iter()
            .any(|t| rest.starts_with(t) && rest[t.len()..].starts_with(' '))
        {
            parts.push(raw[start..i].trim());
            start = i + 1;
        }
    }
    parts.push(raw[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Parses one filter: `<type> <field> <op> <value>`.
pub fn parse_filter(filter: &str) -> Result<Condition, DomainError> {
    let bad = |why: &str| DomainError::invalid("filter", format!("{why} in {filter:?}"));
    let mut words = filter.splitn(4, ' ');
    let (Some(_kind), Some(field), Some(op), Some(value)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(bad("expected '<type> <field> <operator> <value>'"));
    };
    let field = UserField::parse(field).ok_or_else(|| bad("unknown field"))?;
    let op = FilterOp::parse(op).ok_or_else(|| bad("unknown operator"))?;
    let raw_values: Vec<&str> = match op {
        FilterOp::In | FilterOp::Nin | FilterOp::Between => {
            value.split(',').map(str::trim).collect()
        }
        _ => vec![value.trim()],
    };
    if op == FilterOp::Between && raw_values.len() != 2 {
        return Err(bad("'between' takes two values"));
    }
    let values = raw_values
        .into_iter()
        .map(|v| typed_value(field, v).ok_or_else(|| bad("value of the wrong type")))
        .collect::<Result<_, _>>()?;
    Ok(Condition { field, op, values })
}

fn typed_value(field: UserField, raw: &str) -> Option<FilterValue> {
    match field.kind() {
        FieldKind::Integer => raw.parse().ok().map(FilterValue::Integer),
        FieldKind::Text => Some(FilterValue::Text(raw.to_string())),
        FieldKind::Time => parse_time(raw).map(|t| FilterValue::Integer(unix_millis(t))),
    }
}

/// Accepts unix seconds or RFC 3339, the two forms QuickBlox clients send.
pub fn parse_time(raw: &str) -> Option<OffsetDateTime> {
    if let Ok(secs) = raw.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(secs).ok();
    }
    OffsetDateTime::parse(raw, &Rfc3339).ok()
}

pub fn unix_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Parses `order`: `<asc|desc> <type> <field>` (the type word is unreliable in the SDK and
/// ignored), or the short `<asc|desc> <field>`.
pub fn parse_order(raw: &str) -> Result<Order, DomainError> {
    let bad = || {
        DomainError::invalid(
            "order",
            format!("expected '<asc|desc> <type> <field>', got {raw:?}"),
        )
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    let (direction, field) = match words.as_slice() {
        [d, _, f] | [d, f] => (*d, *f),
        _ => return Err(bad()),
    };
    let descending = match direction {
        "asc" => false,
        "desc" => true,
        _ => return Err(bad()),
    };
    let field = UserField::parse(field).ok_or_else(bad)?;
    Ok(Order { field, descending })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_sdk_joined_filters() {
        assert_eq!(
            split_filters("number id in 1,2,string login eq bob"),
            vec!["number id in 1,2", "string login eq bob"]
        );
        assert_eq!(
            split_filters("string full_name eq a,b"),
            vec!["string full_name eq a,b"]
        );
    }

    #[test]
    fn parses_typed_filters() {
        let c = parse_filter("number id in 1,2").unwrap();
        assert_eq!(c.field, UserField::Id);
        assert_eq!(c.op, FilterOp::In);
        assert_eq!(
            c.values,
            vec![FilterValue::Integer(1), FilterValue::Integer(2)]
        );
        let c = parse_filter("date created_at gt 2024-01-01T00:00:00Z").unwrap();
        assert_eq!(c.values, vec![FilterValue::Integer(1_704_067_200_000)]);
    }

    #[test]
    fn rejects_unknown_fields_operators_and_bad_values() {
        assert!(parse_filter("string password eq x").is_err());
        assert!(parse_filter("string login like x").is_err());
        assert!(parse_filter("number id eq abc").is_err());
        assert!(parse_filter("number id between 1").is_err());
        assert!(parse_filter("login").is_err());
    }

    #[test]
    fn parses_order_with_and_without_type() {
        let o = parse_order("desc string created_at").unwrap();
        assert!(o.descending);
        assert_eq!(o.field, UserField::CreatedAt);
        assert_eq!(parse_order("asc login").unwrap().field, UserField::Login);
        assert!(parse_order("sideways id").is_err());
    }
}

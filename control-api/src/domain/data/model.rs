//! Custom-object classes, their typed fields, records and permissions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::model::{AppId, UserId};

/// The scalar types of a field; a field is one of them or an array of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scalar {
    Integer,
    Float,
    Boolean,
    String,
    /// Unix seconds, or a date string as sent.
    Date,
    /// `[longitude, latitude]`.
    Location,
    /// A blob id (the file itself lives in content).
    File,
}

impl Scalar {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "integer" | "int" => Scalar::Integer,
            "float" | "number" => Scalar::Float,
            "boolean" | "bool" => Scalar::Boolean,
            "string" | "text" => Scalar::String,
            "date" => Scalar::Date,
            "location" => Scalar::Location,
            "file" => Scalar::File,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scalar::Integer => "integer",
            Scalar::Float => "float",
            Scalar::Boolean => "boolean",
            Scalar::String => "string",
            Scalar::Date => "date",
            Scalar::Location => "location",
            Scalar::File => "file",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldType {
    pub scalar: Scalar,
    pub array: bool,
}

impl FieldType {
    /// `integer`, `string[]`, `array:string` (and `array` alone for strings).
    pub fn parse(spec: &str) -> Option<Self> {
        let spec = spec.trim();
        if let Some(inner) = spec.strip_suffix("[]") {
            return Scalar::parse(inner).map(|scalar| Self {
                scalar,
                array: true,
            });
        }
        if let Some(inner) = spec.strip_prefix("array:") {
            return Scalar::parse(inner).map(|scalar| Self {
                scalar,
                array: true,
            });
        }
        if spec.eq_ignore_ascii_case("array") {
            return Some(Self {
                scalar: Scalar::String,
                array: true,
            });
        }
        Scalar::parse(spec).map(|scalar| Self {
            scalar,
            array: false,
        })
    }

    pub fn name(self) -> String {
        if self.array {
            format!("{}[]", self.scalar.name())
        } else {
            self.scalar.name().to_string()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
}

/// Who may do an action on a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "access", rename_all = "snake_case")]
pub enum Access {
    Open,
    Owner,
    OpenForUsersIds { ids: Vec<UserId> },
    OpenForGroups { groups: Vec<String> },
    NotAllowed,
}

/// Read, update and delete access of a record (or a class's defaults for its records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub read: Access,
    pub update: Access,
    pub delete: Access,
}

impl Default for Permissions {
    /// QuickBlox's record defaults: anyone of the application reads, the owner writes.
    fn default() -> Self {
        Self {
            read: Access::Open,
            update: Access::Owner,
            delete: Access::Owner,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Update,
    Delete,
}

impl Permissions {
    pub fn of(&self, action: Action) -> &Access {
        match action {
            Action::Read => &self.read,
            Action::Update => &self.update,
            Action::Delete => &self.delete,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DataClass {
    pub id: i64,
    pub app_id: AppId,
    pub name: String,
    pub fields: Vec<FieldDef>,
    /// Defaults of every record; a record may override them.
    pub permissions: Permissions,
    /// Whether users may create records (QuickBlox's class-level `create`).
    pub create_allowed: bool,
    pub created_at: OffsetDateTime,
}

impl DataClass {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// 24 hex digits, like the SDKs' `_id`.
    pub id: String,
    pub app_id: AppId,
    pub class_id: i64,
    pub user_id: UserId,
    pub parent_id: Option<String>,
    /// The typed field values by name.
    pub fields: Map<String, Value>,
    /// Per-record overrides of the class defaults.
    pub permissions: Option<Permissions>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

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

    /// QuickBlox's spelling on the wire (`Integer`, `String`, ...).
    pub fn wire_name(self) -> &'static str {
        match self {
            Scalar::Integer => "Integer",
            Scalar::Float => "Float",
            Scalar::Boolean => "Boolean",
            Scalar::String => "String",
            Scalar::Date => "Date",
            Scalar::Location => "Location",
            Scalar::File => "File",
        }
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
    /// `integer`, `string[]`, `array:string` (and `array` alone for strings), and
    /// QuickBlox's `String_a` for an array of strings.
    pub fn parse(spec: &str) -> Option<Self> {
        let spec = spec.trim();
        if let Some(inner) = spec.strip_suffix("[]").or_else(|| spec.strip_suffix("_a")) {
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

/// What a file field of a record holds: the file's metadata, its bytes being in blob
/// storage under [`FileRef::storage_key`]. The wire shape of QuickBlox's File model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// 24 hex digits, generated by the server.
    pub file_id: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
}

impl FileRef {
    /// The file a field value names, if it is one (and its id is ours: 24 hex digits,
    /// so the storage key below stays a safe relative path).
    pub fn from_value(value: &Value) -> Option<Self> {
        let file: Self = serde_json::from_value(value.clone()).ok()?;
        let ours = file.file_id.len() == 24 && file.file_id.bytes().all(|b| b.is_ascii_hexdigit());
        ours.then_some(file)
    }

    /// `<app id>/data/<file id>`: beside the content blobs (`<app id>/<32 hex uid>`),
    /// never clashing with them.
    pub fn storage_key(&self, app: AppId) -> String {
        format!("{}/data/{}", app.0, self.file_id)
    }

    pub fn to_value(&self) -> Value {
        // A struct of strings and an integer always serializes.
        serde_json::to_value(self).expect("serializable")
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

impl Record {
    /// The files its file fields hold.
    pub fn files(&self) -> impl Iterator<Item = FileRef> + '_ {
        self.fields.values().filter_map(FileRef::from_value)
    }
}

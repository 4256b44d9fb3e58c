//! Record queries: QuickBlox's operators parsed from request parameters and evaluated on
//! decoded records (see the module doc of [`super`] for why in Rust).

use std::cmp::Ordering;

use serde_json::Value;

use super::model::{DataClass, Record};
use crate::domain::DomainError;

/// `limit` when none is given, and the most one request may ask for (QuickBlox's).
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Fields every record has besides its class's.
pub const SYSTEM_FIELDS: [&str; 5] = ["_id", "_parent_id", "user_id", "created_at", "updated_at"];

/// Parameters that are not conditions.
const RESERVED: [&str; 8] = [
    "limit",
    "skip",
    "sort_asc",
    "sort_desc",
    "count",
    "token",
    "output",
    "permissions",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Nin,
    All,
    Ctn,
    Or,
    Between,
    Near,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "ne" => Op::Ne,
            "in" => Op::In,
            "nin" => Op::Nin,
            "all" => Op::All,
            "ctn" => Op::Ctn,
            "or" => Op::Or,
            "between" => Op::Between,
            "near" => Op::Near,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: String,
}

#[derive(Clone, Debug)]
pub struct DataQuery {
    pub conditions: Vec<Condition>,
    /// Field and descending; `None`: creation order.
    pub sort: Option<(String, bool)>,
    pub limit: usize,
    pub skip: usize,
    pub count: bool,
}

impl DataQuery {
    /// Parses `field=v`, `field[op]=v`, `sort_asc|sort_desc`, `limit`, `skip`, `count=1`.
    /// Names must be fields of `class` or system fields.
    pub fn parse(pairs: &[(String, String)], class: &DataClass) -> Result<Self, DomainError> {
        let mut query = DataQuery {
            conditions: Vec::new(),
            sort: None,
            limit: DEFAULT_LIMIT,
            skip: 0,
            count: false,
        };
        for (key, value) in pairs {
            let key = key.strip_suffix("[]").unwrap_or(key);
            match key {
                "limit" => query.limit = number(key, value)?.min(MAX_LIMIT),
                "skip" => query.skip = number(key, value)?,
                "count" => query.count = value.trim() == "1" || value.trim() == "true",
                "sort_asc" | "sort_desc" => {
                    known(class, value.trim())?;
                    query.sort = Some((value.trim().to_string(), key == "sort_desc"));
                }
                _ if RESERVED.contains(&key) || key.starts_with("permissions[") => {}
                _ => {
                    let (field, op) = match key.split_once('[') {
                        Some((field, rest)) => {
                            let name = rest.strip_suffix(']').unwrap_or(rest);
                            let op = Op::parse(name).ok_or_else(|| {
                                DomainError::invalid(field, format!("unknown operator {name:?}"))
                            })?;
                            (field, op)
                        }
                        None => (key, Op::Eq),
                    };
                    known(class, field)?;
                    query.conditions.push(Condition {
                        field: field.to_string(),
                        op,
                        value: value.clone(),
                    });
                }
            }
        }
        Ok(query)
    }

    pub fn matches(&self, record: &Record) -> bool {
        self.conditions.iter().all(|c| condition_holds(c, record))
    }

    /// Sorts `records` in place by the requested field (nulls last), else by creation.
    pub fn sort(&self, records: &mut [Record]) {
        let Some((field, descending)) = &self.sort else {
            return;
        };
        records.sort_by(|a, b| {
            let (x, y) = (value_of(a, field), value_of(b, field));
            let order = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => return Ordering::Greater,
                (false, true) => return Ordering::Less,
                _ => compare(&x, &y).unwrap_or(Ordering::Equal),
            };
            if *descending {
                order.reverse()
            } else {
                order
            }
        });
    }
}

fn known(class: &DataClass, field: &str) -> Result<(), DomainError> {
    if SYSTEM_FIELDS.contains(&field) || class.field(field).is_some() {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("is not a field of {}", class.name),
        ))
    }
}

fn number(key: &str, value: &str) -> Result<usize, DomainError> {
    value
        .trim()
        .parse()
        .map_err(|_| DomainError::invalid(key, "must be a non-negative integer"))
}

/// A record's value of a field, system fields included (timestamps in unix seconds).
pub fn value_of(record: &Record, field: &str) -> Value {
    match field {
        "_id" => Value::String(record.id.clone()),
        "_parent_id" => record.parent_id.clone().map_or(Value::Null, Value::String),
        "user_id" => Value::from(record.user_id.0),
        "created_at" => Value::from(record.created_at.unix_timestamp()),
        "updated_at" => Value::from(record.updated_at.unix_timestamp()),
        _ => record.fields.get(field).cloned().unwrap_or(Value::Null),
    }
}

fn condition_holds(c: &Condition, record: &Record) -> bool {
    let value = value_of(record, &c.field);
    let items: Vec<&Value> = match &value {
        Value::Array(items) if !is_location(&value) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let list = || c.value.split(',').map(str::trim).filter(|v| !v.is_empty());
    let any = |pred: &dyn Fn(&Value) -> bool| items.iter().any(|v| pred(v));
    match c.op {
        Op::Eq => any(&|v| equals(v, &c.value)),
        Op::Ne => !any(&|v| equals(v, &c.value)),
        Op::Lt => any(&|v| cmp_raw(v, &c.value) == Some(Ordering::Less)),
        Op::Lte => any(&|v| matches!(cmp_raw(v, &c.value), Some(Ordering::Less | Ordering::Equal))),
        Op::Gt => any(&|v| cmp_raw(v, &c.value) == Some(Ordering::Greater)),
        Op::Gte => any(&|v| {
            matches!(
                cmp_raw(v, &c.value),
                Some(Ordering::Greater | Ordering::Equal)
            )
        }),
        Op::In | Op::Or => list().any(|raw| any(&|v| equals(v, raw))),
        Op::Nin => !list().any(|raw| any(&|v| equals(v, raw))),
        Op::All => list().all(|raw| any(&|v| equals(v, raw))),
        Op::Ctn => {
            let needle = c.value.to_lowercase();
            any(&|v| {
                v.as_str()
                    .is_some_and(|s| s.to_lowercase().contains(&needle))
            })
        }
        Op::Between => {
            let bounds: Vec<&str> = list().collect();
            let [low, high] = bounds[..] else {
                return false;
            };
            any(&|v| {
                matches!(cmp_raw(v, low), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp_raw(v, high), Some(Ordering::Less | Ordering::Equal))
            })
        }
        Op::Near => near(&value, &c.value),
    }
}

fn is_location(value: &Value) -> bool {
    matches!(value, Value::Array(items) if items.len() == 2 && items.iter().all(Value::is_number))
}

fn equals(value: &Value, raw: &str) -> bool {
    match value {
        Value::String(s) => s == raw,
        Value::Bool(b) => matches!((b, raw), (true, "true" | "1") | (false, "false" | "0")),
        Value::Number(_) => cmp_raw(value, raw) == Some(Ordering::Equal),
        _ => false,
    }
}

fn cmp_raw(value: &Value, raw: &str) -> Option<Ordering> {
    match value {
        Value::Number(n) => n.as_f64()?.partial_cmp(&raw.trim().parse::<f64>().ok()?),
        Value::String(s) => Some(s.as_str().cmp(raw)),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Mean Earth radius (IUGG), for the haversine distance of `near`.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// `location[near]=lon,lat;radius_in_metres`.
fn near(value: &Value, raw: &str) -> bool {
    let Some((point, radius)) = raw.split_once(';') else {
        return false;
    };
    let coords: Vec<f64> = point
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let (Ok(radius), &[lon, lat]) = (radius.trim().parse::<f64>(), &coords[..]) else {
        return false;
    };
    let Value::Array(items) = value else {
        return false;
    };
    let (Some(rlon), Some(rlat)) = (
        items.first().and_then(Value::as_f64),
        items.get(1).and_then(Value::as_f64),
    ) else {
        return false;
    };
    let (p1, p2) = (lat.to_radians(), rlat.to_radians());
    let dp = (rlat - lat).to_radians();
    let dl = (rlon - lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin() <= radius
}

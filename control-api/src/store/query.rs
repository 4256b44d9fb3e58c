//! A small SQL text builder with positional `$N` binds, for the dynamic user listing.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::AnyPool;
use sqlx::{Any, Row};

use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreResult;
use crate::domain::user_query::{Condition, FilterOp, FilterValue, UserQuery};

/// One page of the rows of `table` a user owns (`app_id`, `user_id`), newest first by id,
/// and how many there are in all.
pub(crate) async fn owned_page<T>(
    pool: &AnyPool,
    table: &str,
    columns: &str,
    (app, user): (AppId, UserId),
    (limit, offset): (i64, i64),
    decode: fn(&AnyRow) -> sqlx::Result<T>,
) -> StoreResult<(Vec<T>, i64)> {
    let count = format!("SELECT COUNT(*) AS n FROM {table} WHERE app_id = $1 AND user_id = $2");
    let total: i64 = sqlx::query(&count)
        .bind(app.0)
        .bind(user.0)
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    let page = format!(
        "SELECT {columns} FROM {table} WHERE app_id = $1 AND user_id = $2 \
         ORDER BY id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query(&page)
        .bind(app.0)
        .bind(user.0)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    let items = rows.iter().map(decode).collect::<Result<_, _>>()?;
    Ok((items, total))
}

#[derive(Clone, Debug)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push_str(&format!("${}", self.binds.len()));
        self
    }

    /// `(v1, v2, …)`, each bound: the right side of an `IN`.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self.push(")")
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for bind in &self.binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

impl From<&FilterValue> for Bind {
    fn from(value: &FilterValue) -> Self {
        match value {
            FilterValue::Integer(v) => Bind::Int(*v),
            FilterValue::Text(v) => Bind::Text(v.clone()),
        }
    }
}

/// Appends ` WHERE ...` for the users of `app` matching `query` (column names come only
/// from the `UserField` whitelist; every value is bound).
pub(crate) fn push_user_filter(sql: &mut Sql, app: i64, query: &UserQuery) {
    sql.push(" WHERE app_id = ").bind(Bind::Int(app));
    for condition in &query.conditions {
        sql.push(" AND ");
        push_condition(sql, condition);
    }
    if !query.tags_any.is_empty() {
        sql.push(" AND id IN (SELECT user_id FROM user_tags WHERE app_id = ")
            .bind(Bind::Int(app))
            .push(" AND tag IN (");
        push_list(sql, query.tags_any.iter().map(|t| Bind::Text(t.clone())));
        sql.push("))");
    }
    if let Some(part) = &query.full_name_contains {
        let pattern = format!("%{}%", escape_like(&part.to_lowercase()));
        sql.push(" AND LOWER(full_name) LIKE ")
            .bind(Bind::Text(pattern))
            .push(" ESCAPE '\\'");
    }
}

fn push_condition(sql: &mut Sql, condition: &Condition) {
    let column = condition.field.column();
    let first = || Bind::from(&condition.values[0]);
    let op = match condition.op {
        FilterOp::Lt => "<",
        FilterOp::Gt => ">",
        FilterOp::Lte => "<=",
        FilterOp::Gte => ">=",
        FilterOp::Eq => "=",
        FilterOp::Ne => "<>",
        FilterOp::Between => {
            sql.push(column)
                .push(" BETWEEN ")
                .bind(first())
                .push(" AND ");
            sql.bind(Bind::from(&condition.values[1]));
            return;
        }
        FilterOp::In | FilterOp::Nin => {
            let not = if condition.op == FilterOp::Nin {
                " NOT"
            } else {
                ""
            };
            sql.push(column).push(not).push(" IN (");
            push_list(sql, condition.values.iter().map(Bind::from));
            sql.push(")");
            return;
        }
    };
    sql.push(column).push(" ").push(op).push(" ").bind(first());
}

fn push_list(sql: &mut Sql, values: impl Iterator<Item = Bind>) {
    for (i, value) in values.enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(value);
    }
}

pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

//! `switchboard class ...`: custom-object classes of an application, against the same
//! store `serve` uses.

use anyhow::Context;
use control_api::domain::data::{
    parse_access, Access, DataClass, FieldDef, FieldType, Permissions,
};
use control_api::domain::model::AppId;
use control_api::DomainError;
use serde_json::{json, Value};

use crate::apps_cmd::open;
use crate::cli::{ClassCommand, LogFormat};
use crate::telemetry;

pub async fn run(command: ClassCommand) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Human, "warn");
    match command {
        ClassCommand::Create {
            app,
            name,
            fields,
            read,
            update,
            delete,
            json,
            store,
        } => {
            let fields = fields
                .iter()
                .map(|f| field(f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let defaults = Permissions::default();
            let permissions = Permissions {
                read: access(read.as_deref(), defaults.read)?,
                update: access(update.as_deref(), defaults.update)?,
                delete: access(delete.as_deref(), defaults.delete)?,
            };
            let (control, store) = open(&store).await?;
            let result = control
                .create_class(AppId(app), &name, fields, Some(permissions))
                .await;
            store.close().await;
            let class = result.map_err(|e| explain(e, app))?;
            if json {
                println!("{}", describe(&class));
            } else {
                println!("Created class {} in application {app}", class.name);
                print_class(&class);
            }
        }
        ClassCommand::List { app, json, store } => {
            let (control, store) = open(&store).await?;
            let classes = control.list_classes(AppId(app)).await;
            store.close().await;
            let classes = classes?;
            if json {
                let list: Vec<Value> = classes.iter().map(describe).collect();
                println!("{}", Value::Array(list));
            } else if classes.is_empty() {
                println!("No classes in application {app}.");
            } else {
                for class in &classes {
                    println!("{}", class.name);
                    print_class(class);
                }
            }
        }
        ClassCommand::Delete { app, name, store } => {
            let (control, store) = open(&store).await?;
            let result = control.delete_class(AppId(app), &name).await;
            store.close().await;
            match result {
                Ok(()) => println!("Deleted class {name} with its records."),
                Err(DomainError::NotFound) => {
                    anyhow::bail!("no class {name:?} in application {app}")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// `year:integer` → a field definition.
fn field(spec: &str) -> anyhow::Result<FieldDef> {
    let (name, kind) = spec
        .split_once(':')
        .with_context(|| format!("--field {spec:?}: expected NAME:TYPE"))?;
    let kind = FieldType::parse(kind).with_context(|| {
        format!(
            "--field {spec:?}: unknown type {kind:?} (integer, float, boolean, string, date, \
             location, file, or TYPE[] for an array)"
        )
    })?;
    Ok(FieldDef {
        name: name.trim().to_string(),
        kind,
    })
}

/// `open`, `owner`, `not_allowed`, `users:1,2`, `groups:a,b`.
fn access(spec: Option<&str>, default: Access) -> anyhow::Result<Access> {
    let Some(spec) = spec else {
        return Ok(default);
    };
    let value = match spec.split_once(':') {
        Some(("users", ids)) => json!({"access": "open_for_users_ids", "ids": ids}),
        Some(("groups", tags)) => json!({"access": "open_for_groups", "groups": tags}),
        _ => json!({ "access": spec }),
    };
    parse_access(&value).map_err(|e| anyhow::anyhow!("access {spec:?}: {e}"))
}

fn explain(error: DomainError, app: i64) -> anyhow::Error {
    match error {
        DomainError::Store(control_api::StoreError::Conflict { .. }) => {
            anyhow::anyhow!("application {app} already has a class of that name")
        }
        DomainError::Store(e) => anyhow::anyhow!("no application {app}, or the store failed: {e}"),
        DomainError::Validation(fields) => {
            let text: Vec<String> = fields.iter().map(|(f, m)| format!("{f}: {m}")).collect();
            anyhow::anyhow!(text.join("; "))
        }
        other => other.into(),
    }
}

fn describe(class: &DataClass) -> Value {
    json!({
        "name": class.name,
        "application_id": class.app_id,
        "fields": class.fields.iter().map(|f| json!({"name": f.name, "type": f.kind.name()})).collect::<Vec<_>>(),
        "permissions": class.permissions,
    })
}

fn print_class(class: &DataClass) {
    for f in &class.fields {
        println!("  {:<17} {}", f.name, f.kind.name());
    }
    let p = &class.permissions;
    println!(
        "  permissions       read {:?}, update {:?}, delete {:?}",
        p.read, p.update, p.delete
    );
}

//! `switchboard class ...`: custom-object classes of an application, against the same
//! store `serve` uses.

use std::sync::Arc;

use anyhow::Context;
use control_api::domain::data::{
    parse_access, Access, DataClass, FieldDef, FieldType, Permissions,
};
use control_api::domain::model::AppId;
use control_api::storage::open_blob_storage;
use control_api::{ControlPlane, DomainError, Store};
use serde_json::{json, Value};

use crate::apps_cmd::open;
use crate::cli::{ClassCommand, LogFormat, StoreArgs};
use crate::config::{FileConfig, StoreSettings};
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
            create,
            json,
            store,
        } => {
            let fields = field_list(&fields)?;
            let defaults = Permissions::default();
            let permissions = Permissions {
                read: access(read.as_deref(), defaults.read)?,
                update: access(update.as_deref(), defaults.update)?,
                delete: access(delete.as_deref(), defaults.delete)?,
            };
            let create = create_access(create.as_deref())?.unwrap_or(true);
            let (control, store) = open(&store).await?;
            let result = control
                .define_class(AppId(app), &name, fields, Some(permissions), create)
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
        ClassCommand::Update {
            app,
            name,
            fields,
            read,
            update,
            delete,
            create,
            json,
            store,
        } => {
            let fields = field_list(&fields)?;
            let create = create_access(create.as_deref())?;
            let (control, store) = open(&store).await?;
            let result = async {
                let current = control
                    .data_class(AppId(app), &name)
                    .await
                    .map_err(|e| match e {
                        DomainError::NotFound => {
                            anyhow::anyhow!("no class {name:?} in application {app}")
                        }
                        other => other.into(),
                    })?;
                let p = current.permissions;
                let permissions = Permissions {
                    read: access(read.as_deref(), p.read)?,
                    update: access(update.as_deref(), p.update)?,
                    delete: access(delete.as_deref(), p.delete)?,
                };
                control
                    .update_class(AppId(app), &name, fields, Some(permissions), create)
                    .await
                    .map_err(|e| explain(e, app))
            }
            .await;
            store.close().await;
            let class = result?;
            if json {
                println!("{}", describe(&class));
            } else {
                println!("Updated class {} in application {app}", class.name);
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
        ClassCommand::Delete {
            app,
            name,
            blob_storage,
            store,
        } => {
            let (control, store) = open_with_blobs(&store, blob_storage).await?;
            let result = control.delete_class(AppId(app), &name).await;
            store.close().await;
            match result {
                Ok(()) => println!("Deleted class {name} with its records and their files."),
                Err(DomainError::NotFound) => {
                    anyhow::bail!("no class {name:?} in application {app}")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The control plane with the blob storage `serve` uses, so deleted records' files go too.
async fn open_with_blobs(
    args: &StoreArgs,
    blob_storage: Option<String>,
) -> anyhow::Result<(ControlPlane, Arc<dyn Store>)> {
    let file = FileConfig::load(args.config.as_deref())?;
    let settings = StoreSettings::resolve(args, &file);
    let spec = blob_storage
        .or(file.blob_storage)
        .unwrap_or_else(|| "local".into());
    let blobs = open_blob_storage(&spec, &settings.data_dir).map_err(anyhow::Error::msg)?;
    let (control, store) = open(args).await?;
    Ok((control.with_blob_storage(blobs), store))
}

fn field_list(specs: &[String]) -> anyhow::Result<Vec<FieldDef>> {
    specs.iter().map(|f| field(f)).collect()
}

/// `--create open|not_allowed`.
fn create_access(spec: Option<&str>) -> anyhow::Result<Option<bool>> {
    match spec {
        None => Ok(None),
        Some("open") => Ok(Some(true)),
        Some("not_allowed") => Ok(Some(false)),
        Some(other) => anyhow::bail!("--create {other:?}: expected open or not_allowed"),
    }
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
        "create": if class.create_allowed { "open" } else { "not_allowed" },
    })
}

fn print_class(class: &DataClass) {
    for f in &class.fields {
        println!("  {:<17} {}", f.name, f.kind.name());
    }
    let p = &class.permissions;
    println!(
        "  permissions       read {:?}, update {:?}, delete {:?}, create {}",
        p.read,
        p.update,
        p.delete,
        if class.create_allowed {
            "open"
        } else {
            "not_allowed"
        }
    );
}

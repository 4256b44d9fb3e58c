//! `switchboard app ...`: application management against the same store `serve` uses
//! (SQLite's WAL mode lets both run at once).

use std::sync::Arc;

use anyhow::Context;
use control_api::domain::model::{App, AppId};
use control_api::{open_store, ControlConfig, ControlPlane, DomainError, Store, SystemClock};
use serde_json::json;

use crate::cli::{AppCommand, LogFormat, StoreArgs};
use crate::config::{FileConfig, StoreSettings};
use crate::telemetry;

pub async fn run(command: AppCommand) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Human, "warn");
    match command {
        AppCommand::Create { name, json, store } => {
            let (control, store) = open(&store).await?;
            let app = control.create_app(&name).await?;
            store.close().await;
            if json {
                println!("{}", credentials(&app));
            } else {
                println!("Created application {:?}", app.name);
                print_app(&app);
            }
        }
        AppCommand::List { json, store } => {
            let (control, store) = open(&store).await?;
            let apps = control.list_apps().await?;
            store.close().await;
            if json {
                let list: Vec<_> = apps.iter().map(with_name).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if apps.is_empty() {
                println!("No applications yet: `switchboard app create --name NAME` makes one.");
            } else {
                for app in &apps {
                    let default = if app.is_default { " (default)" } else { "" };
                    println!("{}{default}", app.name);
                    print_app(app);
                }
            }
        }
        AppCommand::Delete { id, store } => {
            let (control, store) = open(&store).await?;
            let result = control.delete_app(AppId(id)).await;
            store.close().await;
            match result {
                Ok(()) => println!("Deleted application {id} with its users and sessions."),
                Err(DomainError::NotFound) => anyhow::bail!("no application with id {id}"),
                Err(e) => return Err(e.into()),
            }
        }
        AppCommand::RotateKey { id, json, store } => {
            let (control, store) = open(&store).await?;
            let result = control.rotate_api_key(AppId(id)).await;
            store.close().await;
            match result {
                Ok(app) if json => println!(
                    "{}",
                    json!({"application_id": app.id, "api_key": app.api_key})
                ),
                Ok(app) => {
                    println!("New API key of application {id} (the old one no longer works):");
                    println!("  api key           {}", api_key(&app));
                }
                Err(DomainError::NotFound) => anyhow::bail!("no application with id {id}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The control plane over the store `serve` uses (found the same way).
pub(crate) async fn open(args: &StoreArgs) -> anyhow::Result<(ControlPlane, Arc<dyn Store>)> {
    let file = FileConfig::load(args.config.as_deref())?;
    let settings = StoreSettings::resolve(args, &file);
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let store = open_store(&settings.store, &settings.data_dir)
        .await
        .with_context(|| format!("opening store {}", settings.display_store()))?;
    let store = Arc::new(store);
    let control = ControlPlane::new(
        store.clone(),
        Arc::new(SystemClock),
        ControlConfig::default(),
    );
    Ok((control, store))
}

fn credentials(app: &App) -> serde_json::Value {
    json!({
        "application_id": app.id,
        "auth_key": app.auth_key,
        "auth_secret": app.auth_secret,
        "account_key": app.account_key,
        "api_key": app.api_key,
    })
}

fn with_name(app: &App) -> serde_json::Value {
    let mut value = credentials(app);
    value["name"] = json!(app.name);
    value["default"] = json!(app.is_default);
    value
}

fn print_app(app: &App) {
    println!("  application id    {}", app.id);
    println!("  auth key          {}", app.auth_key);
    println!("  auth secret       {}", app.auth_secret);
    println!("  account key       {}", app.account_key);
    println!("  api key (owner)   {}", api_key(app));
}

fn api_key(app: &App) -> &str {
    app.api_key
        .as_deref()
        .unwrap_or("none: `switchboard app rotate-key ID` makes one")
}

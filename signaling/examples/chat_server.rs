//! A chat-only server for measuring the XMPP path: the REST API (for the load tester's
//! sign-ups and sessions) and XMPP over TCP on loopback, over a fresh SQLite store, with
//! nothing else of the all-in-one binary. Prints the same banner lines `loadtest chat`
//! reads from `switchboard serve`, so `loadtest chat --api … --target …` drives it as is.
//!
//! ```sh
//! cargo run --release -p signaling --example chat_server -- /tmp/chat-data
//! ```
//!
//! The stanza rate limit is off (as `--xmpp-stanza-rate 0` turns it off in the binary), so
//! a load run can spread its rate over few connections.

use std::sync::Arc;

use control_api::{open_store, ControlConfig, ControlPlane, SystemClock};
use prometheus_client::registry::Registry;
use signaling::XmppConfig;

fn main() -> std::io::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("switchboard-chat-server"));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(
        open_store("sqlite", &dir)
            .await
            .map_err(std::io::Error::other)?,
    );
    let config = ControlConfig {
        chat_endpoint: "localhost".into(),
        ..ControlConfig::default()
    };
    let control = ControlPlane::new(store, Arc::new(SystemClock), config);
    let (app, _) = control
        .ensure_default_app()
        .await
        .map_err(std::io::Error::other)?;
    let mut registry = Registry::default();
    let xmpp = XmppConfig {
        stanza_rate: u32::MAX,
        stanza_burst: u32::MAX,
        ..XmppConfig::default()
    };
    let ctx = signaling::context(control.clone(), "localhost".into(), xmpp, &mut registry);
    let xmpp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("  REST API (HTTP)   http://{}", http_listener.local_addr()?);
    println!("  XMPP (TCP)        {}", xmpp_listener.local_addr()?);
    println!("  application id    {}", app.id);
    println!("  auth key          {}", app.auth_key);
    println!("  auth secret       {}", app.auth_secret);
    println!(
        "Switchboard ready (chat_server example, pid {})",
        std::process::id()
    );
    let rest = control_api::http::app(control, registry);
    tokio::spawn(async move { axum::serve(http_listener, rest).await });
    signaling::driver::tcp::serve(xmpp_listener, ctx, std::future::pending()).await;
    Ok(())
}

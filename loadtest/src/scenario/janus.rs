//! A Janus API client over WebSocket (subprotocol `janus-protocol`), as `janus.js` speaks
//! it: one session per connection, handles attached to `janus.plugin.videoroom`, requests
//! matched to replies by transaction, events queued in arrival order. Every wait is bounded.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on connecting (TCP + WebSocket handshake).
pub const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// Bound on any one request's answer (Janus answers in milliseconds; a `configure` with an
/// SDP offer takes the longest).
pub const CALL_LIMIT: Duration = Duration::from_secs(10);

/// The server said no: a Janus error or a videoroom `error_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
    pub code: u64,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} refused: {} {}", self.what, self.code, self.reason)
    }
}

impl std::error::Error for Refused {}

/// The connection could not be opened: nothing listens there, or it is not Janus.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// The server closed the connection (or it broke) mid-run.
#[derive(Debug)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server closed the Janus connection")
    }
}

impl std::error::Error for Closed {}

pub struct Janus {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_tx: u64,
    /// Messages that arrived while a request waited for its own answer.
    events: VecDeque<Value>,
    /// Janus token auth (`-A`): sent on every request.
    token: Option<String>,
    pub session: u64,
}

/// What a plugin answered: its `data` and the `jsep`, if any.
#[derive(Debug, Clone)]
pub struct PluginReply {
    pub data: Value,
    pub jsep: Option<Value>,
}

impl Janus {
    /// Connects and creates a session.
    pub async fn open(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let mut req = url
            .into_client_request()
            .with_context(|| format!("{url:?} is not a WebSocket URL"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().expect("a valid header value"),
        );
        // TCP_NODELAY, as browsers set it: small request frames go out at once.
        let connect = tokio_tungstenite::connect_async_with_config(req, None, true);
        let ws = match tokio::time::timeout(CONNECT_LIMIT, connect).await {
            Err(_) => return Err(Unreachable(format!("no WebSocket at {url} within 10 s")).into()),
            Ok(Err(e)) => return Err(Unreachable(describe_connect(url, &e)).into()),
            Ok(Ok((ws, _))) => ws,
        };
        let mut j = Self {
            ws,
            next_tx: 0,
            events: VecDeque::new(),
            token,
            session: 0,
        };
        let v = j.call(json!({"janus": "create"}), "create session").await?;
        j.session = v["data"]["id"]
            .as_u64()
            .with_context(|| format!("create session: no id in {v}"))?;
        Ok(j)
    }

    /// Attaches a videoroom handle.
    pub async fn attach(&mut self) -> anyhow::Result<u64> {
        let v = self
            .call(
                json!({"janus": "attach", "session_id": self.session, "plugin": "janus.plugin.videoroom"}),
                "attach",
            )
            .await?;
        v["data"]["id"]
            .as_u64()
            .with_context(|| format!("attach: no handle id in {v}"))
    }

    /// A videoroom `message`: its answer (sync `success` or the async event), or
    /// [`Refused`] with the plugin's `error_code`.
    pub async fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<PluginReply> {
        let what = body["request"].as_str().unwrap_or("message").to_string();
        let mut req = json!({"janus": "message", "session_id": self.session, "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        let v = self.call(req, &what).await?;
        let data = v["plugindata"]["data"].clone();
        if let Some(code) = data["error_code"].as_u64() {
            return Err(Refused {
                what,
                code,
                reason: data["error"].as_str().unwrap_or_default().to_string(),
            }
            .into());
        }
        Ok(PluginReply {
            data,
            jsep: v.get("jsep").cloned(),
        })
    }

    /// A keepalive; its `ack` is dropped when read.
    pub async fn keepalive(&mut self) -> anyhow::Result<()> {
        let tx = self.transaction();
        let req = json!({"janus": "keepalive", "session_id": self.session, "transaction": tx});
        self.send(req).await
    }

    /// Destroys the session (best effort, bounded) and closes the connection.
    pub async fn close(mut self) {
        let req = json!({"janus": "destroy", "session_id": self.session});
        let _ = tokio::time::timeout(Duration::from_secs(1), self.call(req, "destroy")).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }

    /// The next event: queued ones first. Cancel-safe (a select may drop it).
    pub async fn next_event(&mut self) -> anyhow::Result<Value> {
        if let Some(v) = self.events.pop_front() {
            return Ok(v);
        }
        loop {
            let v = self.read().await?;
            if v["janus"] != "ack" {
                return Ok(v);
            }
        }
    }

    fn transaction(&mut self) -> String {
        self.next_tx += 1;
        format!("lt{}", self.next_tx)
    }

    async fn send(&mut self, mut req: Value) -> anyhow::Result<()> {
        if let Some(t) = &self.token {
            req["token"] = json!(t);
        }
        self.ws
            .send(Message::text(req.to_string()))
            .await
            .map_err(|_| anyhow::Error::new(Closed))
    }

    async fn read(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.ws.next().await {
                None | Some(Err(_)) => return Err(Closed.into()),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .with_context(|| format!("the server sent a frame that is not JSON: {t}"));
                }
                Some(Ok(Message::Close(_))) => return Err(Closed.into()),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Sends `req` with a fresh transaction and returns its answer (not the `ack`); other
    /// messages are queued as events. A Janus `error` is [`Refused`].
    async fn call(&mut self, mut req: Value, what: &str) -> anyhow::Result<Value> {
        let tx = self.transaction();
        req["transaction"] = json!(tx);
        self.send(req).await?;
        let wait = async {
            loop {
                let v = self.read().await?;
                if v["transaction"] == json!(tx) && v["janus"] != "ack" {
                    return Ok::<_, anyhow::Error>(v);
                }
                if v["janus"] != "ack" {
                    self.events.push_back(v);
                }
            }
        };
        let v = match tokio::time::timeout(CALL_LIMIT, wait).await {
            Ok(v) => v?,
            Err(_) => bail!("{what}: no answer within {}s", CALL_LIMIT.as_secs()),
        };
        if v["janus"] == "error" {
            return Err(Refused {
                what: what.to_string(),
                code: v["error"]["code"].as_u64().unwrap_or(0),
                reason: v["error"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            }
            .into());
        }
        Ok(v)
    }
}

fn describe_connect(url: &str, e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("cannot connect to {url}: connection refused (is the server running?)")
        }
        E::Http(resp) => format!(
            "{url} answered the WebSocket upgrade with HTTP {} (not a Janus endpoint, or a refused token)",
            resp.status()
        ),
        other => format!("cannot connect to {url}: {other}"),
    }
}

/// A feed id as text, whether the server sent a number or a string (`string_ids`).
pub fn feed_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The publishers an event or `joined` reply announces, as (id as sent, id as text).
pub fn publishers(data: &Value) -> Vec<(Value, String)> {
    data["publishers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p["id"].clone(), feed_text(&p["id"])?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_read_numeric_and_string_ids() {
        let ours = json!({"videoroom": "joined", "publishers": [{"id": 100001, "streams": []}]});
        let janus =
            json!({"videoroom": "event", "publishers": [{"id": "100002"}, {"display": "x"}]});
        assert_eq!(
            publishers(&ours),
            vec![(json!(100001), "100001".to_string())]
        );
        assert_eq!(
            publishers(&janus),
            vec![(json!("100002"), "100002".to_string())]
        );
        assert!(publishers(&json!({"videoroom": "event"})).is_empty());
    }
}

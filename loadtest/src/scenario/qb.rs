//! The QuickBlox REST calls the scenarios need: signed sessions, sign-up, app credentials.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;

/// An application's credentials (`switchboard app create --json` prints them).
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// Application id.
    #[arg(long)]
    pub app_id: Option<u64>,
    #[arg(long)]
    pub auth_key: Option<String>,
    #[arg(long)]
    pub auth_secret: Option<String>,
    /// A file holding `switchboard app create --json` output, instead of the three flags above.
    #[arg(long)]
    pub app_json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: u64,
    pub key: String,
    pub secret: String,
}

impl AppArgs {
    pub fn resolve(&self) -> anyhow::Result<App> {
        if let Some(path) = &self.app_json {
            return read_app_json(path);
        }
        match (&self.app_id, &self.auth_key, &self.auth_secret) {
            (Some(id), Some(key), Some(secret)) => Ok(App {
                id: *id,
                key: key.clone(),
                secret: secret.clone(),
            }),
            _ => bail!("give --app-json FILE or all of --app-id, --auth-key, --auth-secret"),
        }
    }

    pub fn given(&self) -> bool {
        self.app_json.is_some() || self.app_id.is_some()
    }
}

fn read_app_json(path: &Path) -> anyhow::Result<App> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not `app create --json` output", path.display()))?;
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .with_context(|| format!("{}: no {k:?}", path.display()))
    };
    Ok(App {
        id: v
            .get("application_id")
            .and_then(Value::as_u64)
            .with_context(|| format!("{}: no application_id", path.display()))?,
        key: s("auth_key")?,
        secret: s("auth_secret")?,
    })
}

/// The signature of `POST /session.json`: HMAC-SHA1 over the sorted `k=v` pairs, raw values.
pub fn sign(params: &[(String, String)], secret: &str) -> String {
    let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(pairs.join("&").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A REST client of one application on one base URL.
#[derive(Clone)]
pub struct Rest {
    pub http: reqwest::Client,
    pub base: String,
    pub app: App,
}

impl Rest {
    pub fn new(base: &str, app: App) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            app,
        })
    }

    /// `POST /session.json`, an app session or (with a login) a user session: the token.
    pub async fn session(&self, user: Option<(&str, &str)>) -> anyhow::Result<String> {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut params = vec![
            ("application_id".to_string(), self.app.id.to_string()),
            ("auth_key".to_string(), self.app.key.clone()),
            ("nonce".to_string(), rand::random::<u32>().to_string()),
            ("timestamp".to_string(), ts.to_string()),
        ];
        if let Some((login, password)) = user {
            params.push(("user[login]".into(), login.into()));
            params.push(("user[password]".into(), password.into()));
        }
        let signature = sign(&params, &self.app.secret);
        params.push(("signature".into(), signature));
        let v = self
            .send(self.http.post(self.url("/session.json")).form(&params))
            .await?;
        v["session"]["token"]
            .as_str()
            .map(str::to_string)
            .context("session response without a token")
    }

    /// `POST /users.json` with an app session: the new user's id.
    pub async fn sign_up(
        &self,
        app_token: &str,
        login: &str,
        password: &str,
    ) -> anyhow::Result<u64> {
        let form = [("user[login]", login), ("user[password]", password)];
        let v = self
            .send(
                self.http
                    .post(self.url("/users.json"))
                    .header("QB-Token", app_token)
                    .form(&form),
            )
            .await?;
        v["user"]["id"]
            .as_u64()
            .context("sign-up response without a user id")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; a non-2xx answer is an error naming the status.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.map_err(describe)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(describe)?;
        if !status.is_success() {
            bail!("http {}", status.as_u16());
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

/// A refused or failed TCP connect: the server is not listening (any more).
#[derive(Debug)]
pub struct ConnectRefused;

impl std::fmt::Display for ConnectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connect refused")
    }
}

impl std::error::Error for ConnectRefused {}

/// A short, stable error kind for the report.
pub fn describe(e: reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        return ConnectRefused.into();
    }
    anyhow::anyhow!(if e.is_timeout() {
        "timeout"
    } else {
        "transport"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_protocol_example() {
        // PROTOCOLS.md §3.1: the string is the sorted raw pairs joined with `&`.
        let params: Vec<(String, String)> = [
            ("timestamp", "1795497779"),
            ("application_id", "1"),
            ("user[password]", "alicepass"),
            ("auth_key", "key"),
            ("nonce", "8572"),
            ("user[login]", "alice"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut mac = Hmac::<Sha1>::new_from_slice(b"secret").unwrap();
        mac.update(b"application_id=1&auth_key=key&nonce=8572&timestamp=1795497779&user[login]=alice&user[password]=alicepass");
        assert_eq!(
            sign(&params, "secret"),
            hex::encode(mac.finalize().into_bytes())
        );
    }
}

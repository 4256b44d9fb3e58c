//! QuickBlox addressing: user JIDs `{user_id}-{app_id}@domain[/resource]` and room JIDs
//! `{app_id}_{dialog_id}@muc.domain[/{user_id}]`.

use control_api::domain::model::{AppId, UserId};

/// A user of an application: the node of a QuickBlox JID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserAddr {
    pub app: AppId,
    pub user: UserId,
}

impl UserAddr {
    /// Parses `{user_id}-{app_id}`, the node (and SASL authcid) the SDKs use.
    pub fn parse_node(node: &str) -> Option<Self> {
        let (user, app) = node.split_once('-')?;
        Some(Self {
            app: AppId(app.parse().ok()?),
            user: UserId(user.parse().ok()?),
        })
    }

    pub fn node(&self) -> String {
        format!("{}-{}", self.user.0, self.app.0)
    }

    pub fn bare(&self, domain: &str) -> String {
        format!("{}@{domain}", self.node())
    }

    pub fn full(&self, domain: &str, resource: &str) -> String {
        format!("{}@{domain}/{resource}", self.node())
    }
}

/// A dialog's room.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomAddr {
    pub app: AppId,
    pub dialog: String,
}

impl RoomAddr {
    pub fn bare(&self, domain: &str) -> String {
        format!("{}_{}@muc.{domain}", self.app.0, self.dialog)
    }

    pub fn occupant(&self, domain: &str, user: UserId) -> String {
        format!("{}/{}", self.bare(domain), user.0)
    }
}

/// Where a stanza's `to` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No `to`, or our own domain: the server itself.
    Server,
    User {
        addr: UserAddr,
        resource: Option<String>,
    },
    Room {
        room: RoomAddr,
        nick: Option<String>,
    },
    /// Anything else: another domain or a malformed address.
    Unknown,
}

/// Resolves `to` against our domain (any `muc.*` host is the MUC service, as the SDKs
/// derive it from the chat endpoint).
pub fn resolve(to: Option<&str>, domain: &str) -> Target {
    let Some(to) = to.filter(|t| !t.is_empty()) else {
        return Target::Server;
    };
    let (bare, resource) = match to.split_once('/') {
        Some((bare, resource)) => (bare, Some(resource.to_string())),
        None => (to, None),
    };
    let Some((node, host)) = bare.split_once('@') else {
        return if bare.eq_ignore_ascii_case(domain) {
            Target::Server
        } else {
            Target::Unknown
        };
    };
    if host.eq_ignore_ascii_case(domain) {
        return match UserAddr::parse_node(node) {
            Some(addr) => Target::User { addr, resource },
            None => Target::Unknown,
        };
    }
    if host.starts_with("muc.") {
        if let Some((app, dialog)) = node.split_once('_') {
            if let Ok(app) = app.parse() {
                let room = RoomAddr {
                    app: AppId(app),
                    dialog: dialog.to_string(),
                };
                return Target::Room {
                    room,
                    nick: resource,
                };
            }
        }
    }
    Target::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_users_rooms_and_the_server() {
        let domain = "localhost";
        assert_eq!(resolve(None, domain), Target::Server);
        assert_eq!(resolve(Some("localhost"), domain), Target::Server);
        let user = UserAddr {
            app: AppId(1),
            user: UserId(12),
        };
        assert_eq!(
            resolve(Some("12-1@localhost/web"), domain),
            Target::User {
                addr: user,
                resource: Some("web".into())
            }
        );
        assert_eq!(user.full(domain, "web"), "12-1@localhost/web");
        let room = RoomAddr {
            app: AppId(1),
            dialog: "5f00aa".into(),
        };
        assert_eq!(
            resolve(Some("1_5f00aa@muc.localhost/12"), domain),
            Target::Room {
                room: room.clone(),
                nick: Some("12".into())
            }
        );
        assert_eq!(
            room.occupant(domain, UserId(12)),
            "1_5f00aa@muc.localhost/12"
        );
        assert_eq!(resolve(Some("alice@elsewhere"), domain), Target::Unknown);
        assert_eq!(resolve(Some("alice@localhost"), domain), Target::Unknown);
    }
}

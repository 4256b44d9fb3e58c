//! ICE servers for calls: the STUN/TURN URLs of the relay, with credentials minted in
//! the TURN REST API scheme (draft-uberti-behave-turn-rest): username
//! `<expiry unix seconds>:<user id>`, credential `base64(HMAC-SHA1(secret, username))`.
//! The relay checks them with the same shared secret, so no database is shared.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use time::OffsetDateTime;

use super::model::UserId;
use super::{ControlPlane, DomainError};

/// Where the TURN relay is and the secret it shares with the control plane.
#[derive(Clone)]
pub struct IceConfig {
    pub secret: Vec<u8>,
    /// `stun:` URLs.
    pub stun_urls: Vec<String>,
    /// `turn:` and `turns:` URLs (UDP, TCP, TLS).
    pub turn_urls: Vec<String>,
    /// How long minted credentials stay valid. They must outlive the call: a TURN
    /// Refresh with expired credentials fails and the allocation lapses.
    pub credential_ttl: Duration,
}

impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("credential_ttl", &self.credential_ttl)
            .finish_non_exhaustive()
    }
}

/// Fresh credentials and the URLs to use them with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServers {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub username: String,
    pub credential: String,
    pub expires_at: OffsetDateTime,
}

/// Mints REST API credentials for `user`, valid for `ttl` from `now`.
pub fn mint(config: &IceConfig, user: UserId, now: OffsetDateTime) -> IceServers {
    let expires_at = now + config.credential_ttl;
    let username = format!("{}:{}", expires_at.unix_timestamp(), user);
    let mut mac = Hmac::<Sha1>::new_from_slice(&config.secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    IceServers {
        stun_urls: config.stun_urls.clone(),
        turn_urls: config.turn_urls.clone(),
        username,
        credential,
        expires_at,
    }
}

impl ControlPlane {
    /// ICE servers with fresh TURN credentials for a logged-in user.
    pub fn ice_servers(&self, user: UserId) -> Result<IceServers, DomainError> {
        let config = self.config.ice.as_ref().ok_or(DomainError::NotFound)?;
        Ok(mint(config, user, self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_rest_api_scheme() {
        let config = IceConfig {
            secret: b"s3cret".to_vec(),
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn_urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            credential_ttl: Duration::from_secs(3600),
        };
        let now = time::macros::datetime!(2026-11-25 12:00:00 UTC);
        let servers = mint(&config, UserId(42), now);
        assert_eq!(
            servers.username,
            format!("{}:42", now.unix_timestamp() + 3600)
        );
        assert_eq!(servers.expires_at, now + Duration::from_secs(3600));
        // base64 of a 20-byte HMAC-SHA1.
        assert_eq!(servers.credential.len(), 28);
        let again = mint(&config, UserId(42), now);
        assert_eq!(again.credential, servers.credential);
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}

//! Join grants: the JWT (HS256) the control plane mints for a logged-in occupant of a dialog and
//! the SFU verifies with the shared secret, without reading the control plane's database.
//!
//! Claims: `iss` "switchboard", `app` (application id), `sub` (user id, decimal string, JWT
//! convention), `room` (the room / dialog id as text), `role` (`publisher` may publish and
//! subscribe, `subscriber` may only subscribe), `iat`, `exp` (Unix seconds).
//!
//! Expiry is checked against the `now` the caller passes (an injected wall clock), never the
//! system clock, so tests step past expiry without sleeping.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The issuer every grant names.
pub const ISSUER: &str = "switchboard";

/// What a grant lets its holder do in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantRole {
    Publisher,
    Subscriber,
}

/// A verified grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub app: i64,
    pub user: u64,
    pub room: String,
    pub role: GrantRole,
    /// Unix seconds.
    pub expires: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    app: i64,
    sub: String,
    room: String,
    role: GrantRole,
    iat: u64,
    exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("malformed or forged grant")]
    Invalid,
    #[error("grant expired")]
    Expired,
}

/// The shared secret, as bytes.
#[derive(Clone)]
pub struct GrantKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

impl GrantKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Mints a grant valid from `now` (Unix seconds) for `ttl_secs`.
    pub fn mint(
        &self,
        app: i64,
        user: u64,
        room: &str,
        role: GrantRole,
        now: u64,
        ttl_secs: u64,
    ) -> String {
        let claims = Claims {
            iss: ISSUER.into(),
            app,
            sub: user.to_string(),
            room: room.into(),
            role,
            iat: now,
            exp: now + ttl_secs,
        };
        // Encoding HS256 claims of plain strings and integers cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims")
    }

    /// Verifies signature, algorithm, issuer and expiry (against `now`, Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Grant, GrantError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is ours to check against the injected clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[ISSUER]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| GrantError::Invalid)?;
        let c = data.claims;
        if now >= c.exp {
            return Err(GrantError::Expired);
        }
        let user = c.sub.parse().map_err(|_| GrantError::Invalid)?;
        Ok(Grant {
            app: c.app,
            user,
            room: c.room,
            role: c.role,
            expires: c.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn mint_then_verify() {
        let key = GrantKey::new(b"secret");
        let t = key.mint(3, 42, "dialog1", GrantRole::Publisher, NOW, 60);
        let g = key.verify(&t, NOW + 59).unwrap();
        assert_eq!(
            g,
            Grant {
                app: 3,
                user: 42,
                room: "dialog1".into(),
                role: GrantRole::Publisher,
                expires: NOW + 60,
            }
        );
    }

    #[test]
    fn expired_forged_and_garbage_are_refused() {
        let key = GrantKey::new(b"secret");
        let t = key.mint(3, 42, "r", GrantRole::Subscriber, NOW, 60);
        assert_eq!(key.verify(&t, NOW + 60), Err(GrantError::Expired));
        let other = GrantKey::new(b"other secret");
        assert_eq!(other.verify(&t, NOW), Err(GrantError::Invalid));
        assert_eq!(key.verify("not.a.jwt", NOW), Err(GrantError::Invalid));
        assert_eq!(key.verify("", NOW), Err(GrantError::Invalid));
        // A token signed with "none" or another algorithm is refused.
        let none = format!(
            "{}.{}.",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(key.verify(&none, NOW), Err(GrantError::Invalid));
    }
}

//! Long-term credentials (RFC 8489 §9.2) from the TURN REST API scheme
//! (draft-uberti-behave-turn-rest): the control plane mints `expiry:userid` usernames
//! with password `base64(HMAC-SHA1(secret, username))`, so this relay needs only the
//! shared secret, never a database. Static users are optional for operators.
//!
//! Nonces are stateless: a timestamp and an HMAC of it with the client's transport
//! address, under a key that lives only in this process. A 401 therefore stores nothing,
//! and a nonce older than the window earns 438 Stale Nonce.
//!
//! Time is an input: every check takes `unix_now` (seconds), read by the driver.

use std::collections::HashMap;
use std::net::SocketAddr;

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

use super::error::RequestError;

/// A nonce: 16 hex digits of timestamp, 16 of MAC.
pub const NONCE_LEN: usize = 32;

/// A username this relay accepts, resolved to its long-term key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// MD5(username ":" realm ":" password), the key of MESSAGE-INTEGRITY (RFC 8489 §9.2.2).
    pub key: [u8; 16],
    /// Whose quota the allocation counts against: the REST user id, or the static username.
    pub quota_user: String,
}

#[derive(Debug, Clone)]
pub struct Authenticator {
    realm: String,
    secret: Option<Vec<u8>>,
    static_users: HashMap<String, String>,
    nonce_key: [u8; 32],
    nonce_lifetime_secs: u64,
}

impl Authenticator {
    /// `nonce_key` must be random per process (the driver draws it).
    pub fn new(
        realm: String,
        secret: Option<Vec<u8>>,
        static_users: HashMap<String, String>,
        nonce_key: [u8; 32],
        nonce_lifetime_secs: u64,
    ) -> Self {
        Self {
            realm,
            secret,
            static_users,
            nonce_key,
            nonce_lifetime_secs,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Resolves `username` to a key. REST usernames are `expiry:userid` (the expiry in
    /// Unix seconds); a name that is a static user is looked up first.
    pub fn credential(&self, username: &str, unix_now: u64) -> Result<Credential, RequestError> {
        if let Some(password) = self.static_users.get(username) {
            return Ok(Credential {
                key: long_term_key(username, &self.realm, password),
                quota_user: username.to_string(),
            });
        }
        let secret = self.secret.as_ref().ok_or(RequestError::BadCredentials)?;
        let (expiry, user) = username
            .split_once(':')
            .ok_or(RequestError::BadCredentials)?;
        let expiry: u64 = expiry.parse().map_err(|_| RequestError::BadCredentials)?;
        if expiry <= unix_now {
            return Err(RequestError::BadCredentials);
        }
        let password = rest_password(secret, username);
        let quota_user = if user.is_empty() { username } else { user };
        Ok(Credential {
            key: long_term_key(username, &self.realm, &password),
            quota_user: quota_user.to_string(),
        })
    }

    /// A fresh nonce for the client at `client`, as ASCII.
    pub fn nonce(&self, client: SocketAddr, unix_now: u64) -> [u8; NONCE_LEN] {
        let mut out = [0u8; NONCE_LEN];
        hex_into(&unix_now.to_be_bytes(), &mut out[..16]);
        hex_into(&self.nonce_mac(client, unix_now), &mut out[16..]);
        out
    }

    /// Whether `nonce` was minted by this process for `client` within the window.
    pub fn check_nonce(
        &self,
        nonce: &[u8],
        client: SocketAddr,
        unix_now: u64,
    ) -> Result<(), RequestError> {
        if nonce.len() != NONCE_LEN {
            return Err(RequestError::StaleNonce);
        }
        let mut ts = [0u8; 8];
        if !unhex_into(&nonce[..16], &mut ts) {
            return Err(RequestError::StaleNonce);
        }
        let minted = u64::from_be_bytes(ts);
        let mut expected = [0u8; 16];
        hex_into(&self.nonce_mac(client, minted), &mut expected);
        let mac_ok = expected
            .iter()
            .zip(&nonce[16..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        let fresh = minted <= unix_now && unix_now - minted < self.nonce_lifetime_secs;
        if mac_ok && fresh {
            Ok(())
        } else {
            Err(RequestError::StaleNonce)
        }
    }

    fn nonce_mac(&self, client: SocketAddr, ts: u64) -> [u8; 8] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.nonce_key).expect("HMAC takes any key length");
        mac.update(&ts.to_be_bytes());
        match client.ip() {
            std::net::IpAddr::V4(ip) => mac.update(&ip.octets()),
            std::net::IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&client.port().to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }
}

/// The REST API password for `username`: base64(HMAC-SHA1(secret, username)).
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// RFC 8489 §9.2.2 with the default (MD5) password algorithm.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xF)];
    }
}

fn unhex_into(hex: &[u8], out: &mut [u8]) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (nibble(hex[2 * i]), nibble(hex[2 * i + 1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn auth() -> Authenticator {
        let mut users = HashMap::new();
        users.insert("operator".to_string(), "pw".to_string());
        Authenticator::new(
            "switchboard".into(),
            Some(b"s3cret".to_vec()),
            users,
            [7; 32],
            600,
        )
    }

    #[test]
    fn rest_password_matches_coturn_and_the_draft() {
        // turnutils_uclient -W s3cret computes the same: base64(HMAC-SHA1).
        assert_eq!(rest_password(b"s3cret", "1800000600:alice"), {
            let mut mac = Hmac::<Sha1>::new_from_slice(b"s3cret").unwrap();
            mac.update(b"1800000600:alice");
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        });
        // RFC 8489 §9.2.2 example shape: MD5 of "user:realm:pass".
        assert_eq!(
            long_term_key("user", "realm", "pass"),
            <[u8; 16]>::from(Md5::digest(b"user:realm:pass"))
        );
    }

    #[test]
    fn rest_credentials_expire_by_the_injected_clock() {
        let a = auth();
        let name = format!("{}:alice", NOW + 60);
        let c = a.credential(&name, NOW).unwrap();
        assert_eq!(c.quota_user, "alice");
        let password = rest_password(b"s3cret", &name);
        assert_eq!(c.key, long_term_key(&name, "switchboard", &password));
        assert!(a.credential(&name, NOW + 59).is_ok());
        assert_eq!(
            a.credential(&name, NOW + 60),
            Err(RequestError::BadCredentials)
        );
        assert_eq!(
            a.credential(&name, NOW + 61),
            Err(RequestError::BadCredentials)
        );
    }

    #[test]
    fn malformed_rest_usernames_are_refused() {
        let a = auth();
        for bad in ["alice", "soon:alice", "", ":", "-1:x"] {
            assert_eq!(
                a.credential(bad, NOW),
                Err(RequestError::BadCredentials),
                "{bad}"
            );
        }
        let no_secret = Authenticator::new("r".into(), None, HashMap::new(), [0; 32], 600);
        assert!(no_secret
            .credential(&format!("{}:a", NOW + 60), NOW)
            .is_err());
    }

    #[test]
    fn static_users_work_beside_rest() {
        let a = auth();
        let c = a.credential("operator", NOW).unwrap();
        assert_eq!(c.key, long_term_key("operator", "switchboard", "pw"));
        assert_eq!(c.quota_user, "operator");
    }

    #[test]
    fn nonces_are_bound_to_the_client_and_expire() {
        let a = auth();
        let client: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let nonce = a.nonce(client, NOW);
        assert!(a.check_nonce(&nonce, client, NOW).is_ok());
        assert!(a.check_nonce(&nonce, client, NOW + 599).is_ok());
        assert_eq!(
            a.check_nonce(&nonce, client, NOW + 600),
            Err(RequestError::StaleNonce)
        );
        let other: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        assert!(a.check_nonce(&nonce, other, NOW).is_err());
        // From the future (a forged timestamp) or garbage: stale, never a panic.
        let mut forged = nonce;
        forged[15] = b'f';
        assert!(a.check_nonce(&forged, client, NOW).is_err());
        assert!(a.check_nonce(b"short", client, NOW).is_err());
        assert!(a.check_nonce(&[b'z'; NONCE_LEN], client, NOW).is_err());
        // Another process (another key) does not accept it.
        let b = Authenticator::new("switchboard".into(), None, HashMap::new(), [8; 32], 600);
        assert!(b.check_nonce(&nonce, client, NOW).is_err());
    }
}

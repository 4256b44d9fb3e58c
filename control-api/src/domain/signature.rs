//! The `POST /session.json` signature: HMAC over the sorted request parameters.
//!
//! The SDK builds the string from its parameters: a scalar is `k=v`; an object's members
//! are `k[sub]=v`, sorted and joined with `&` into one string; all strings are sorted and
//! joined with `&`. Values are raw (not URL-encoded). 40 hex digits mean HMAC-SHA1, 64 mean
//! HMAC-SHA256 (`config.hash = 'sha256'`).

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Rebuilds the signed string from decoded `(key, value)` pairs, `signature` excluded.
pub fn signed_string(params: &[(String, String)]) -> String {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (key, value) in params {
        if key == "signature" {
            continue;
        }
        let top = key.split('[').next().unwrap_or(key);
        let entry = format!("{key}={value}");
        match groups.iter_mut().find(|(name, _)| *name == top) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push((top, vec![entry])),
        }
    }
    let mut joined: Vec<String> = groups
        .into_iter()
        .map(|(_, mut entries)| {
            entries.sort();
            entries.join("&")
        })
        .collect();
    joined.sort();
    joined.join("&")
}

/// Constant-time check of a hex signature against the secret.
pub fn verify(secret: &str, signed: &str, signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex) else {
        return false;
    };
    match expected.len() {
        20 => mac::<Hmac<Sha1>>(secret, signed)
            .verify_slice(&expected)
            .is_ok(),
        32 => mac::<Hmac<Sha256>>(secret, signed)
            .verify_slice(&expected)
            .is_ok(),
        _ => false,
    }
}

/// Signs like the SDK does (SHA-1); used by tests and the load tester.
pub fn sign_sha1(secret: &str, signed: &str) -> String {
    hex::encode(mac::<Hmac<Sha1>>(secret, signed).finalize().into_bytes())
}

pub fn sign_sha256(secret: &str, signed: &str) -> String {
    hex::encode(mac::<Hmac<Sha256>>(secret, signed).finalize().into_bytes())
}

fn mac<M: Mac + hmac::digest::KeyInit>(secret: &str, signed: &str) -> M {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(signed.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn builds_the_string_the_sdk_signs() {
        let params = pairs(&[
            ("application_id", "1"),
            ("auth_key", "key"),
            ("nonce", "8572"),
            ("signature", "ignored"),
            ("timestamp", "1795497779"),
            ("user[password]", "alicepass"),
            ("user[login]", "alice"),
        ]);
        assert_eq!(
            signed_string(&params),
            "application_id=1&auth_key=key&nonce=8572&timestamp=1795497779&user[login]=alice&user[password]=alicepass"
        );
    }

    #[test]
    fn verifies_sha1_and_sha256_and_rejects_others() {
        let s = "application_id=1&auth_key=key";
        assert!(verify("secret", s, &sign_sha1("secret", s)));
        assert!(verify("secret", s, &sign_sha256("secret", s)));
        assert!(!verify("other", s, &sign_sha1("secret", s)));
        assert!(!verify("secret", s, "zz"));
        assert!(!verify("secret", s, "abcd"));
    }
}

//! Random identifiers and secrets.

use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use time::OffsetDateTime;

/// An opaque session token: 160 random bits, hex.
pub fn session_token() -> String {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A 24-hex id shaped like a BSON ObjectId (4 bytes of seconds, 8 random), as the SDKs
/// expect for `_id` fields; time-prefixed so ids sort by creation.
pub fn object_id(now: OffsetDateTime) -> String {
    let mut bytes = [0u8; 12];
    let secs = now.unix_timestamp() as u32;
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    rand::thread_rng().fill_bytes(&mut bytes[4..]);
    hex::encode(bytes)
}

/// A credential string of `len` alphanumeric characters (auth keys and secrets).
pub fn credential(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

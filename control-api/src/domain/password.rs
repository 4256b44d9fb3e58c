//! Password hashing with argon2id, off the async runtime (a hash takes tens of milliseconds).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// Argon2 hashes at once. Each takes 19 MiB (argon2's default memory cost), and the
/// allocator keeps what it was given: unbounded, 32 concurrent logins left the process
/// at 1 GiB. One per core keeps peak memory small and loses no throughput.
fn hashing_permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores)
    })
}

/// Runs one argon2 computation off the async runtime, within the concurrency bound.
async fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    // The semaphore is never closed, so acquiring cannot fail.
    let _permit = hashing_permits()
        .acquire()
        .await
        .expect("hashing semaphore");
    tokio::task::spawn_blocking(work)
        .await
        .expect("password hashing task panicked")
}

use super::error::DomainError;

/// QuickBlox's minimum password length.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Bounds hashing work an attacker can ask for; far above any real password.
pub const MAX_PASSWORD_LEN: usize = 128;

pub fn validate(password: &str) -> Result<(), DomainError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("is too short (minimum is {MIN_PASSWORD_LEN} characters)"),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("is too long (maximum is {MAX_PASSWORD_LEN} characters)"),
        ));
    }
    Ok(())
}

pub async fn hash(password: String) -> Result<String, DomainError> {
    bounded(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| DomainError::invalid("password", e.to_string()))
}

/// Verifies against a throwaway hash so an unknown login costs as long as a wrong password.
pub async fn verify_nothing(password: String) {
    bounded(move || {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let stored = DUMMY.get_or_init(|| {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            Argon2::default()
                .hash_password(b"switchboard timing equaliser", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        if let Ok(parsed) = PasswordHash::new(stored) {
            let _ = Argon2::default().verify_password(password.as_bytes(), &parsed);
        }
    })
    .await
}

/// True when `password` matches `stored`; a corrupt stored hash never matches.
pub async fn verify(password: String, stored: String) -> bool {
    if password.len() > MAX_PASSWORD_LEN * 4 {
        return false;
    }
    bounded(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
}

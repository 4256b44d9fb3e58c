//! What can go wrong in the domain; the HTTP layer maps each variant to QuickBlox's shape.

use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The session request's signature (or app id / auth key) does not verify.
    #[error("unexpected signature")]
    BadSignature,
    /// A request that needs a session came without `QB-Token`.
    #[error("token is required")]
    TokenRequired,
    /// The token is unknown or its session expired.
    #[error("required session does not exist")]
    SessionNotFound,
    /// Wrong user credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    /// Field-level validation messages, QuickBlox style (`base` for the whole request).
    #[error("validation failed: {0:?}")]
    Validation(Vec<(String, String)>),
    /// An upload exceeded the configured size limit (bytes).
    #[error("file is too large (maximum {0} bytes)")]
    TooLarge(u64),
    /// A dependency (the store) failed; the request may succeed later.
    #[error("service unavailable")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![(field.into(), message.into())])
    }
}

//! Errors of the core, each mapped in one place to its STUN error code (RFC 8489 §14.8,
//! RFC 8656 §18.5) or to a silent drop.

/// A datagram that is not a well-formed STUN message. Requests this broken get no
/// answer (RFC 8489 §6.3: malformed messages are discarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("shorter than its header or length says")]
    Truncated,
    #[error("not a STUN message")]
    NotStun,
    #[error("length not a multiple of four or beyond the datagram")]
    BadLength,
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    #[error("attribute after FINGERPRINT")]
    AfterFingerprint,
    #[error("malformed attribute {0:#06x}")]
    BadAttribute(u16),
}

/// Why a request was refused; each variant is one STUN error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("unknown comprehension-required attribute {0:#06x}")]
    UnknownAttribute(u16),
    #[error("authentication required")]
    Unauthorized,
    #[error("credentials refused")]
    BadCredentials,
    #[error("peer address refused by policy")]
    Forbidden,
    #[error("no allocation for this 5-tuple, or one exists already")]
    AllocationMismatch,
    #[error("stale nonce")]
    StaleNonce,
    #[error("address family not supported")]
    AddressFamilyNotSupported,
    #[error("request made with another user's credentials")]
    WrongCredentials,
    #[error("only UDP relaying is supported")]
    UnsupportedTransport,
    #[error("peer address family does not match the allocation")]
    PeerAddressFamilyMismatch,
    #[error("allocation quota reached")]
    QuotaReached,
    #[error("no relay port available")]
    InsufficientCapacity,
    #[error("server error")]
    ServerError,
}

impl RequestError {
    /// The STUN error code and reason phrase (RFC 8489 §14.8, RFC 8656 §18.5).
    pub fn code(self) -> (u16, &'static str) {
        match self {
            RequestError::BadRequest(_) => (400, "Bad Request"),
            RequestError::UnknownAttribute(_) => (420, "Unknown Attribute"),
            RequestError::Unauthorized | RequestError::BadCredentials => (401, "Unauthorized"),
            RequestError::Forbidden => (403, "Forbidden"),
            RequestError::AllocationMismatch => (437, "Allocation Mismatch"),
            RequestError::StaleNonce => (438, "Stale Nonce"),
            RequestError::AddressFamilyNotSupported => (440, "Address Family not Supported"),
            RequestError::WrongCredentials => (441, "Wrong Credentials"),
            RequestError::UnsupportedTransport => (442, "Unsupported Transport Protocol"),
            RequestError::PeerAddressFamilyMismatch => (443, "Peer Address Family Mismatch"),
            RequestError::QuotaReached => (486, "Allocation Quota Reached"),
            RequestError::InsufficientCapacity => (508, "Insufficient Capacity"),
            RequestError::ServerError => (500, "Server Error"),
        }
    }

    /// Whether the answer carries REALM and a fresh NONCE (RFC 8489 §9.2.4).
    pub fn challenges(self) -> bool {
        matches!(
            self,
            RequestError::Unauthorized | RequestError::BadCredentials | RequestError::StaleNonce
        )
    }

    /// A bounded label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            RequestError::BadRequest(_) => "bad_request",
            RequestError::UnknownAttribute(_) => "unknown_attribute",
            RequestError::Unauthorized => "unauthenticated",
            RequestError::BadCredentials => "bad_credentials",
            RequestError::Forbidden => "forbidden_peer",
            RequestError::AllocationMismatch => "allocation_mismatch",
            RequestError::StaleNonce => "stale_nonce",
            RequestError::AddressFamilyNotSupported => "address_family",
            RequestError::WrongCredentials => "wrong_credentials",
            RequestError::UnsupportedTransport => "unsupported_transport",
            RequestError::PeerAddressFamilyMismatch => "peer_address_family",
            RequestError::QuotaReached => "quota",
            RequestError::InsufficientCapacity => "capacity",
            RequestError::ServerError => "server_error",
        }
    }
}

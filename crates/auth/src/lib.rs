//! Authentication and authorization for the admin API.
//!
//! - Passwords are stored only as Argon2id PHC strings.
//! - Sessions are HS256 JWTs signed with a random per-install secret (never derived from a password),
//!   the algorithm pinned on verification (so `alg: none` or an RSA/HMAC confusion is refused), short
//!   expiry, no leeway.
//! - API tokens for automation are random, shown once, stored as SHA-256, revocable.
//! - RBAC: roles grant `read`/`write` on resources; every endpoint asks [`Rbac::allows`].
//! - Logins are throttled per user and per client address.

mod limiter;
mod password;
mod rbac;
mod session;
mod token;

pub use limiter::LoginLimiter;
pub use password::{generate_password, hash_password, verify_password};
pub use rbac::{Action, Rbac, Resource, Role};
pub use session::{Claims, SessionKeys};
pub use token::{hash_api_token, new_api_token, API_TOKEN_PREFIX};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

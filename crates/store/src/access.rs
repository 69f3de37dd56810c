//! Who may do what: API keys and their scopes, staff accounts and their sessions, and the
//! idempotency keys that make a retried request safe.

mod idempotency;
mod keys;
mod users;

pub use idempotency::Claim;
pub(crate) use keys::KnownKeys;
pub use keys::{ApiKey, KNOWN_FOR as KEYS_TRUSTED_FOR, NewApiKey};
pub use users::{LogIn, NewSession, SignedIn, User};

//! Omnihub's business rules, as plain Rust: no SQL, no HTTP.
//!
//! Each module is one domain of the merchant's world; the store crate keeps their state and
//! the HTTP crate exposes them.

#[macro_use]
mod string_enum;

pub mod access;
pub mod catalog;
pub mod clock;
pub mod conversations;
pub mod customers;
pub mod destinations;
pub mod events;
pub mod id;
pub mod inventory;
pub mod money;
pub mod network;
pub mod orders;
pub mod problems;
pub mod sourcing;
pub mod users;
pub mod validation;
pub mod webhooks;

pub use clock::{Clock, Timestamp};
pub use money::Money;
pub use problems::ErrorCode;
pub use validation::{FieldError, Invalid};

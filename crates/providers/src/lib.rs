//! Everything the hub calls out to: messaging providers' APIs and SMTP servers
//! ([`messaging`]), the merchant's webhook receivers ([`webhooks`]) and NATS ([`nats`]), every
//! connection going only where the [`egress`] rule allows. A provider that is added
//! (a bridge's HTTP client, a payment provider) belongs here too.
//!
//! The rule of this crate: it never depends on the store and never calls back into it. Each
//! call receives, as plain data of the domain, everything it needs (the reply target with its
//! mail thread, the claimed delivery, the events to publish, the moment it is), and answers
//! what came of it; the server's workers read the store, call here, and record the answer.

pub mod egress;
pub mod messaging;
pub mod nats;
pub mod webhooks;

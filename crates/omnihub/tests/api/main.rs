//! The API suite: every test runs against the real server, on SQLite and on PostgreSQL.

mod helpers;
mod hostile_input;
#[path = "../common/scratch.rs"]
mod scratch;

mod answers;
mod cart_rules;
mod catalog;
mod conventions;
mod customers;
mod destinations;
mod email;
mod events;
mod fake_provider;
mod fixtures;
mod inbox;
mod inventory;
mod keys;
mod merges;
mod orders;
mod storefront;
mod webchat;
mod webhooks;

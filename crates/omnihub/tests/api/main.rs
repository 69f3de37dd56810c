//! The API suite: every test runs against the real server, on SQLite and on PostgreSQL.

mod helpers;

mod catalog;
mod conventions;
mod customers;
mod events;
mod fixtures;
mod inbox;
mod inventory;
mod merges;
mod orders;
mod webhooks;

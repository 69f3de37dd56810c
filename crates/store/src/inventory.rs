//! Inventory: levels, the movement ledger, per-channel availability, reservations.
//!
//! Every change of stock is one atomic conditional write (`… WHERE on_hand - reserved >= n`),
//! never a read-then-write, so nothing is oversold with any number of server processes. The
//! database's own CHECK constraint refuses the rest.

mod availability;
mod health;
mod levels;
mod reservations;
mod stock_view;

pub(crate) use availability::AvailabilityWatch;
pub use health::Discrepancy;
pub use levels::LevelFilter;
pub(crate) use levels::{ensure_level, move_stock};
pub(crate) use reservations::{
    PlannedReservation, Sourcing, end_reservation, plan_reservation, take_reserved, take_stock,
};
pub(crate) use stock_view::{KnownStock, StockView};

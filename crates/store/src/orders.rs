//! Orders from every channel: placing them (from a cart or from elsewhere), fulfilment from
//! any location, cancellation and returns at any location.

mod cancellation;
mod carts;
mod checkout;
mod fulfilment;
mod points;
mod reading;
mod recent_carts;
mod returns;
mod search;
mod sourcing;
mod unpaid;

pub use checkout::{ExternalLine, ExternalOrder};
pub use fulfilment::FulfillmentDraft;
pub use reading::OrderFilter;
pub(crate) use recent_carts::RecentCarts;
pub use search::{OrderSearch, OrderSummary};

//! What each channel may sell, read from the levels, and `availability.changed` for every
//! channel whose sellable quantity a write changed.

use std::collections::BTreeSet;

use omnihub_domain::Timestamp;
use omnihub_domain::catalog::StockBuffer;
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::inventory::{ChannelStock, StockMap, availability_changes};

use crate::Error;
use crate::db::events::append;
use crate::db::{Tx, placeholders, sql, sql_built};

pub(crate) async fn channel_stock(tx: &mut Tx) -> Result<Vec<ChannelStock>, Error> {
    let rows = tx
        .fetch_all(sql(
            "SELECT c.id, c.buffer_units, c.buffer_percent, cl.location_id FROM channels c \
             LEFT JOIN channel_locations cl ON cl.channel_id = c.id ORDER BY c.id, cl.position",
        ))
        .await?;
    let mut channels: Vec<ChannelStock> = Vec::new();
    for row in &rows {
        let id = row.text("id")?;
        let location = row.opt_text("location_id")?;
        if channels.last().is_none_or(|last| last.id != id) {
            channels.push(ChannelStock {
                id,
                buffer: StockBuffer {
                    units: row.opt_int("buffer_units")?,
                    percent: row.opt_int("buffer_percent")?,
                },
                locations: Vec::new(),
            });
        }
        if let (Some(location), Some(last)) = (location, channels.last_mut()) {
            last.locations.push(location);
        }
    }
    Ok(channels)
}

/// What is available of the given SKUs, at every location.
pub(crate) async fn stock_of(tx: &mut Tx, skus: &BTreeSet<String>) -> Result<StockMap, Error> {
    let mut stock = StockMap::new();
    if skus.is_empty() {
        return Ok(stock);
    }
    let text = format!(
        "SELECT sku, location_id, on_hand, reserved FROM inventory_levels WHERE sku IN ({})",
        placeholders(1, skus.len())
    );
    let rows = tx
        .fetch_all(skus.iter().fold(sql_built(text), |q, s| q.bind(s)))
        .await?;
    for row in &rows {
        let available = (row.int("on_hand")? - row.int("reserved")?).max(0);
        stock
            .entry(row.text("sku")?)
            .or_default()
            .insert(row.text("location_id")?, available);
    }
    Ok(stock)
}

/// Remembers what each channel may sell of some SKUs, to announce what a change altered.
pub(crate) struct AvailabilityWatch {
    skus: BTreeSet<String>,
    before: StockMap,
}

impl AvailabilityWatch {
    pub(crate) async fn start(tx: &mut Tx, skus: impl IntoIterator<Item = String>) -> Result<Self, Error> {
        let skus: BTreeSet<String> = skus.into_iter().collect();
        let before = stock_of(tx, &skus).await?;
        Ok(AvailabilityWatch { skus, before })
    }

    /// Appends `availability.changed` for every channel whose sellable quantity changed.
    pub(crate) async fn finish(self, tx: &mut Tx, now: Timestamp) -> Result<(), Error> {
        let after = stock_of(tx, &self.skus).await?;
        announce_availability(tx, &self.skus, &self.before, &after, now).await
    }
}

/// Appends `availability.changed` for every channel that may sell a different quantity of one
/// of `skus` after than before.
pub(super) async fn announce_availability(
    tx: &mut Tx,
    skus: &BTreeSet<String>,
    before: &StockMap,
    after: &StockMap,
    now: Timestamp,
) -> Result<(), Error> {
    let channels = channel_stock(tx).await?;
    announce_to(tx, &channels, skus, before, after, now);
    Ok(())
}

/// The same for the given channels.
pub(super) fn announce_to(
    tx: &mut Tx,
    channels: &[ChannelStock],
    skus: &BTreeSet<String>,
    before: &StockMap,
    after: &StockMap,
    now: Timestamp,
) {
    for change in availability_changes(channels, skus, before, after) {
        append(tx, now, NewEvent::new(EventType::AvailabilityChanged, &change));
    }
}

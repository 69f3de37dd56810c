//! What every channel may sell, answered from memory.
//!
//! Availability is read far more often than stock changes (storefronts, apps and marketplace
//! feeds poll it), so each process keeps a view of all levels, channels and pick-up locations,
//! loaded once and kept current from the event log. A read first catches the view up with
//! every event this process committed, so it reads its own writes; events of other processes
//! are seen within `STALE_AFTER`. Taking stock never uses the view: that stays one conditional
//! write in the database.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use omnihub_domain::catalog::{Channel, StockBuffer};
use omnihub_domain::events::Event;
use omnihub_domain::inventory::{LocationAvailability, SkuAvailability, location_available_for_channel};
use serde::Deserialize;

use crate::db::sql;
use crate::inventory::{ChannelStock, StockMap, channel_stock, sellable};
use crate::{Error, Store};

/// How old the view may get before a read looks for other processes' events.
const STALE_AFTER: Duration = Duration::from_millis(100);
/// The events that change the view.
pub(crate) const VIEWED: [&str; 5] = [
    "inventory.level_changed",
    "channel.created",
    "channel.updated",
    "location.created",
    "location.updated",
];

#[derive(Default)]
pub(crate) struct StockView {
    state: RwLock<Option<State>>,
    /// One process catches the view up at a time; the others wait for it.
    refresh: tokio::sync::Mutex<()>,
}

struct State {
    seq: i64,
    refreshed: Instant,
    stock: StockMap,
    channels: HashMap<String, ChannelStock>,
    pickup: HashSet<String>,
}

impl State {
    /// Holds every event this process committed up to `committed`, and has looked for other
    /// processes' events lately.
    fn is_current(&self, committed: i64) -> bool {
        self.seq >= committed && self.refreshed.elapsed() < STALE_AFTER
    }

    fn answer(&self, channel: &ChannelStock, skus: &[String]) -> Vec<SkuAvailability> {
        skus.iter()
            .map(|sku| {
                let available = sellable(channel, &self.stock, sku);
                let at = self.stock.get(sku);
                let locations = channel
                    .locations
                    .iter()
                    .map(|location| LocationAvailability {
                        location_id: location.clone(),
                        available: location_available_for_channel(
                            at.and_then(|s| s.get(location)).copied().unwrap_or(0),
                            available,
                        ),
                        pickup: self.pickup.contains(location),
                    })
                    .collect();
                SkuAvailability {
                    sku: sku.clone(),
                    available,
                    locations,
                }
            })
            .collect()
    }

    fn apply(&mut self, event: &Event) {
        self.seq = self.seq.max(event.seq);
        match event.kind.as_str() {
            "inventory.level_changed" => {
                if let Ok(level) = serde_json::from_value::<LevelChange>(event.data.clone()) {
                    let available = (level.on_hand - level.reserved).max(0);
                    self.stock
                        .entry(level.sku)
                        .or_default()
                        .insert(level.location_id, available);
                }
            }
            "channel.created" | "channel.updated" => {
                if let Ok(channel) = serde_json::from_value::<ChannelChange>(event.data.clone()) {
                    let stock = ChannelStock {
                        id: channel.id.clone(),
                        buffer: channel.stock_buffer,
                        locations: channel.location_ids,
                    };
                    self.channels.insert(channel.id, stock);
                }
            }
            "location.created" | "location.updated" => {
                if let Ok(location) = serde_json::from_value::<LocationChange>(event.data.clone()) {
                    if location.pickup {
                        self.pickup.insert(location.id);
                    } else {
                        self.pickup.remove(&location.id);
                    }
                }
            }
            _ => {}
        }
    }
}

#[derive(Deserialize)]
struct LevelChange {
    sku: String,
    location_id: String,
    on_hand: i64,
    reserved: i64,
}

#[derive(Deserialize)]
struct ChannelChange {
    id: String,
    location_ids: Vec<String>,
    #[serde(default)]
    stock_buffer: StockBuffer,
}

#[derive(Deserialize)]
struct LocationChange {
    id: String,
    pickup: bool,
}

impl Store {
    /// What a channel may sell of each SKU now, and where.
    pub async fn availability(&self, channel: &Channel, skus: &[String]) -> Result<Vec<SkuAvailability>, Error> {
        let channel = ChannelStock {
            id: channel.id.clone(),
            buffer: channel.draft.stock_buffer.clone(),
            locations: channel.draft.location_ids.clone(),
        };
        self.with_view(|state| Ok(state.answer(&channel, skus))).await
    }

    /// The same for a channel named by id, without reading the channel from the database.
    pub async fn channel_availability(&self, channel_id: &str, skus: &[String]) -> Result<Vec<SkuAvailability>, Error> {
        self.with_view(|state| {
            let channel = state.channels.get(channel_id).ok_or(Error::NotFound("channel"))?;
            Ok(state.answer(channel, skus))
        })
        .await
    }

    async fn with_view<T>(&self, read: impl Fn(&State) -> Result<T, Error>) -> Result<T, Error> {
        let committed = self.log_commits.stock.load(Ordering::Acquire);
        if let Some(answer) = self.read_view(committed, &read) {
            return answer;
        }
        self.refresh_view(committed).await?;
        let state = self
            .stock_view
            .state
            .read()
            .map_err(|_| Error::Unavailable("the stock view is poisoned".into()))?;
        let state = state
            .as_ref()
            .ok_or_else(|| Error::Unavailable("the stock view is not loaded".into()))?;
        read(state)
    }

    /// An answer from the view if it is current enough; `None` when it must be refreshed.
    fn read_view<T>(&self, committed: i64, read: &impl Fn(&State) -> Result<T, Error>) -> Option<Result<T, Error>> {
        let state = self.stock_view.state.read().ok()?;
        let state = state.as_ref().filter(|state| state.is_current(committed))?;
        Some(read(state))
    }

    /// Brings the view up to `committed` at least, unless a request that held the refresh
    /// before this one did so already.
    async fn refresh_view(&self, committed: i64) -> Result<(), Error> {
        let _one_at_a_time = self.stock_view.refresh.lock().await;
        let seq = match self.stock_view.state.read().as_deref() {
            Ok(Some(state)) if state.is_current(committed) => return Ok(()),
            Ok(Some(state)) => Some(state.seq),
            _ => None,
        };
        let Some(seq) = seq else {
            let state = self.load_view().await?;
            self.replace_view(state);
            return Ok(());
        };
        let (events, upto) = self.catch_up(seq, &VIEWED).await?;
        if let Ok(mut state) = self.stock_view.state.write()
            && let Some(state) = state.as_mut()
        {
            events.iter().for_each(|event| state.apply(event));
            state.seq = state.seq.max(upto);
            state.refreshed = Instant::now();
        }
        Ok(())
    }

    fn replace_view(&self, state: State) {
        if let Ok(mut slot) = self.stock_view.state.write() {
            *slot = Some(state);
        }
    }

    /// Reads everything the view holds. Events committed meanwhile are applied again on the
    /// next refresh, which is harmless: each carries absolute values.
    async fn load_view(&self) -> Result<State, Error> {
        let seq = self.last_event_seq().await?;
        let mut tx = self.db.begin_read().await?;
        let mut stock = StockMap::new();
        for row in tx
            .fetch_all(sql("SELECT sku, location_id, on_hand, reserved FROM inventory_levels"))
            .await?
        {
            let available = (row.int("on_hand")? - row.int("reserved")?).max(0);
            stock
                .entry(row.text("sku")?)
                .or_default()
                .insert(row.text("location_id")?, available);
        }
        let channels = channel_stock(&mut tx)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let pickup = tx
            .fetch_all(sql("SELECT id FROM locations WHERE pickup"))
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect::<Result<_, _>>()?;
        Ok(State {
            seq,
            refreshed: Instant::now(),
            stock,
            channels,
            pickup,
        })
    }
}

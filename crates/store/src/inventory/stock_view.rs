//! What every channel may sell, answered from memory.
//!
//! Availability is read far more often than stock changes (storefronts, apps and marketplace
//! feeds poll it), so each process keeps a view of all levels, channels and pick-up locations,
//! loaded once and kept current: this process's own commits are applied as they commit, and
//! other processes' are read from the event log, seen within `STALE_AFTER` (or at once when
//! they are heard of). Writes plan where stock comes from with the view, but taking stock never
//! trusts it: that stays one conditional write in the database, and a plan the database
//! refutes, or a refusal, is made again from the database.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use omnihub_domain::catalog::{Channel, StockBuffer};
use omnihub_domain::events::EventType;
use omnihub_domain::inventory::{
    ChannelStock, LocationAvailability, SkuAvailability, StockMap, location_available_for_channel,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::availability::channel_stock;
use crate::db::events::{Follower, Logged};
use crate::db::sql;
use crate::{Error, Store};

/// How old the view may get before a read looks for other processes' events.
const STALE_AFTER: Duration = Duration::from_millis(100);
/// How old the view may be for a write to plan with it: a plan the database refutes is made
/// again from the database, so this bounds only how often that happens, not what is sold.
const PLAN_STALE_AFTER: Duration = Duration::from_secs(1);
/// The events that change the view.
pub(crate) const VIEWED: [&str; 5] = [
    EventType::InventoryLevelChanged.as_str(),
    EventType::ChannelCreated.as_str(),
    EventType::ChannelUpdated.as_str(),
    EventType::LocationCreated.as_str(),
    EventType::LocationUpdated.as_str(),
];

#[derive(Default)]
pub(crate) struct StockView {
    state: RwLock<Option<State>>,
    /// One process catches the view up at a time; the others wait for it.
    refresh: tokio::sync::Mutex<()>,
    /// The newest commit of this process with an event the view applies.
    own: AtomicI64,
    /// The newest such commit another process told of.
    heard: AtomicI64,
}

struct State {
    /// Every event of the log up to here is applied.
    seq: i64,
    /// The newest of this process's commits applied as it committed (possibly past `seq`).
    own: i64,
    /// The `seq` the view was loaded at: what it read of the tables is as new as that.
    loaded: i64,
    refreshed: Instant,
    stock: StockMap,
    /// By id, so that a write's plan lists them in one order.
    channels: BTreeMap<String, ChannelStock>,
    pickup: HashSet<String>,
    /// The `seq` of the event each level, channel and location was last set by. Own commits are
    /// applied as each finishes, in any order, and again when read back from the log, so an
    /// event is applied only over an older one.
    set_by: HashMap<String, i64>,
}

/// How far the view must have come for a read.
#[derive(Clone, Copy)]
struct Horizon {
    /// The newest commit of this process with an event the view applies.
    own: i64,
    /// The newest such commit another process told of.
    heard: i64,
}

impl State {
    /// Holds every event this process committed up to `horizon.own` and every event up to
    /// `horizon.heard`, and has looked for other processes' events within `age`.
    fn is_current(&self, horizon: Horizon, age: Duration) -> bool {
        self.seq >= horizon.heard && self.seq.max(self.own) >= horizon.own && self.refreshed.elapsed() < age
    }

    fn answer(&self, channel: &ChannelStock, skus: &[String]) -> Vec<SkuAvailability> {
        skus.iter()
            .map(|sku| {
                let available = channel.sellable(&self.stock, sku);
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

    /// Applies the event `seq` of `kind`, unless what it sets was set by a newer one already.
    fn apply(&mut self, seq: i64, kind: EventType, data: Data) {
        match kind {
            EventType::InventoryLevelChanged => {
                if let Some(level) = data.read::<LevelChange>()
                    && self.newer(format!("level {} {}", level.sku, level.location_id), seq)
                {
                    let available = (level.on_hand - level.reserved).max(0);
                    self.stock
                        .entry(level.sku)
                        .or_default()
                        .insert(level.location_id, available);
                }
            }
            EventType::ChannelCreated | EventType::ChannelUpdated => {
                if let Some(channel) = data.read::<ChannelChange>()
                    && self.newer(format!("channel {}", channel.id), seq)
                {
                    let stock = ChannelStock {
                        id: channel.id.clone(),
                        buffer: channel.stock_buffer,
                        locations: channel.location_ids,
                    };
                    self.channels.insert(channel.id, stock);
                }
            }
            EventType::LocationCreated | EventType::LocationUpdated => {
                if let Some(location) = data.read::<LocationChange>()
                    && self.newer(format!("location {}", location.id), seq)
                {
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

    /// Whether the event `seq` is newer than the one that last set `what`; if so, it now has.
    fn newer(&mut self, what: String, seq: i64) -> bool {
        let last = self.set_by.entry(what).or_insert(self.loaded);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    /// The stock of `skus` and every channel, as a write plans with them.
    fn known(&self, skus: &BTreeSet<String>) -> KnownStock {
        let stock = skus
            .iter()
            .filter_map(|sku| Some((sku.clone(), self.stock.get(sku)?.clone())))
            .collect();
        let channels = self.channels.values().cloned().collect();
        KnownStock { stock, channels }
    }
}

/// An event's document: parsed when read from the log, as written when this process logged it.
enum Data<'a> {
    Parsed(&'a serde_json::Value),
    Written(&'a str),
}

impl Data<'_> {
    fn read<T: DeserializeOwned>(&self) -> Option<T> {
        match self {
            Data::Parsed(value) => T::deserialize(*value).ok(),
            Data::Written(text) => serde_json::from_str(text).ok(),
        }
    }
}

/// What the view knew of some SKUs' stock and of the channels, for a write to plan with.
pub(crate) struct KnownStock {
    pub(crate) stock: StockMap,
    pub(crate) channels: Vec<ChannelStock>,
}

impl Follower for StockView {
    fn follows(&self, kind: EventType) -> bool {
        VIEWED.contains(&kind.as_str())
    }

    fn committed_here(&self, events: &[Logged], last_seq: i64) {
        self.apply_own(events, last_seq);
        self.own.fetch_max(last_seq, Ordering::AcqRel);
    }

    fn committed_elsewhere(&self, seq: i64) {
        self.heard.fetch_max(seq, Ordering::AcqRel);
    }
}

impl StockView {
    fn horizon(&self) -> Horizon {
        Horizon {
            own: self.own.load(Ordering::Acquire),
            heard: self.heard.load(Ordering::Acquire),
        }
    }

    /// Applies the events of a commit of this process that ended at `last_seq`, before anyone
    /// is told of the commit.
    fn apply_own(&self, logged: &[Logged], last_seq: i64) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        // Not loaded yet: the load will read the tables as they are now.
        let Some(state) = state.as_mut() else {
            return;
        };
        for event in logged {
            state.apply(event.seq, event.kind, Data::Written(&event.data));
        }
        state.own = state.own.max(last_seq);
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
        let channel = ChannelStock::of(channel);
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

    /// What the view knows of `skus` and the channels, if it holds every commit of this process
    /// and looked for others' within `PLAN_STALE_AFTER`; `None` rather than waiting for it to
    /// catch up (the write then reads the database).
    pub(crate) fn known_stock(&self, skus: &BTreeSet<String>) -> Option<KnownStock> {
        let horizon = self.stock_view.horizon();
        self.read_view(horizon, PLAN_STALE_AFTER, &|state| Ok(state.known(skus)))?
            .ok()
    }

    async fn with_view<T>(&self, read: impl Fn(&State) -> Result<T, Error>) -> Result<T, Error> {
        let horizon = self.stock_view.horizon();
        if let Some(answer) = self.read_view(horizon, STALE_AFTER, &read) {
            return answer;
        }
        self.refresh_view(horizon).await?;
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
    fn read_view<T>(
        &self,
        horizon: Horizon,
        age: Duration,
        read: &impl Fn(&State) -> Result<T, Error>,
    ) -> Option<Result<T, Error>> {
        let state = self.stock_view.state.read().ok()?;
        let state = state.as_ref().filter(|state| state.is_current(horizon, age))?;
        Some(read(state))
    }

    /// Brings the view up to `horizon` at least, unless a request that held the refresh
    /// before this one did so already.
    async fn refresh_view(&self, horizon: Horizon) -> Result<(), Error> {
        let view = &self.stock_view;
        let _one_at_a_time = view.refresh.lock().await;
        let seq = match view.state.read().as_deref() {
            Ok(Some(state)) if state.is_current(horizon, STALE_AFTER) => return Ok(()),
            Ok(Some(state)) => Some(state.seq),
            _ => None,
        };
        let Some(seq) = seq else {
            let state = self.load_view().await?;
            self.replace_view(state);
            return Ok(());
        };
        let (events, upto) = self.catch_up(seq, &VIEWED).await?;
        if let Ok(mut state) = view.state.write()
            && let Some(state) = state.as_mut()
        {
            for event in &events {
                if let Some(kind) = EventType::parse(&event.kind) {
                    state.apply(event.seq, kind, Data::Parsed(&event.data));
                }
            }
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
            own: seq,
            loaded: seq,
            refreshed: Instant::now(),
            stock,
            channels,
            pickup,
            set_by: HashMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(available: i64) -> String {
        serde_json::json!({"sku": "A", "location_id": "loc_w", "on_hand": 10, "reserved": 10 - available}).to_string()
    }

    fn state() -> State {
        State {
            seq: 10,
            own: 10,
            loaded: 10,
            refreshed: Instant::now(),
            stock: [("A".to_owned(), [("loc_w".to_owned(), 5)].into())].into(),
            channels: BTreeMap::new(),
            pickup: HashSet::new(),
            set_by: HashMap::new(),
        }
    }

    fn available(state: &State) -> i64 {
        state.stock["A"]["loc_w"]
    }

    #[test]
    fn an_event_applies_only_over_an_older_one() {
        let mut state = state();
        state.apply(9, EventType::InventoryLevelChanged, Data::Written(&level(9)));
        assert_eq!(available(&state), 5, "the tables were read after event 9");
        // Own commits finish in any order; the log reads them back again later.
        state.apply(12, EventType::InventoryLevelChanged, Data::Written(&level(3)));
        state.apply(11, EventType::InventoryLevelChanged, Data::Written(&level(4)));
        assert_eq!(available(&state), 3);
        let read_back = serde_json::from_str::<serde_json::Value>(&level(4)).unwrap();
        state.apply(11, EventType::InventoryLevelChanged, Data::Parsed(&read_back));
        assert_eq!(available(&state), 3);
        state.apply(13, EventType::InventoryLevelChanged, Data::Written(&level(2)));
        assert_eq!(available(&state), 2);
    }

    #[test]
    fn a_commit_applied_as_it_commits_leaves_the_view_current() {
        let view = StockView::default();
        *view.state.write().unwrap() = Some(state());
        let logged = Logged {
            seq: 12,
            kind: EventType::InventoryLevelChanged,
            data: level(3),
        };
        // The order's own events came after the level's.
        view.apply_own(&[logged], 14);
        let state = view.state.read().unwrap();
        let state = state.as_ref().unwrap();
        assert!(state.is_current(Horizon { own: 14, heard: 0 }, STALE_AFTER));
        assert_eq!(available(state), 3);
    }

    #[test]
    fn own_commits_count_as_seen_but_another_process_commits_must_be_read() {
        let mut state = state();
        state.own = 12;
        assert!(state.is_current(Horizon { own: 12, heard: 0 }, STALE_AFTER));
        assert!(
            !state.is_current(Horizon { own: 13, heard: 0 }, STALE_AFTER),
            "an own commit not applied yet"
        );
        assert!(
            !state.is_current(Horizon { own: 12, heard: 11 }, STALE_AFTER),
            "another process's commit below an own one is not in the view"
        );
        state.seq = 11;
        assert!(state.is_current(Horizon { own: 12, heard: 11 }, STALE_AFTER));
    }
}

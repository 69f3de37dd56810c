//! Products as storefronts read them, and the sales channels, locations and channel prices
//! every cart and checkout request needs, remembered.
//!
//! They are read far more often than they change. Entries are dropped when the event log
//! shows a change of their product, listing, channel or location; a read first looks at every
//! event this process committed, and at other processes' events when it last looked more than
//! `STALE_AFTER` ago.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use omnihub_domain::catalog::{Channel, Location, Product};
use omnihub_domain::events::EventType;

use crate::db::events::{Follower, Logged};
use crate::{Error, Store};

const STALE_AFTER: Duration = Duration::from_millis(100);
const MAX_ENTRIES: usize = 50_000;

/// The events that make entries wrong.
pub(crate) const FORGETTING: [&str; 5] = [
    EventType::ProductCreated.as_str(),
    EventType::ProductUpdated.as_str(),
    EventType::ListingUpdated.as_str(),
    EventType::ChannelUpdated.as_str(),
    EventType::LocationUpdated.as_str(),
];

#[derive(Default)]
pub(crate) struct CatalogCache {
    state: Mutex<State>,
    /// One request catches the cache up at a time; the others wait for it.
    refresh: tokio::sync::Mutex<()>,
    /// The newest commit (of this process or heard of) with an event that makes remembered
    /// entries wrong.
    committed: AtomicI64,
}

impl Follower for CatalogCache {
    fn follows(&self, kind: EventType) -> bool {
        FORGETTING.contains(&kind.as_str())
    }

    fn committed_here(&self, _: &[Logged], last_seq: i64) {
        self.committed.fetch_max(last_seq, Ordering::AcqRel);
    }

    fn committed_elsewhere(&self, seq: i64) {
        self.committed.fetch_max(seq, Ordering::AcqRel);
    }
}

#[derive(Default)]
pub(crate) struct State {
    /// Every event up to here has been looked at; `None` before the first look.
    seq: Option<i64>,
    looked: Option<Instant>,
    /// (product id, channel id or "") → the product as read.
    pub(crate) products: HashMap<(String, String), Product>,
    pub(crate) channels: HashMap<String, Channel>,
    pub(crate) locations: HashMap<String, Location>,
    /// (channel id, SKU) → the price the channel sells it at; `None`: not sold there.
    pub(crate) prices: HashMap<(String, String), Option<i64>>,
}

/// One of the cache's maps.
pub(crate) type Shelf<K, V> = fn(&mut State) -> &mut HashMap<K, V>;

impl CatalogCache {
    fn recall<K: Eq + Hash, V: Clone>(&self, shelf: Shelf<K, V>, key: &K) -> Option<V> {
        let mut state = self.state.lock().ok()?;
        shelf(&mut state).get(key).cloned()
    }

    /// Puts an entry on a shelf if no change came since `seen`; a full shelf starts over.
    fn remember<K: Eq + Hash, V>(&self, seen: i64, shelf: Shelf<K, V>, key: K, value: V) {
        if let Ok(mut state) = self.state.lock()
            && state.seq == Some(seen)
        {
            let map = shelf(&mut state);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    fn look(&self, committed: i64) -> Look {
        let Ok(state) = self.state.lock() else {
            return Look::First;
        };
        match (state.seq, state.looked) {
            (Some(seq), Some(looked)) if seq >= committed && looked.elapsed() < STALE_AFTER => Look::Current(seq),
            (Some(seq), _) => Look::After(seq),
            (None, _) => Look::First,
        }
    }

    fn forget(&self, events: &[omnihub_domain::events::Event], upto: i64) {
        let Ok(mut state) = self.state.lock() else { return };
        for event in events {
            // The product's id, or the channel's or location's for their events.
            let subject = event.data["product_id"]
                .as_str()
                .or(event.data["id"].as_str())
                .unwrap_or_default();
            match EventType::parse(&event.kind) {
                // A new product's SKUs may have been asked for before they existed.
                Some(EventType::ProductCreated) => state.prices.clear(),
                Some(EventType::ProductUpdated | EventType::ListingUpdated) => {
                    state.products.retain(|(id, _), _| id != subject);
                    state.prices.clear();
                }
                // A channel's currency or policy may change what its prices mean.
                Some(EventType::ChannelUpdated) => {
                    state.products.clear();
                    state.prices.clear();
                    state.channels.remove(subject);
                }
                Some(EventType::LocationUpdated) => {
                    state.locations.remove(subject);
                }
                _ => {}
            }
        }
        state.seq = state.seq.max(Some(upto));
        state.looked = Some(Instant::now());
    }
}

/// What the cache must do before it answers.
enum Look {
    /// Nothing is cached yet, so only the log's position matters.
    First,
    /// Current with the log up to this `seq`.
    Current(i64),
    /// Events after this `seq` must be looked at.
    After(i64),
}

impl Store {
    /// The entry under `key` on a shelf of the cache; read with `read` and remembered when it
    /// is not there.
    pub(crate) async fn cached<K, V>(
        &self,
        shelf: Shelf<K, V>,
        key: K,
        read: impl Future<Output = Result<V, Error>>,
    ) -> Result<V, Error>
    where
        K: Eq + Hash,
        V: Clone,
    {
        let seen = self.sync_catalog_cache().await?;
        if let Some(value) = self.catalog_cache.recall(shelf, &key) {
            return Ok(value);
        }
        let value = read.await?;
        self.catalog_cache.remember(seen, shelf, key, value.clone());
        Ok(value)
    }

    /// Drops what changed; answers the log position the cache is now current with.
    pub(crate) async fn sync_catalog_cache(&self) -> Result<i64, Error> {
        let committed = self.catalog_cache.committed.load(Ordering::Acquire);
        if let Look::Current(seq) = self.catalog_cache.look(committed) {
            return Ok(seq);
        }
        let _one_at_a_time = self.catalog_cache.refresh.lock().await;
        // The request that held the refresh before this one may have done the work.
        let seq = match self.catalog_cache.look(committed) {
            Look::Current(seq) => return Ok(seq),
            Look::First => {
                let upto = self.last_event_seq().await?;
                self.catalog_cache.forget(&[], upto);
                return Ok(upto);
            }
            Look::After(seq) => seq,
        };
        let (events, upto) = self.catch_up(seq, &FORGETTING).await?;
        self.catalog_cache.forget(&events, upto);
        Ok(upto)
    }
}

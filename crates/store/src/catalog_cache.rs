//! Products as storefronts read them, and sales channels, remembered.
//!
//! Product pages are read far more often than products change, and every cart and checkout
//! request needs its channel. Entries are dropped when the event log shows a change of their
//! product, listing or channel; a read first looks at every event this process committed, and
//! at other processes' events when it last looked more than `STALE_AFTER` ago.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use omnihub_domain::catalog::{Channel, Product};

use crate::{Error, Store};

const STALE_AFTER: Duration = Duration::from_millis(100);
const MAX_ENTRIES: usize = 50_000;

/// The events that make entries wrong.
const FORGETTING: [&str; 3] = ["product.updated", "listing.updated", "channel.updated"];

#[derive(Default)]
pub(crate) struct CatalogCache(Mutex<State>);

#[derive(Default)]
struct State {
    /// Every event up to here has been looked at; `None` before the first look.
    seq: Option<i64>,
    looked: Option<Instant>,
    /// (product id, channel id or "") → the product as read.
    products: HashMap<(String, String), Product>,
    channels: HashMap<String, Channel>,
}

impl CatalogCache {
    pub(crate) fn get(&self, id: &str, channel_id: Option<&str>) -> Option<Product> {
        let state = self.0.lock().ok()?;
        state
            .products
            .get(&(id.to_owned(), channel_id.unwrap_or_default().to_owned()))
            .cloned()
    }

    /// Remembers a product read when the log was at `seen`, unless a change came since.
    pub(crate) fn put(&self, seen: i64, product: Product, channel_id: Option<&str>) {
        let key = (product.id.clone(), channel_id.unwrap_or_default().to_owned());
        self.remember(seen, |state| &mut state.products, key, product);
    }

    pub(crate) fn channel(&self, id: &str) -> Option<Channel> {
        self.0.lock().ok()?.channels.get(id).cloned()
    }

    /// Remembers a channel read when the log was at `seen`, unless a change came since.
    pub(crate) fn put_channel(&self, seen: i64, channel: Channel) {
        self.remember(seen, |state| &mut state.channels, channel.id.clone(), channel);
    }

    /// Puts an entry in one of the maps if no change came since `seen`; a full map starts over.
    fn remember<K: Eq + Hash, V>(
        &self,
        seen: i64,
        map: impl FnOnce(&mut State) -> &mut HashMap<K, V>,
        key: K,
        value: V,
    ) {
        if let Ok(mut state) = self.0.lock()
            && state.seq == Some(seen)
        {
            let map = map(&mut state);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    fn look(&self, committed: i64) -> Look {
        let Ok(state) = self.0.lock() else { return Look::First };
        match (state.seq, state.looked) {
            (Some(seq), Some(looked)) if seq >= committed && looked.elapsed() < STALE_AFTER => Look::Current(seq),
            (Some(seq), _) => Look::After(seq),
            (None, _) => Look::First,
        }
    }

    fn forget(&self, events: &[omnihub_domain::events::Event], upto: i64) {
        let Ok(mut state) = self.0.lock() else { return };
        for event in events {
            // The product's id, or the channel's for channel events.
            let subject = event.data["product_id"]
                .as_str()
                .or(event.data["id"].as_str())
                .unwrap_or_default();
            match event.kind.as_str() {
                "product.updated" | "listing.updated" => state.products.retain(|(id, _), _| id != subject),
                // A channel's currency or policy may change what its prices mean.
                "channel.updated" => {
                    state.products.clear();
                    state.channels.remove(subject);
                }
                _ => {}
            }
        }
        state.seq = Some(upto);
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
    /// Drops what changed; answers the log position the cache is now current with.
    pub(crate) async fn sync_catalog_cache(&self) -> Result<i64, Error> {
        let committed = *self.log_commits.borrow() as i64;
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

//! Where an order's stock comes from: the channel's locations and their stock, read here, and
//! the choice made by the rules in `omnihub_domain::sourcing`.

use omnihub_domain::catalog::{Channel, Location};
use omnihub_domain::inventory::FewestSplits;
use omnihub_domain::orders::{Fulfillment, Method, ShippingAddress};
use omnihub_domain::sourcing::{self, StockByLocation, Unserved, Wanted};

use crate::inventory::Sourcing;
use crate::{Error, Store};

static FEWEST_SPLITS: FewestSplits = FewestSplits;

/// Where an order's stock is to come from.
pub(crate) struct Plan {
    pub sourcing: Sourcing<'static>,
    pub at_location: Option<String>,
}

impl From<Unserved> for Error {
    fn from(unserved: Unserved) -> Self {
        match unserved {
            Unserved::Invalid(invalid) => Error::Invalid(invalid),
            Unserved::Short(errors) => Error::InsufficientStock(errors),
        }
    }
}

impl Store {
    pub(crate) async fn channel_locations(&self, channel: &Channel) -> Result<Vec<Location>, Error> {
        let mut locations = Vec::with_capacity(channel.draft.location_ids.len());
        for id in &channel.draft.location_ids {
            locations.push(self.location(id).await?);
        }
        Ok(locations)
    }

    /// Refuses, as a cart's fulfilment is chosen, a store its channel does not sell from and a
    /// pick-up where customers cannot pick up (see [`sourcing::check_store_choice`]).
    pub(crate) async fn check_fulfillment(&self, channel_id: &str, fulfillment: &Fulfillment) -> Result<(), Error> {
        if fulfillment.method == Method::Ship || fulfillment.location_id.is_none() {
            return Ok(());
        }
        let channel = self.channel(channel_id).await?;
        let locations = self.channel_locations(&channel).await?;
        Ok(sourcing::check_store_choice(&locations, fulfillment)?)
    }

    pub(crate) async fn plan(
        &self,
        channel: &Channel,
        fulfillment: &Fulfillment,
        address: Option<&ShippingAddress>,
        lines: &[(String, i64)],
    ) -> Result<Plan, Error> {
        let locations = self.channel_locations(channel).await?;
        let distance = |l: &Location| match (l.draft.geo, address.and_then(|a| a.geo)) {
            (Some(a), Some(b)) => Some(a.distance_km(&b)),
            _ => None,
        };
        let plan = |candidates: Vec<&Location>, at: Option<String>| Plan {
            sourcing: Sourcing {
                locations: candidates.iter().map(|&l| l.clone()).collect(),
                distances: candidates
                    .iter()
                    .filter_map(|l| distance(l).map(|d| (l.id.clone(), d)))
                    .collect(),
                strategy: &FEWEST_SPLITS,
            },
            at_location: at,
        };
        match fulfillment.method {
            Method::Ship => Ok(plan(sourcing::ship_from(&locations, address)?, None)),
            Method::Pickup | Method::ReserveInStore => {
                let store = sourcing::pickup_store(&locations, fulfillment)?;
                let stock = self.stock_by_location(channel, lines).await?;
                sourcing::check_pickup_stock(store, &locations, &stock, lines)?;
                Ok(plan(vec![store], Some(store.id.clone())))
            }
            Method::SameDay => {
                let stores = sourcing::same_day_stores(&locations, fulfillment, address)?;
                let stock = self.stock_by_location(channel, lines).await?;
                let store = sourcing::first_holding_everything(&stores, &stock, lines)?;
                Ok(plan(vec![store], Some(store.id.clone())))
            }
        }
    }

    /// location → sku → what the channel may take there now.
    async fn stock_by_location(&self, channel: &Channel, lines: &Wanted) -> Result<StockByLocation, Error> {
        let skus: Vec<String> = lines.iter().map(|(sku, _)| sku.clone()).collect();
        let mut stock = StockByLocation::new();
        for sku in self.availability(channel, &skus).await? {
            for at in sku.locations {
                stock
                    .entry(at.location_id)
                    .or_default()
                    .insert(sku.sku.clone(), at.available);
            }
        }
        Ok(stock)
    }
}

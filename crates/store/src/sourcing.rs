//! Which locations may serve an order, by its fulfilment method: shipping from warehouses and
//! ship-from stores (nearest first when the address has coordinates), picking up at a store
//! that holds everything, same-day delivery from a store whose radius covers the address.

use std::collections::BTreeMap;

use omnihub_domain::catalog::{Channel, Location, LocationKind};
use omnihub_domain::inventory::FewestSplits;
use omnihub_domain::orders::{Fulfillment, Method, ShippingAddress};
use omnihub_domain::{FieldError, Invalid};

use crate::inventory::Sourcing;
use crate::{Error, Store};

static FEWEST_SPLITS: FewestSplits = FewestSplits;

/// Where an order's stock is to come from.
pub(crate) struct Plan {
    pub sourcing: Sourcing<'static>,
    pub at_location: Option<String>,
}

fn required(field: &str, message: &str) -> Error {
    Invalid::one(field, "required", message).into()
}

fn not_in_channel() -> Error {
    Invalid::one(
        "fulfillment.location_id",
        "not_in_channel",
        "this channel does not sell from that location",
    )
    .into()
}

fn no_pickup() -> Error {
    Invalid::one(
        "fulfillment.location_id",
        "no_pickup",
        "customers cannot pick up at this location",
    )
    .into()
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
    /// pickup where customers cannot pick up. A shipment's location means nothing (it is sourced
    /// at checkout). Stock is weighed at checkout, which checks again.
    pub(crate) async fn check_fulfillment(&self, channel_id: &str, fulfillment: &Fulfillment) -> Result<(), Error> {
        let Some(id) = fulfillment.location_id.as_deref() else {
            return Ok(());
        };
        if fulfillment.method == Method::Ship {
            return Ok(());
        }
        let channel = self.channel(channel_id).await?;
        if !channel.draft.location_ids.iter().any(|l| l == id) {
            return Err(not_in_channel());
        }
        let picked_up = matches!(fulfillment.method, Method::Pickup | Method::ReserveInStore);
        if picked_up && !self.location(id).await?.draft.pickup {
            return Err(no_pickup());
        }
        Ok(())
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
            Method::Ship => {
                if address.is_none() {
                    return Err(required("shipping_address", "a shipment needs an address"));
                }
                let from: Vec<&Location> = locations
                    .iter()
                    .filter(|l| l.draft.kind == LocationKind::Warehouse || l.draft.ship_from)
                    .collect();
                Ok(plan(from, None))
            }
            Method::Pickup | Method::ReserveInStore => {
                let store = self.pickup_store(channel, &locations, fulfillment, lines).await?;
                Ok(plan(vec![store], Some(store.id.clone())))
            }
            Method::SameDay => {
                let store = self
                    .same_day_store(channel, &locations, fulfillment, address, lines)
                    .await?;
                Ok(plan(vec![store], Some(store.id.clone())))
            }
        }
    }

    async fn pickup_store<'l>(
        &self,
        channel: &Channel,
        locations: &'l [Location],
        fulfillment: &Fulfillment,
        lines: &[(String, i64)],
    ) -> Result<&'l Location, Error> {
        let id = fulfillment
            .location_id
            .as_deref()
            .ok_or_else(|| required("fulfillment.location_id", "choose the store to pick up at"))?;
        let store = locations.iter().find(|l| l.id == id).ok_or_else(not_in_channel)?;
        if !store.draft.pickup {
            return Err(no_pickup());
        }
        let stock = self.stock_by_location(channel, lines).await?;
        let short = shortages(&stock, &store.id, lines);
        if short.is_empty() {
            return Ok(store);
        }
        Err(Error::InsufficientStock(
            [short, alternatives(store, locations, &stock, lines)].concat(),
        ))
    }

    async fn same_day_store<'l>(
        &self,
        channel: &Channel,
        locations: &'l [Location],
        fulfillment: &Fulfillment,
        address: Option<&ShippingAddress>,
        lines: &[(String, i64)],
    ) -> Result<&'l Location, Error> {
        let Some(to) = address.and_then(|a| a.geo) else {
            return Err(required(
                "shipping_address.geo",
                "same-day delivery needs the address's coordinates",
            ));
        };
        let mut covering: Vec<(&Location, f64)> = locations
            .iter()
            .filter(|l| fulfillment.location_id.as_ref().is_none_or(|id| *id == l.id))
            .filter_map(|l| Some((l, l.draft.geo?.distance_km(&to), l.draft.same_day_radius_km?)))
            .filter(|(_, km, radius)| km <= radius)
            .map(|(l, km, _)| (l, km))
            .collect();
        if covering.is_empty() {
            return Err(Invalid::one(
                "shipping_address",
                "out_of_radius",
                "no store delivers the same day to this address",
            )
            .into());
        }
        covering.sort_by(|a, b| a.1.total_cmp(&b.1));
        let stock = self.stock_by_location(channel, lines).await?;
        covering
            .iter()
            .find(|(l, _)| shortages(&stock, &l.id, lines).is_empty())
            .map(|(l, _)| *l)
            .ok_or_else(|| Error::InsufficientStock(shortages(&stock, &covering[0].0.id, lines)))
    }

    /// location → sku → what the channel may take there now.
    async fn stock_by_location(
        &self,
        channel: &Channel,
        lines: &[(String, i64)],
    ) -> Result<BTreeMap<String, BTreeMap<String, i64>>, Error> {
        let skus: Vec<String> = lines.iter().map(|(sku, _)| sku.clone()).collect();
        let mut stock: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
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

fn shortages(
    stock: &BTreeMap<String, BTreeMap<String, i64>>,
    location: &str,
    lines: &[(String, i64)],
) -> Vec<FieldError> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, (sku, quantity))| {
            let there = stock.get(location).and_then(|s| s.get(sku)).copied().unwrap_or(0);
            (there < *quantity).then(|| FieldError {
                field: format!("lines[{i}].quantity"),
                code: "insufficient_stock".into(),
                message: format!("{quantity} units of {sku} wanted, {there} at this store"),
            })
        })
        .collect()
}

/// The nearest pick-up stores that hold everything, so the customer can choose another.
fn alternatives(
    chosen: &Location,
    locations: &[Location],
    stock: &BTreeMap<String, BTreeMap<String, i64>>,
    lines: &[(String, i64)],
) -> Vec<FieldError> {
    let mut others: Vec<(&Location, Option<f64>)> = locations
        .iter()
        .filter(|l| l.id != chosen.id && l.draft.pickup && shortages(stock, &l.id, lines).is_empty())
        .map(|l| (l, chosen.draft.geo.zip(l.draft.geo).map(|(a, b)| a.distance_km(&b))))
        .collect();
    others.sort_by(|a, b| a.1.unwrap_or(f64::MAX).total_cmp(&b.1.unwrap_or(f64::MAX)));
    others
        .into_iter()
        .take(3)
        .map(|(l, km)| FieldError {
            field: "fulfillment.location_id".into(),
            code: "available_at".into(),
            message: match km {
                Some(km) => format!("{}: everything is at {} ({km:.1} km away)", l.id, l.draft.name),
                None => format!("{}: everything is at {}", l.id, l.draft.name),
            },
        })
        .collect()
}

//! Which of a channel's locations may serve an order, by its fulfilment method: shipping from
//! warehouses and ship-from stores, picking up at a store that holds everything, same-day
//! delivery from the nearest store whose radius covers the address and holds everything.

use std::collections::BTreeMap;

use crate::catalog::{Location, LocationKind};
use crate::orders::{Fulfillment, Method, ShippingAddress};
use crate::{FieldError, Invalid};

/// location → SKU → what the channel may take there now.
pub type StockByLocation = BTreeMap<String, BTreeMap<String, i64>>;

/// SKU and quantity of each line wanted, in the order's line order.
pub type Wanted = [(String, i64)];

/// Why no location may serve an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Unserved {
    /// The order's fulfilment asks what cannot be (a store outside the channel, no address).
    Invalid(Invalid),
    /// The right stores exist, but none holds every line; each short line is a field error.
    Short(Vec<FieldError>),
}

impl From<Invalid> for Unserved {
    fn from(invalid: Invalid) -> Self {
        Unserved::Invalid(invalid)
    }
}

fn required(field: &str, message: &str) -> Invalid {
    Invalid::one(field, "required", message)
}

fn not_in_channel() -> Invalid {
    Invalid::one(
        "fulfillment.location_id",
        "not_in_channel",
        "this channel does not sell from that location",
    )
}

fn no_pickup() -> Invalid {
    Invalid::one(
        "fulfillment.location_id",
        "no_pickup",
        "customers cannot pick up at this location",
    )
}

/// A store chosen while the cart is filled: one its channel sells from, and one customers can
/// pick up at when they are to. A shipment's location means nothing (it is sourced at
/// checkout). Stock is weighed at checkout.
pub fn check_store_choice(channel_locations: &[Location], fulfillment: &Fulfillment) -> Result<(), Invalid> {
    if fulfillment.method == Method::Ship || fulfillment.location_id.is_none() {
        return Ok(());
    }
    chosen_store(channel_locations, fulfillment).map(|_| ())
}

/// The store named by the fulfilment, among the channel's; for a pick-up, one that allows it.
fn chosen_store<'l>(locations: &'l [Location], fulfillment: &Fulfillment) -> Result<&'l Location, Invalid> {
    let id = fulfillment
        .location_id
        .as_deref()
        .ok_or_else(|| required("fulfillment.location_id", "choose the store to pick up at"))?;
    let store = locations.iter().find(|l| l.id == id).ok_or_else(not_in_channel)?;
    let picked_up = matches!(fulfillment.method, Method::Pickup | Method::ReserveInStore);
    if picked_up && !store.draft.pickup {
        return Err(no_pickup());
    }
    Ok(store)
}

/// Where a shipment may come from: warehouses and stores that ship.
pub fn ship_from<'l>(
    locations: &'l [Location],
    address: Option<&ShippingAddress>,
) -> Result<Vec<&'l Location>, Invalid> {
    if address.is_none() {
        return Err(required("shipping_address", "a shipment needs an address"));
    }
    Ok(locations
        .iter()
        .filter(|l| l.draft.kind == LocationKind::Warehouse || l.draft.ship_from)
        .collect())
}

/// The store a pick-up (or a reservation to try in store) names, before its stock is weighed.
pub fn pickup_store<'l>(locations: &'l [Location], fulfillment: &Fulfillment) -> Result<&'l Location, Invalid> {
    chosen_store(locations, fulfillment)
}

/// The chosen pick-up store, if it holds every line; otherwise the short lines and up to three
/// nearest pick-up stores that hold everything, so the customer can choose another.
pub fn check_pickup_stock(
    store: &Location,
    locations: &[Location],
    stock: &StockByLocation,
    lines: &Wanted,
) -> Result<(), Unserved> {
    let short = shortages(stock, &store.id, lines);
    if short.is_empty() {
        return Ok(());
    }
    Err(Unserved::Short(
        [short, alternatives(store, locations, stock, lines)].concat(),
    ))
}

/// The stores that deliver the same day to the address (only the named one, if one is named),
/// nearest first.
pub fn same_day_stores<'l>(
    locations: &'l [Location],
    fulfillment: &Fulfillment,
    address: Option<&ShippingAddress>,
) -> Result<Vec<&'l Location>, Invalid> {
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
        ));
    }
    covering.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(covering.into_iter().map(|(l, _)| l).collect())
}

/// The first of `stores` (nearest first) that holds every line; the nearest one's shortages
/// when none does.
pub fn first_holding_everything<'l>(
    stores: &[&'l Location],
    stock: &StockByLocation,
    lines: &Wanted,
) -> Result<&'l Location, Unserved> {
    if let Some(store) = stores.iter().find(|l| shortages(stock, &l.id, lines).is_empty()) {
        return Ok(store);
    }
    let nearest = stores.first().map(|l| l.id.as_str()).unwrap_or_default();
    Err(Unserved::Short(shortages(stock, nearest, lines)))
}

fn shortages(stock: &StockByLocation, location: &str, lines: &Wanted) -> Vec<FieldError> {
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

fn alternatives(chosen: &Location, locations: &[Location], stock: &StockByLocation, lines: &Wanted) -> Vec<FieldError> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Timestamp;
    use crate::catalog::Geo;

    /// A location at `lat` on the Berlin meridian (one degree is about 111 km).
    fn location(id: &str, kind: &str, pickup: bool, lat: f64, radius_km: Option<f64>) -> Location {
        let draft = serde_json::from_value(json!({
            "name": id, "kind": kind, "pickup": pickup, "geo": {"lat": lat, "lon": 13.4},
            "same_day_radius_km": radius_km,
            "address": {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        }))
        .unwrap();
        Location {
            id: id.into(),
            draft,
            version: 1,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn shop() -> Vec<Location> {
        vec![
            location("warehouse", "warehouse", false, 52.0, None),
            location("mitte", "store", true, 52.52, Some(10.0)),
            location("pankow", "store", true, 52.57, Some(10.0)),
            location("far", "store", true, 53.5, Some(10.0)),
        ]
    }

    fn fulfillment(method: Method, at: Option<&str>) -> Fulfillment {
        Fulfillment {
            method,
            location_id: at.map(str::to_owned),
        }
    }

    fn address(lat: f64) -> ShippingAddress {
        serde_json::from_value(json!({
            "line1": "2 Side St", "city": "Berlin", "postal_code": "10115", "country": "DE",
            "geo": Geo { lat, lon: 13.4 },
        }))
        .unwrap()
    }

    fn stock(entries: &[(&str, &str, i64)]) -> StockByLocation {
        let mut stock = StockByLocation::new();
        for (location, sku, n) in entries {
            stock
                .entry(location.to_string())
                .or_default()
                .insert(sku.to_string(), *n);
        }
        stock
    }

    fn ids(locations: &[&Location]) -> Vec<String> {
        locations.iter().map(|l| l.id.clone()).collect()
    }

    fn codes(unserved: Unserved) -> Vec<String> {
        match unserved {
            Unserved::Invalid(invalid) => invalid.0.into_iter().map(|e| e.code).collect(),
            Unserved::Short(errors) => errors.into_iter().map(|e| e.code).collect(),
        }
    }

    #[test]
    fn a_shipment_comes_from_warehouses_and_stores_that_ship_and_needs_an_address() {
        let mut locations = shop();
        locations[2].draft.ship_from = true;
        let from = ship_from(&locations, Some(&address(52.5))).unwrap();
        assert_eq!(ids(&from), ["warehouse", "pankow"]);
        assert_eq!(ship_from(&locations, None).unwrap_err().0[0].field, "shipping_address");
    }

    #[test]
    fn a_chosen_store_must_be_the_channels_and_allow_pick_up() {
        let mut locations = shop();
        let ok = check_store_choice(&locations, &fulfillment(Method::Pickup, Some("mitte")));
        assert_eq!(ok, Ok(()));
        let elsewhere = check_store_choice(&locations, &fulfillment(Method::Pickup, Some("other")));
        assert_eq!(elsewhere.unwrap_err().0[0].code, "not_in_channel");
        locations[1].draft.pickup = false;
        let no_pickup = check_store_choice(&locations, &fulfillment(Method::ReserveInStore, Some("mitte")));
        assert_eq!(no_pickup.unwrap_err().0[0].code, "no_pickup");
        // Delivered the same day from a store: no pick-up there needed; a shipment's is ignored.
        assert_eq!(
            check_store_choice(&locations, &fulfillment(Method::SameDay, Some("mitte"))),
            Ok(())
        );
        assert_eq!(
            check_store_choice(&locations, &fulfillment(Method::Ship, Some("other"))),
            Ok(())
        );
        let unnamed = pickup_store(&locations, &fulfillment(Method::Pickup, None));
        assert_eq!(unnamed.unwrap_err().0[0].code, "required");
    }

    #[test]
    fn a_pickup_store_short_of_stock_names_the_short_lines_and_the_nearest_stores_holding_all() {
        let locations = shop();
        let lines = [("SKU-1".to_string(), 2), ("SKU-2".to_string(), 1)];
        let stock = stock(&[
            ("mitte", "SKU-1", 1),
            ("mitte", "SKU-2", 5),
            ("pankow", "SKU-1", 2),
            ("pankow", "SKU-2", 1),
            ("far", "SKU-1", 9),
            ("far", "SKU-2", 9),
            ("warehouse", "SKU-1", 9),
            ("warehouse", "SKU-2", 9),
        ]);
        assert_eq!(check_pickup_stock(&locations[2], &locations, &stock, &lines), Ok(()));
        let Err(Unserved::Short(errors)) = check_pickup_stock(&locations[1], &locations, &stock, &lines) else {
            panic!("mitte is short of SKU-1");
        };
        assert_eq!(errors[0].field, "lines[0].quantity");
        assert_eq!(errors[0].message, "2 units of SKU-1 wanted, 1 at this store");
        // Nearest first; the warehouse allows no pick-up.
        let offered: Vec<&str> = errors[1..]
            .iter()
            .map(|e| e.message.split(':').next().unwrap())
            .collect();
        assert_eq!(offered, ["pankow", "far"]);
    }

    #[test]
    fn same_day_comes_from_the_nearest_covering_store_that_holds_everything() {
        let locations = shop();
        let lines = [("SKU-1".to_string(), 1)];
        let to = address(52.53);
        let stores = same_day_stores(&locations, &fulfillment(Method::SameDay, None), Some(&to)).unwrap();
        assert_eq!(
            ids(&stores),
            ["mitte", "pankow"],
            "nearest first, the far store out of its radius"
        );
        let only_pankow = stock(&[("pankow", "SKU-1", 1)]);
        assert_eq!(
            first_holding_everything(&stores, &only_pankow, &lines).unwrap().id,
            "pankow"
        );
        let none = first_holding_everything(&stores, &stock(&[]), &lines).unwrap_err();
        assert_eq!(codes(none), ["insufficient_stock"]);
        let named = same_day_stores(&locations, &fulfillment(Method::SameDay, Some("pankow")), Some(&to)).unwrap();
        assert_eq!(ids(&named), ["pankow"]);
        let far_away = same_day_stores(&locations, &fulfillment(Method::SameDay, None), Some(&address(60.0)));
        assert_eq!(far_away.unwrap_err().0[0].code, "out_of_radius");
        let no_geo = same_day_stores(&locations, &fulfillment(Method::SameDay, None), None);
        assert_eq!(no_geo.unwrap_err().0[0].field, "shipping_address.geo");
    }
}

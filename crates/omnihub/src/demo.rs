//! A small but realistic demo shop: an outdoor-clothing brand with a warehouse, three stores,
//! five sales channels and a few dozen products with variants.

use omnihub_domain::Money;
use omnihub_domain::catalog::{
    Address, ChannelDraft, ChannelKind, Geo, ListingDraft, LocationDraft, LocationKind, Parity, PriceOverride,
    PricePolicy, ProductDraft, StockBuffer, VariantDraft,
};
use omnihub_domain::inventory::{AdjustmentDraft, MovementReason};
use omnihub_store::{Page, Store};

use crate::BoxError;

mod staff;

pub use staff::Login;

/// What the demo made.
pub struct Demo {
    pub locations: usize,
    pub channels: usize,
    pub products: usize,
    pub publishable_key: Option<String>,
    /// Sign-ins to the admin app, one per role.
    pub logins: Vec<Login>,
    pub orders: usize,
}

struct Place {
    name: &'static str,
    kind: LocationKind,
    street: &'static str,
    city: &'static str,
    postal_code: &'static str,
    geo: (f64, f64),
    same_day_km: Option<f64>,
    priority: i64,
}

const PLACES: &[Place] = &[
    Place {
        name: "Central Warehouse",
        kind: LocationKind::Warehouse,
        street: "Logistikring 4",
        city: "Erfurt",
        postal_code: "99095",
        geo: (50.99, 11.03),
        same_day_km: None,
        priority: 10,
    },
    Place {
        name: "Berlin Mitte Store",
        kind: LocationKind::Store,
        street: "Rosenthaler Str. 40",
        city: "Berlin",
        postal_code: "10178",
        geo: (52.526, 13.402),
        same_day_km: Some(15.0),
        priority: 5,
    },
    Place {
        name: "Hamburg Store",
        kind: LocationKind::Store,
        street: "Mönckebergstr. 11",
        city: "Hamburg",
        postal_code: "20095",
        geo: (53.551, 9.999),
        same_day_km: Some(12.0),
        priority: 5,
    },
    Place {
        name: "Munich Store",
        kind: LocationKind::Store,
        street: "Kaufingerstr. 9",
        city: "München",
        postal_code: "80331",
        geo: (48.137, 11.572),
        same_day_km: Some(10.0),
        priority: 5,
    },
];

/// (title, base price in cents, sizes or colours)
const RANGE: &[(&str, i64, &[&str])] = &[
    ("Merino T-Shirt", 4900, &["S", "M", "L", "XL"]),
    ("Merino Long Sleeve", 6900, &["S", "M", "L", "XL"]),
    ("Alpine Fleece Jacket", 11900, &["S", "M", "L"]),
    ("Storm Shell Jacket", 24900, &["S", "M", "L", "XL"]),
    ("Down Vest", 13900, &["S", "M", "L"]),
    ("Trail Shorts", 5900, &["S", "M", "L"]),
    ("Hiking Trousers", 8900, &["30", "32", "34", "36"]),
    ("Rain Trousers", 9900, &["S", "M", "L"]),
    ("Wool Beanie", 2900, &["Grey", "Navy", "Ochre"]),
    ("Trail Cap", 2500, &["Black", "Sand"]),
    ("Hiking Socks", 1900, &["39-42", "43-46"]),
    ("Liner Gloves", 2400, &["S/M", "L/XL"]),
    ("Daypack 22L", 8900, &["Black", "Forest"]),
    ("Trekking Pack 45L", 17900, &["M", "L"]),
    ("Hip Pack", 3900, &["Black", "Ochre"]),
    ("Insulated Bottle 0.75L", 2900, &["Steel", "Forest"]),
    ("Camp Mug", 1900, &["Steel"]),
    ("Headlamp 400", 4900, &["Black"]),
    ("Trekking Poles", 9900, &["Pair"]),
    ("Trail Runner Shoe", 13900, &["41", "42", "43", "44", "45"]),
    ("Approach Shoe", 14900, &["41", "42", "43", "44"]),
    ("Hiking Boot Mid", 17900, &["41", "42", "43", "44", "45"]),
    ("Sleeping Bag 0°C", 19900, &["Regular", "Long"]),
    ("Sleeping Mat", 8900, &["Regular"]),
    ("Ultralight Tent 2P", 39900, &["Green"]),
    ("Microfibre Towel", 2400, &["M", "L"]),
    ("Sun Hoodie", 5900, &["S", "M", "L"]),
    ("Softshell Jacket", 15900, &["S", "M", "L", "XL"]),
    ("Base Layer Leggings", 5900, &["S", "M", "L"]),
    ("Buff Neck Gaiter", 1900, &["Grey", "Ochre", "Navy"]),
];

/// `OH-104-XL`: the product's number in the range and the option.
fn sku(number: usize, option: &str) -> String {
    let option: String = option.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("OH-{}-{}", 101 + number, option.to_uppercase())
}

/// Fills an empty database with the demo shop; leaves one that has products alone.
pub async fn seed(store: &Store) -> Result<Option<Demo>, BoxError> {
    let (existing, _) = store.products(&Page { after: None, limit: 1 }, None).await?;
    if !existing.is_empty() {
        return Ok(None);
    }
    let mut location_ids = Vec::new();
    for place in PLACES {
        let location = store
            .create_location(LocationDraft {
                name: place.name.into(),
                kind: place.kind,
                address: Address {
                    line1: place.street.into(),
                    line2: None,
                    city: place.city.into(),
                    postal_code: place.postal_code.into(),
                    region: None,
                    country: "DE".into(),
                },
                geo: Some(Geo {
                    lat: place.geo.0,
                    lon: place.geo.1,
                }),
                pickup: place.kind == LocationKind::Store,
                ship_from: true,
                same_day_radius_km: place.same_day_km,
                priority: place.priority,
            })
            .await?;
        location_ids.push(location.id);
    }
    let channel = |name: &str, kind, locations: Vec<String>, buffer: StockBuffer, policy: PricePolicy| ChannelDraft {
        name: name.into(),
        kind,
        currency: "EUR".into(),
        location_ids: locations,
        stock_buffer: buffer,
        price_policy: policy,
    };
    let strict = PricePolicy::default();
    let drafts = [
        channel(
            "Web shop",
            ChannelKind::Web,
            location_ids.clone(),
            StockBuffer::default(),
            strict.clone(),
        ),
        channel(
            "Mobile app",
            ChannelKind::MobileApp,
            location_ids.clone(),
            StockBuffer::default(),
            strict.clone(),
        ),
        channel(
            "POS Berlin Mitte",
            ChannelKind::Pos,
            vec![location_ids[1].clone()],
            StockBuffer::default(),
            strict.clone(),
        ),
        channel(
            "Marketplace",
            ChannelKind::Marketplace,
            vec![location_ids[0].clone()],
            StockBuffer {
                units: Some(1),
                percent: Some(10),
            },
            PricePolicy {
                parity: Parity::AllowOverride,
                max_deviation_percent: Some(15),
            },
        ),
        channel(
            "WhatsApp",
            ChannelKind::Messaging,
            location_ids.clone(),
            StockBuffer::default(),
            strict,
        ),
    ];
    let mut channels = Vec::new();
    for draft in drafts {
        channels.push(store.create_channel(draft).await?);
    }
    for (number, (title, price, options)) in RANGE.iter().enumerate() {
        let product = store
            .create_product(ProductDraft {
                title: (*title).into(),
                description: format!("{title} from the demo range."),
                attributes: serde_json::Map::new(),
                variants: options
                    .iter()
                    .map(|option| VariantDraft {
                        id: None,
                        sku: sku(number, option),
                        barcode: None,
                        title: (*option).into(),
                        price: Money::new(*price, "EUR"),
                    })
                    .collect(),
            })
            .await?;
        for channel in &channels {
            // The marketplace sells 10 % above the base price, within its policy.
            let overrides = if channel.draft.kind == ChannelKind::Marketplace {
                product
                    .variants
                    .iter()
                    .map(|v| PriceOverride {
                        variant_id: v.id.clone(),
                        price_override: Money::new(v.price.amount * 110 / 100, "EUR"),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            store
                .put_listing(
                    &product.id,
                    &channel.id,
                    ListingDraft {
                        published: true,
                        variants: overrides,
                    },
                    None,
                )
                .await?;
        }
    }
    stock_up(store, &location_ids).await?;
    let berlin = &location_ids[1];
    let logins = staff::accounts(store, berlin).await?;
    let orders = staff::orders(store, &channels, berlin).await?;
    let web = &channels[0];
    let publishable = store
        .generate_api_key("web shop storefront", &[], Some(&web.id), &[])
        .await?;
    Ok(Some(Demo {
        locations: location_ids.len(),
        channels: channels.len(),
        products: RANGE.len(),
        publishable_key: Some(publishable.token),
        logins,
        orders,
    }))
}

/// Receives stock: plenty in the warehouse, a little in each store, some items sold out.
async fn stock_up(store: &Store, location_ids: &[String]) -> Result<(), BoxError> {
    for (number, (_, _, options)) in RANGE.iter().enumerate() {
        for (o, option) in options.iter().enumerate() {
            for (l, location) in location_ids.iter().enumerate() {
                // A deterministic spread: the warehouse holds most; stores hold 0–5.
                let quantity = if l == 0 {
                    20 + ((number * 7 + o * 3) % 40) as i64
                } else {
                    ((number + o + l) % 6) as i64
                };
                if quantity == 0 {
                    continue;
                }
                store
                    .adjust_stock(AdjustmentDraft {
                        sku: sku(number, option),
                        location_id: location.clone(),
                        delta: Some(quantity),
                        set_on_hand: None,
                        reason: MovementReason::Receipt,
                        reference: Some("demo opening stock".into()),
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_readable_and_unique() {
        assert_eq!(sku(3, "S/M"), "OH-104-SM");
        let mut all: Vec<String> = RANGE
            .iter()
            .enumerate()
            .flat_map(|(n, (_, _, options))| options.iter().map(move |o| sku(n, o)))
            .collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "demo SKUs collide");
    }
}

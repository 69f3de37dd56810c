//! The catalog: sales channels, locations, products with variants, channel listings and the
//! price-parity rule that keeps prices the same everywhere unless a channel may differ.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::money::{Money, check_currency};
use crate::validation::{Check, Invalid, Lines};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Web,
    MobileApp,
    Pos,
    Marketplace,
    Social,
    Messaging,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 6] = [
        ChannelKind::Web,
        ChannelKind::MobileApp,
        ChannelKind::Pos,
        ChannelKind::Marketplace,
        ChannelKind::Social,
        ChannelKind::Messaging,
    ];
}

/// Stock held back from a channel so that a rush elsewhere cannot make it promise what is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StockBuffer {
    /// Units held back per SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<i64>,
    /// Percent of the SKU's stock held back (rounded up to whole units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// The channel sells at the base price; overrides are refused.
    #[default]
    Strict,
    /// Overrides are allowed within `max_deviation_percent` of the base price.
    AllowOverride,
}

impl Parity {
    pub const ALL: [Parity; 2] = [Parity::Strict, Parity::AllowOverride];
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PricePolicy {
    #[serde(default)]
    pub parity: Parity,
    /// With `allow_override`: the largest allowed deviation from the base price, in percent.
    /// Absent means any deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deviation_percent: Option<i64>,
}

/// What a client sends to create or replace a sales channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelDraft {
    pub name: String,
    pub kind: ChannelKind,
    /// ISO 4217 code of the channel's prices.
    pub currency: String,
    /// The locations whose stock this channel may sell.
    #[serde(default)]
    pub location_ids: Vec<String>,
    #[serde(default)]
    pub stock_buffer: StockBuffer,
    #[serde(default)]
    pub price_policy: PricePolicy,
}

impl ChannelDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check.text("name", &self.name, 200);
        check_currency("currency", &self.currency, &mut check);
        if let Some(units) = self.stock_buffer.units
            && units < 0
        {
            check.fail("stock_buffer.units", "out_of_range", "must not be negative");
        }
        if let Some(percent) = self.stock_buffer.percent
            && !(0..=100).contains(&percent)
        {
            check.fail("stock_buffer.percent", "out_of_range", "must be between 0 and 100");
        }
        if let Some(max) = self.price_policy.max_deviation_percent
            && !(0..=100).contains(&max)
        {
            check.fail(
                "price_policy.max_deviation_percent",
                "out_of_range",
                "must be between 0 and 100",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, id) in self.location_ids.iter().enumerate() {
            if !seen.insert(id) {
                check.fail(format!("location_ids[{i}]"), "duplicate", "is listed twice");
            }
        }
        check.done()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    pub id: String,
    #[serde(flatten)]
    pub draft: ChannelDraft,
    pub version: i64,
    pub created_at: crate::Timestamp,
    pub updated_at: crate::Timestamp,
}

impl Channel {
    /// What the channel charges for a variant priced `base`: its listing's override while the
    /// channel's policy allows it (a policy tightened since, or a base price moved, puts the
    /// base price back), else the base price; `None` when neither is in the channel's currency.
    pub fn charged(&self, base: &Money, price_override: Option<&Money>) -> Option<Money> {
        let currency = &self.draft.currency;
        price_override
            .filter(|o| &o.currency == currency && self.draft.price_policy.allows(base, o).is_ok())
            .or((&base.currency == currency).then_some(base))
            .cloned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    Warehouse,
    Store,
    Dropship,
}

impl LocationKind {
    pub const ALL: [LocationKind; 3] = [LocationKind::Warehouse, LocationKind::Store, LocationKind::Dropship];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 (`DE`).
    pub country: String,
}

impl Address {
    pub fn check(&self, field: &str, check: &mut Check) {
        check.text(&format!("{field}.line1"), &self.line1, 200);
        check.text(&format!("{field}.city"), &self.city, 100);
        check.text(&format!("{field}.postal_code"), &self.postal_code, 20);
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            check.fail(
                format!("{field}.country"),
                "invalid",
                "must be an ISO 3166-1 alpha-2 code such as DE",
            );
        }
    }
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Geo {
    pub lat: f64,
    pub lon: f64,
}

impl Geo {
    pub fn check(&self, field: &str, check: &mut Check) {
        check.range(&format!("{field}.lat"), self.lat, -90.0, 90.0);
        check.range(&format!("{field}.lon"), self.lon, -180.0, 180.0);
    }

    /// Great-circle distance in kilometres (haversine).
    pub fn distance_km(&self, other: &Geo) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * 6371.0 * a.sqrt().asin()
    }
}

/// What a client sends to create or replace a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LocationDraft {
    pub name: String,
    pub kind: LocationKind,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// Customers may pick up orders here.
    #[serde(default)]
    pub pickup: bool,
    /// Orders may be shipped from here.
    #[serde(default)]
    pub ship_from: bool,
    /// Same-day delivery reaches addresses within this many kilometres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_day_radius_km: Option<f64>,
    /// Higher is preferred when sourcing.
    #[serde(default)]
    pub priority: i64,
}

impl LocationDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check.text("name", &self.name, 200);
        self.address.check("address", &mut check);
        if let Some(geo) = &self.geo {
            geo.check("geo", &mut check);
        }
        if let Some(radius) = self.same_day_radius_km {
            check.range("same_day_radius_km", radius, 0.0, 500.0);
            if self.geo.is_none() {
                check.fail("geo", "required", "is needed to deliver the same day");
            }
        }
        check.done()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    pub id: String,
    #[serde(flatten)]
    pub draft: LocationDraft,
    pub version: i64,
    pub created_at: crate::Timestamp,
    pub updated_at: crate::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariantDraft {
    /// Given when a change keeps an existing variant; absent for a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stock-keeping unit, unique in the whole catalog.
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    pub title: String,
    /// The base price, the same in every channel unless a listing overrides it.
    pub price: Money,
}

/// What a client sends to create or replace a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductDraft {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Free-form attributes (`{"material": "wool"}`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    pub variants: Vec<VariantDraft>,
}

impl ProductDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check.text("title", &self.title, 300);
        if self.description.chars().count() > 20_000 {
            check.fail("description", "too_long", "must be at most 20000 characters");
        }
        check.characters("description", &self.description, Lines::Many);
        if self.variants.is_empty() {
            check.fail("variants", "required", "a product needs at least one variant");
        }
        let mut skus = std::collections::HashSet::new();
        for (i, variant) in self.variants.iter().enumerate() {
            let field = format!("variants[{i}]");
            check_sku(&format!("{field}.sku"), &variant.sku, &mut check);
            if !skus.insert(variant.sku.as_str()) {
                check.fail(format!("{field}.sku"), "duplicate", "is used twice in this product");
            }
            check.text(&format!("{field}.title"), &variant.title, 300);
            variant.price.check_price(&format!("{field}.price"), &mut check);
            if let Some(barcode) = &variant.barcode {
                check.text(&format!("{field}.barcode"), barcode, 64);
            }
        }
        check.done()
    }
}

/// A SKU is 1–64 printable characters without spaces; it is matched exactly.
pub fn check_sku(field: &str, sku: &str, check: &mut Check) {
    if sku.is_empty() || sku.len() > 64 || !sku.bytes().all(|b| b.is_ascii_graphic()) {
        check.fail(field, "invalid", "must be 1 to 64 printable characters without spaces");
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Variant {
    pub id: String,
    pub sku: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    pub title: String,
    pub price: Money,
    /// This channel's price, when the product was read for one channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_price: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    pub id: String,
    pub title: String,
    pub description: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    pub variants: Vec<Variant>,
    pub version: i64,
    pub created_at: crate::Timestamp,
    pub updated_at: crate::Timestamp,
}

impl Product {
    /// The product as a draft, so that a merge patch can be applied to it.
    pub fn to_draft(&self) -> ProductDraft {
        ProductDraft {
            title: self.title.clone(),
            description: self.description.clone(),
            attributes: self.attributes.clone(),
            variants: self
                .variants
                .iter()
                .map(|v| VariantDraft {
                    id: Some(v.id.clone()),
                    sku: v.sku.clone(),
                    barcode: v.barcode.clone(),
                    title: v.title.clone(),
                    price: v.price.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub variant_id: String,
    pub price_override: Money,
}

/// Publishing a product in a sales channel, with optional channel prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListingDraft {
    pub published: bool,
    #[serde(default)]
    pub variants: Vec<PriceOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    pub product_id: String,
    pub channel_id: String,
    pub published: bool,
    pub variants: Vec<PriceOverride>,
    pub version: i64,
    pub updated_at: crate::Timestamp,
}

impl ListingDraft {
    /// Checks every override against the product's variants and the channel's price policy.
    pub fn validate(&self, product: &Product, channel: &Channel) -> Result<(), Invalid> {
        let mut check = Check::new();
        let policy = &channel.draft.price_policy;
        let mut seen = std::collections::HashSet::new();
        for (i, over) in self.variants.iter().enumerate() {
            let field = format!("variants[{i}]");
            if !seen.insert(over.variant_id.as_str()) {
                check.fail(format!("{field}.variant_id"), "duplicate", "is listed twice");
            }
            let Some(variant) = product.variants.iter().find(|v| v.id == over.variant_id) else {
                check.fail(
                    format!("{field}.variant_id"),
                    "not_found",
                    "is not a variant of this product",
                );
                continue;
            };
            let price = &over.price_override;
            let price_field = format!("{field}.price_override");
            price.check_price(&price_field, &mut check);
            if price.currency != channel.draft.currency {
                check.fail(
                    format!("{price_field}.currency"),
                    "invalid",
                    format!("must be the channel's currency {}", channel.draft.currency),
                );
                continue;
            }
            if let Err(message) = policy.allows(&variant.price, price) {
                check.fail(price_field, "price_policy", message);
            }
        }
        if self.published {
            let overridden = |v: &Variant| self.variants.iter().any(|o| o.variant_id == v.id);
            for v in product
                .variants
                .iter()
                .filter(|v| channel.charged(&v.price, None).is_none())
            {
                if !overridden(v) {
                    check.fail(
                        "variants",
                        "price_required",
                        format!(
                            "{} is priced in {} and the channel sells in {}: give it a price_override",
                            v.sku, v.price.currency, channel.draft.currency
                        ),
                    );
                }
            }
        }
        check.done()
    }
}

impl PricePolicy {
    /// Whether a channel price may differ from the base price this much.
    pub fn allows(&self, base: &Money, channel: &Money) -> Result<(), String> {
        if base.currency != channel.currency || base.amount == channel.amount {
            return Ok(());
        }
        match (self.parity, self.max_deviation_percent) {
            (Parity::Strict, _) => Err("the channel's parity policy is strict: no price override".into()),
            (Parity::AllowOverride, None) => Ok(()),
            (Parity::AllowOverride, Some(max)) => {
                let deviation = (channel.amount - base.amount).abs();
                // deviation / base <= max / 100, in integers.
                if i128::from(deviation) * 100 <= i128::from(max) * i128::from(base.amount) {
                    Ok(())
                } else {
                    Err(format!("deviates more than {max} % from the base price"))
                }
            }
        }
    }
}

/// A listing whose channel price differs from the variant's base price.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParityRow {
    pub product_id: String,
    pub channel_id: String,
    pub variant_id: String,
    pub sku: String,
    pub base_price: Money,
    pub channel_price: Money,
    /// (channel − base) / base in basis points (1 % = 100); absent across currencies.
    pub deviation_basis_points: Option<i64>,
    /// Whether the channel's current price policy still allows this price.
    pub within_policy: bool,
}

/// The deviation of a channel price from the base price, in basis points (1 % = 100).
pub fn deviation_basis_points(base: &Money, channel: &Money) -> Option<i64> {
    if base.currency != channel.currency || base.amount == 0 {
        return None;
    }
    Some(((i128::from(channel.amount - base.amount) * 10_000) / i128::from(base.amount)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR")
    }

    #[test]
    fn strict_parity_refuses_any_difference() {
        let policy = PricePolicy::default();
        assert!(policy.allows(&eur(1000), &eur(1000)).is_ok());
        assert!(policy.allows(&eur(1000), &eur(999)).is_err());
    }

    #[test]
    fn a_channel_charges_an_override_only_while_its_policy_allows_it() {
        let channel = |currency: &str, parity| Channel {
            id: "chn_1".into(),
            draft: ChannelDraft {
                name: "Shop".into(),
                kind: ChannelKind::Web,
                currency: currency.into(),
                location_ids: Vec::new(),
                stock_buffer: StockBuffer::default(),
                price_policy: PricePolicy {
                    parity,
                    max_deviation_percent: None,
                },
            },
            version: 1,
            created_at: crate::Timestamp(0),
            updated_at: crate::Timestamp(0),
        };
        let open = channel("EUR", Parity::AllowOverride);
        assert_eq!(open.charged(&eur(1000), Some(&eur(1100))), Some(eur(1100)));
        let strict = channel("EUR", Parity::Strict);
        assert_eq!(strict.charged(&eur(1000), Some(&eur(1100))), Some(eur(1000)));
        assert_eq!(strict.charged(&eur(1000), None), Some(eur(1000)));
        let dollars = channel("USD", Parity::Strict);
        let usd = Money::new(1200, "USD");
        assert_eq!(dollars.charged(&eur(1000), Some(&usd)), Some(usd));
        assert_eq!(dollars.charged(&eur(1000), None), None);
        assert_eq!(dollars.charged(&eur(1000), Some(&eur(1000))), None);
    }

    #[test]
    fn allowed_deviation_is_inclusive() {
        let policy = PricePolicy {
            parity: Parity::AllowOverride,
            max_deviation_percent: Some(10),
        };
        assert!(policy.allows(&eur(1000), &eur(1100)).is_ok());
        assert!(policy.allows(&eur(1000), &eur(900)).is_ok());
        assert!(policy.allows(&eur(1000), &eur(1101)).is_err());
        assert!(policy.allows(&eur(1000), &eur(899)).is_err());
    }

    #[test]
    fn deviation_in_basis_points() {
        assert_eq!(deviation_basis_points(&eur(2000), &eur(2200)), Some(1000));
        assert_eq!(deviation_basis_points(&eur(2000), &eur(1900)), Some(-500));
        assert_eq!(deviation_basis_points(&eur(0), &eur(1)), None);
    }

    #[test]
    fn product_validation_reports_every_field() {
        let draft = ProductDraft {
            title: " ".into(),
            description: String::new(),
            attributes: Map::new(),
            variants: vec![
                VariantDraft {
                    id: None,
                    sku: "A 1".into(),
                    barcode: None,
                    title: "x".into(),
                    price: Money::new(-1, "eur"),
                },
                VariantDraft {
                    id: None,
                    sku: "B".into(),
                    barcode: None,
                    title: "y".into(),
                    price: eur(1),
                },
                VariantDraft {
                    id: None,
                    sku: "B".into(),
                    barcode: None,
                    title: "z".into(),
                    price: eur(1),
                },
            ],
        };
        let Invalid(errors) = draft.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "variants[0].sku",
                "variants[0].price.currency",
                "variants[0].price.amount",
                "variants[2].sku"
            ]
        );
    }

    #[test]
    fn distance_between_berlin_and_hamburg() {
        let berlin = Geo {
            lat: 52.52,
            lon: 13.405,
        };
        let hamburg = Geo {
            lat: 53.551,
            lon: 9.993,
        };
        let km = berlin.distance_km(&hamburg);
        assert!((250.0..260.0).contains(&km), "{km}");
    }
}

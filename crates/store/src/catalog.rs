//! Sales channels, locations, products with variants and channel listings.

pub(crate) mod cache;

use omnihub_domain::catalog::{
    Address, Channel, ChannelDraft, ChannelKind, Geo, Listing, ListingDraft, Location, LocationDraft, LocationKind,
    Parity, ParityRow, PriceOverride, PricePolicy, Product, ProductDraft, StockBuffer, Variant, deviation_basis_points,
};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::{Invalid, Money, Timestamp};
use serde::Serialize;

use crate::db::events::append;
use crate::db::{Page, Row, Tx, sql};
use crate::{Error, Store};

fn enum_text<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_enum<T: serde::de::DeserializeOwned>(text: String) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| Error::Corrupt(format!("unknown value {text}")))
}

/// Fails with 412 semantics when the caller's version is stale, 404 when the row is gone.
async fn check_updated(
    tx: &mut Tx,
    changed: u64,
    table: &'static str,
    what: &'static str,
    id: &str,
) -> Result<(), Error> {
    if changed == 1 {
        return Ok(());
    }
    let query = match table {
        "channels" => sql("SELECT version FROM channels WHERE id = $1"),
        "locations" => sql("SELECT version FROM locations WHERE id = $1"),
        _ => sql("SELECT version FROM products WHERE id = $1"),
    };
    match tx.fetch_optional(query.bind(id)).await? {
        Some(row) => Err(Error::VersionMismatch {
            current: row.int("version")?,
        }),
        None => Err(Error::NotFound(what)),
    }
}

// ---- locations ----

fn location(row: &Row) -> Result<Location, Error> {
    let geo = match (row.opt_float("lat")?, row.opt_float("lon")?) {
        (Some(lat), Some(lon)) => Some(Geo { lat, lon }),
        _ => None,
    };
    Ok(Location {
        id: row.text("id")?,
        draft: LocationDraft {
            name: row.text("name")?,
            kind: parse_enum::<LocationKind>(row.text("kind")?)?,
            address: row.json::<Address>("address")?,
            geo,
            pickup: row.bool("pickup")?,
            ship_from: row.bool("ship_from")?,
            same_day_radius_km: row.opt_float("same_day_radius_km")?,
            priority: row.int("priority")?,
        },
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

impl Store {
    pub async fn create_location(&self, draft: LocationDraft) -> Result<Location, Error> {
        draft.validate()?;
        let now = self.now();
        let location = Location {
            id: id::new(Kind::Location),
            draft,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let d = &location.draft;
        let mut tx = self.db.begin().await?;
        tx.execute(
            sql("INSERT INTO locations (id, name, kind, address, lat, lon, pickup, ship_from, same_day_radius_km, priority, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)")
            .bind(&location.id)
            .bind(&d.name)
            .bind(enum_text(&d.kind))
            .bind(serde_json::to_string(&d.address).unwrap_or_default())
            .bind(d.geo.map(|g| g.lat))
            .bind(d.geo.map(|g| g.lon))
            .bind(d.pickup)
            .bind(d.ship_from)
            .bind(d.same_day_radius_km)
            .bind(d.priority)
            .bind(location.version)
            .bind(now.millis()),
        )
        .await?;
        append(&mut tx, now, NewEvent::new(EventType::LocationCreated, &location));
        self.commit(tx).await?;
        Ok(location)
    }

    pub async fn update_location(&self, id: &str, draft: LocationDraft, version: i64) -> Result<Location, Error> {
        draft.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE locations SET name = $3, kind = $4, address = $5, lat = $6, lon = $7, pickup = $8, ship_from = $9, \
                     same_day_radius_km = $10, priority = $11, version = version + 1, updated_at = $12 \
                     WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .bind(&draft.name)
                .bind(enum_text(&draft.kind))
                .bind(serde_json::to_string(&draft.address).unwrap_or_default())
                .bind(draft.geo.map(|g| g.lat))
                .bind(draft.geo.map(|g| g.lon))
                .bind(draft.pickup)
                .bind(draft.ship_from)
                .bind(draft.same_day_radius_km)
                .bind(draft.priority)
                .bind(now.millis()),
            )
            .await?;
        check_updated(&mut tx, changed, "locations", "location", id).await?;
        let row = tx
            .fetch_optional(sql("SELECT * FROM locations WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("location"))?;
        let updated = location(&row)?;
        append(&mut tx, now, NewEvent::new(EventType::LocationUpdated, &updated));
        self.commit(tx).await?;
        Ok(updated)
    }

    pub async fn location(&self, id: &str) -> Result<Location, Error> {
        self.cached(|s| &mut s.locations, id.to_owned(), self.read_location(id))
            .await
    }

    async fn read_location(&self, id: &str) -> Result<Location, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT * FROM locations WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("location"))?;
        location(&row)
    }

    pub async fn locations(&self, page: &Page) -> Result<(Vec<Location>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM locations WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after())
                    .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(location).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |l| &l.id))
    }
}

// ---- channels ----

fn channel(row: &Row, location_ids: Vec<String>) -> Result<Channel, Error> {
    Ok(Channel {
        id: row.text("id")?,
        draft: ChannelDraft {
            name: row.text("name")?,
            kind: parse_enum::<ChannelKind>(row.text("kind")?)?,
            currency: row.text("currency")?,
            location_ids,
            stock_buffer: StockBuffer {
                units: row.opt_int("buffer_units")?,
                percent: row.opt_int("buffer_percent")?,
            },
            price_policy: PricePolicy {
                parity: parse_enum::<Parity>(row.text("parity")?)?,
                max_deviation_percent: row.opt_int("max_deviation_percent")?,
            },
        },
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// Every location id must exist.
async fn check_locations_exist(tx: &mut Tx, ids: &[String]) -> Result<(), Error> {
    let mut missing = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if tx
            .fetch_optional(sql("SELECT id FROM locations WHERE id = $1").bind(id))
            .await?
            .is_none()
        {
            missing.push(omnihub_domain::FieldError {
                field: format!("location_ids[{i}]"),
                code: "not_found".into(),
                message: format!("there is no location {id}"),
            });
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Invalid(missing).into())
    }
}

async fn write_channel_locations(tx: &mut Tx, channel_id: &str, ids: &[String]) -> Result<(), Error> {
    tx.execute(sql("DELETE FROM channel_locations WHERE channel_id = $1").bind(channel_id))
        .await?;
    for (position, location_id) in ids.iter().enumerate() {
        tx.execute(
            sql("INSERT INTO channel_locations (channel_id, location_id, position) VALUES ($1, $2, $3)")
                .bind(channel_id)
                .bind(location_id)
                .bind(position as i64),
        )
        .await?;
    }
    Ok(())
}

impl Store {
    pub async fn create_channel(&self, draft: ChannelDraft) -> Result<Channel, Error> {
        draft.validate()?;
        let now = self.now();
        let channel = Channel {
            id: id::new(Kind::Channel),
            draft,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let d = &channel.draft;
        let mut tx = self.db.begin().await?;
        check_locations_exist(&mut tx, &d.location_ids).await?;
        tx.execute(
            sql("INSERT INTO channels (id, name, kind, currency, buffer_units, buffer_percent, parity, max_deviation_percent, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)")
            .bind(&channel.id)
            .bind(&d.name)
            .bind(enum_text(&d.kind))
            .bind(&d.currency)
            .bind(d.stock_buffer.units)
            .bind(d.stock_buffer.percent)
            .bind(enum_text(&d.price_policy.parity))
            .bind(d.price_policy.max_deviation_percent)
            .bind(channel.version)
            .bind(now.millis()),
        )
        .await?;
        write_channel_locations(&mut tx, &channel.id, &d.location_ids).await?;
        append(&mut tx, now, NewEvent::new(EventType::ChannelCreated, &channel));
        self.commit(tx).await?;
        Ok(channel)
    }

    pub async fn update_channel(&self, id: &str, draft: ChannelDraft, version: i64) -> Result<Channel, Error> {
        draft.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        check_locations_exist(&mut tx, &draft.location_ids).await?;
        let changed = tx
            .execute(
                sql("UPDATE channels SET name = $3, kind = $4, currency = $5, buffer_units = $6, buffer_percent = $7, parity = $8, \
                     max_deviation_percent = $9, version = version + 1, updated_at = $10 WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .bind(&draft.name)
                .bind(enum_text(&draft.kind))
                .bind(&draft.currency)
                .bind(draft.stock_buffer.units)
                .bind(draft.stock_buffer.percent)
                .bind(enum_text(&draft.price_policy.parity))
                .bind(draft.price_policy.max_deviation_percent)
                .bind(now.millis()),
            )
            .await?;
        check_updated(&mut tx, changed, "channels", "channel", id).await?;
        write_channel_locations(&mut tx, id, &draft.location_ids).await?;
        let updated = Channel {
            id: id.to_owned(),
            draft,
            version: version + 1,
            created_at: self.channel_created_at(&mut tx, id).await?,
            updated_at: now,
        };
        append(&mut tx, now, NewEvent::new(EventType::ChannelUpdated, &updated));
        self.commit(tx).await?;
        Ok(updated)
    }

    async fn channel_created_at(&self, tx: &mut Tx, id: &str) -> Result<Timestamp, Error> {
        let row = tx
            .fetch_optional(sql("SELECT created_at FROM channels WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("channel"))?;
        Ok(Timestamp(row.int("created_at")?))
    }

    pub async fn channel(&self, id: &str) -> Result<Channel, Error> {
        self.cached(|s| &mut s.channels, id.to_owned(), self.read_channel(id))
            .await
    }

    async fn read_channel(&self, id: &str) -> Result<Channel, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT * FROM channels WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("channel"))?;
        let locations = self
            .db
            .fetch_all(
                sql("SELECT location_id FROM channel_locations WHERE channel_id = $1 ORDER BY position").bind(id),
            )
            .await?;
        let ids = locations
            .iter()
            .map(|r| r.text("location_id"))
            .collect::<Result<_, _>>()?;
        channel(&row, ids)
    }

    pub async fn channels(&self, page: &Page) -> Result<(Vec<Channel>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM channels WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after())
                    .bind(page.limit + 1),
            )
            .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok((Vec::new(), None));
        };
        // The locations of the whole page in one query: the page is a contiguous id range.
        let links = self
            .db
            .fetch_all(
                sql("SELECT channel_id, location_id FROM channel_locations WHERE channel_id BETWEEN $1 AND $2 ORDER BY channel_id, position")
                    .bind(first.text("id")?)
                    .bind(last.text("id")?),
            )
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row.text("id")?;
            let mut ids = Vec::new();
            for link in &links {
                if link.text("channel_id")? == id {
                    ids.push(link.text("location_id")?);
                }
            }
            items.push(channel(row, ids)?);
        }
        Ok(page.finish(items, |c| &c.id))
    }
}

// ---- products ----

fn variant(row: &Row) -> Result<Variant, Error> {
    Ok(Variant {
        id: row.text("id")?,
        sku: row.text("sku")?,
        barcode: row.opt_text("barcode")?,
        title: row.text("title")?,
        price: Money::new(row.int("price_amount")?, &row.text("price_currency")?),
        channel_price: None,
    })
}

fn product(row: &Row, variants: Vec<Variant>) -> Result<Product, Error> {
    Ok(Product {
        id: row.text("id")?,
        title: row.text("title")?,
        description: row.text("description")?,
        attributes: row.json("attributes")?,
        variants,
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// A SKU that still has stock on hand, reserved units or active reservations cannot leave the
/// catalog, with its variant or by a new SKU for it (unless the change gives it to another
/// variant): its stock would be orphaned and go to the next product given that SKU.
async fn refuse_removing_stocked(tx: &mut Tx, variant_id: &str, draft: &ProductDraft) -> Result<(), Error> {
    let Some(row) = tx
        .fetch_optional(sql("SELECT sku FROM variants WHERE id = $1").bind(variant_id))
        .await?
    else {
        return Ok(());
    };
    let sku = row.text("sku")?;
    if draft.variants.iter().any(|v| v.sku == sku) {
        return Ok(());
    }
    let levels = tx
        .fetch_optional(
            sql(
                "SELECT CAST(SUM(on_hand) AS BIGINT) AS on_hand, CAST(SUM(reserved) AS BIGINT) AS reserved \
                 FROM inventory_levels WHERE sku = $1",
            )
            .bind(&sku),
        )
        .await?;
    let (on_hand, reserved) = match &levels {
        Some(row) => (
            row.opt_int("on_hand")?.unwrap_or(0),
            row.opt_int("reserved")?.unwrap_or(0),
        ),
        None => (0, 0),
    };
    let held = tx
        .fetch_optional(
            sql(
                "SELECT a.reservation_id FROM reservation_allocations a JOIN reservations r ON r.id = a.reservation_id \
                 WHERE a.sku = $1 AND r.status = 'active' LIMIT 1",
            )
            .bind(&sku),
        )
        .await?
        .is_some();
    let why = if on_hand != 0 {
        format!("{on_hand} units are on hand")
    } else if reserved != 0 {
        format!("{reserved} units are reserved")
    } else if held {
        "it has active reservations".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::Conflict(format!(
        "the SKU {sku} cannot be removed or renamed: {why}; adjust its stock to 0 and release its reservations first"
    )))
}

/// Writes the draft's variants: keeps those named by id, adds new ones, removes the rest.
async fn write_variants(tx: &mut Tx, product_id: &str, draft: &ProductDraft) -> Result<(), Error> {
    let existing: Vec<String> = tx
        .fetch_all(sql("SELECT id FROM variants WHERE product_id = $1").bind(product_id))
        .await?
        .iter()
        .map(|r| r.text("id"))
        .collect::<Result<_, _>>()?;
    let mut unknown = Vec::new();
    for (i, v) in draft.variants.iter().enumerate() {
        if let Some(id) = &v.id
            && !existing.contains(id)
        {
            unknown.push((i, id.clone()));
        }
    }
    if let Some((i, id)) = unknown.first() {
        return Err(Invalid::one(
            format!("variants[{i}].id"),
            "not_found",
            format!("{id} is not a variant of this product"),
        )
        .into());
    }
    let gone: Vec<&String> = existing
        .iter()
        .filter(|id| !draft.variants.iter().any(|v| v.id.as_ref() == Some(id)))
        .collect();
    for id in &existing {
        refuse_removing_stocked(tx, id, draft).await?;
    }
    for gone in gone {
        tx.execute(sql("DELETE FROM listing_prices WHERE variant_id = $1").bind(gone))
            .await?;
        tx.execute(sql("DELETE FROM variants WHERE id = $1").bind(gone)).await?;
    }
    // Park kept SKUs first so that two variants may swap SKUs within one change.
    tx.execute(sql("UPDATE variants SET sku = '~' || id WHERE product_id = $1").bind(product_id))
        .await?;
    for (position, v) in draft.variants.iter().enumerate() {
        let query = match &v.id {
            Some(id) => sql("UPDATE variants SET position = $3, sku = $4, barcode = $5, title = $6, price_amount = $7, price_currency = $8 \
                             WHERE id = $1 AND product_id = $2")
                .bind(id),
            None => sql("INSERT INTO variants (id, product_id, position, sku, barcode, title, price_amount, price_currency) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(id::new(Kind::Variant)),
        };
        let result = tx
            .execute(
                query
                    .bind(product_id)
                    .bind(position as i64)
                    .bind(&v.sku)
                    .bind(v.barcode.as_deref())
                    .bind(&v.title)
                    .bind(v.price.amount)
                    .bind(&v.price.currency),
            )
            .await;
        if let Err(e) = result {
            return Err(if e.is_unique_violation() {
                Error::Conflict(format!("SKU {} is already used by another variant", v.sku))
            } else {
                e
            });
        }
    }
    Ok(())
}

impl Store {
    pub async fn create_product(&self, draft: ProductDraft) -> Result<Product, Error> {
        draft.validate()?;
        let now = self.now();
        let id = id::new(Kind::Product);
        let mut tx = self.db.begin().await?;
        tx.execute(
            sql("INSERT INTO products (id, title, description, attributes, version, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5)")
                .bind(&id)
                .bind(&draft.title)
                .bind(&draft.description)
                .bind(serde_json::Value::Object(draft.attributes.clone()).to_string())
                .bind(now.millis()),
        )
        .await?;
        let mut draft = draft;
        for v in &mut draft.variants {
            v.id = None;
        }
        write_variants(&mut tx, &id, &draft).await?;
        let created = read_product(&mut tx, &id).await?;
        append(&mut tx, now, NewEvent::new(EventType::ProductCreated, &created));
        self.commit(tx).await?;
        Ok(created)
    }

    pub async fn update_product(&self, id: &str, draft: ProductDraft, version: i64) -> Result<Product, Error> {
        draft.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE products SET title = $3, description = $4, attributes = $5, version = version + 1, updated_at = $6 \
                     WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .bind(&draft.title)
                .bind(&draft.description)
                .bind(serde_json::Value::Object(draft.attributes.clone()).to_string())
                .bind(now.millis()),
            )
            .await?;
        check_updated(&mut tx, changed, "products", "product", id).await?;
        write_variants(&mut tx, id, &draft).await?;
        let updated = read_product(&mut tx, id).await?;
        append(&mut tx, now, NewEvent::new(EventType::ProductUpdated, &updated));
        self.commit(tx).await?;
        Ok(updated)
    }

    /// A product; with a channel, each variant carries that channel's price, and the product
    /// must be published there.
    pub async fn product(&self, id: &str, channel_id: Option<&str>) -> Result<Product, Error> {
        let key = (id.to_owned(), channel_id.unwrap_or_default().to_owned());
        self.cached(|s| &mut s.products, key, self.read_product(id, channel_id))
            .await
    }

    async fn read_product(&self, id: &str, channel_id: Option<&str>) -> Result<Product, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT * FROM products WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("product"))?;
        let variants = self
            .db
            .fetch_all(sql("SELECT * FROM variants WHERE product_id = $1 ORDER BY position").bind(id))
            .await?
            .iter()
            .map(variant)
            .collect::<Result<Vec<_>, _>>()?;
        let mut product = product(&row, variants)?;
        if let Some(channel_id) = channel_id {
            let listing = self.listing(id, channel_id).await?;
            if !listing.published {
                return Err(Error::NotFound("product"));
            }
            apply_channel_prices(&mut product, &listing, &self.channel(channel_id).await?);
        }
        Ok(product)
    }

    /// Products in id order; with a channel, only those published there, with its prices.
    pub async fn products(
        &self,
        page: &Page,
        channel_id: Option<&str>,
    ) -> Result<(Vec<Product>, Option<String>), Error> {
        let query = match channel_id {
            None => sql("SELECT * FROM products WHERE id > $1 ORDER BY id LIMIT $2").bind(page.after()).bind(page.limit + 1),
            Some(channel) => sql("SELECT p.* FROM products p JOIN listings l ON l.product_id = p.id AND l.channel_id = $3 AND l.published \
                                  WHERE p.id > $1 ORDER BY p.id LIMIT $2")
                .bind(page.after())
                .bind(page.limit + 1)
                .bind(channel),
        };
        let rows = self.db.fetch_all(query).await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok((Vec::new(), None));
        };
        let variant_rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM variants WHERE product_id BETWEEN $1 AND $2 ORDER BY product_id, position")
                    .bind(first.text("id")?)
                    .bind(last.text("id")?),
            )
            .await?;
        let mut all_variants = Vec::with_capacity(variant_rows.len());
        for row in &variant_rows {
            all_variants.push((row.text("product_id")?, variant(row)?));
        }
        let channel = match channel_id {
            Some(id) => Some(self.channel(id).await?),
            None => None,
        };
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row.text("id")?;
            let variants = all_variants
                .iter()
                .filter(|(p, _)| *p == id)
                .map(|(_, v)| v.clone())
                .collect();
            let mut product = product(row, variants)?;
            if let Some(channel) = &channel {
                let listing = self.listing(&id, &channel.id).await?;
                apply_channel_prices(&mut product, &listing, channel);
            }
            items.push(product);
        }
        Ok(page.finish(items, |p| &p.id))
    }
}

async fn read_product(tx: &mut Tx, id: &str) -> Result<Product, Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM products WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("product"))?;
    let variants = tx
        .fetch_all(sql("SELECT * FROM variants WHERE product_id = $1 ORDER BY position").bind(id))
        .await?
        .iter()
        .map(variant)
        .collect::<Result<Vec<_>, _>>()?;
    product(&row, variants)
}

fn apply_channel_prices(product: &mut Product, listing: &Listing, channel: &Channel) {
    for v in &mut product.variants {
        let over = listing.variants.iter().find(|o| o.variant_id == v.id);
        v.channel_price = channel.charged(&v.price, over.map(|o| &o.price_override));
    }
}

// ---- listings ----

impl Store {
    /// The product's listing in a channel; unpublished when it was never listed.
    pub async fn listing(&self, product_id: &str, channel_id: &str) -> Result<Listing, Error> {
        let row = self
            .db
            .fetch_optional(
                sql("SELECT * FROM listings WHERE product_id = $1 AND channel_id = $2")
                    .bind(product_id)
                    .bind(channel_id),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Listing {
                product_id: product_id.to_owned(),
                channel_id: channel_id.to_owned(),
                published: false,
                variants: Vec::new(),
                version: 0,
                updated_at: Timestamp(0),
            });
        };
        let prices = self
            .db
            .fetch_all(
                sql("SELECT lp.variant_id, lp.amount, lp.currency FROM listing_prices lp JOIN variants v ON v.id = lp.variant_id \
                     WHERE lp.product_id = $1 AND lp.channel_id = $2 ORDER BY v.position")
                .bind(product_id)
                .bind(channel_id),
            )
            .await?;
        let variants = prices
            .iter()
            .map(|r| {
                Ok(PriceOverride {
                    variant_id: r.text("variant_id")?,
                    price_override: Money::new(r.int("amount")?, &r.text("currency")?),
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Listing {
            product_id: product_id.to_owned(),
            channel_id: channel_id.to_owned(),
            published: row.bool("published")?,
            variants,
            version: row.int("version")?,
            updated_at: Timestamp(row.int("updated_at")?),
        })
    }

    /// Publishes (or withdraws) a product in a channel with its channel prices.
    pub async fn put_listing(
        &self,
        product_id: &str,
        channel_id: &str,
        draft: ListingDraft,
        version: Option<i64>,
    ) -> Result<Listing, Error> {
        let product = self.product(product_id, None).await?;
        let channel = self.channel(channel_id).await?;
        draft.validate(&product, &channel)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let current = tx
            .fetch_optional(
                sql("SELECT version FROM listings WHERE product_id = $1 AND channel_id = $2")
                    .bind(product_id)
                    .bind(channel_id),
            )
            .await?
            .map(|r| r.int("version"))
            .transpose()?;
        if let Some(expected) = version
            && expected != current.unwrap_or(0)
        {
            return Err(Error::VersionMismatch {
                current: current.unwrap_or(0),
            });
        }
        let next = current.unwrap_or(0) + 1;
        tx.execute(
            sql("INSERT INTO listings (product_id, channel_id, published, version, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (product_id, channel_id) DO UPDATE SET published = $3, version = $4, updated_at = $5")
            .bind(product_id)
            .bind(channel_id)
            .bind(draft.published)
            .bind(next)
            .bind(now.millis()),
        )
        .await?;
        tx.execute(
            sql("DELETE FROM listing_prices WHERE product_id = $1 AND channel_id = $2")
                .bind(product_id)
                .bind(channel_id),
        )
        .await?;
        for over in &draft.variants {
            tx.execute(
                sql("INSERT INTO listing_prices (product_id, channel_id, variant_id, amount, currency) VALUES ($1, $2, $3, $4, $5)")
                    .bind(product_id)
                    .bind(channel_id)
                    .bind(&over.variant_id)
                    .bind(over.price_override.amount)
                    .bind(&over.price_override.currency),
            )
            .await?;
        }
        let listing = Listing {
            product_id: product_id.to_owned(),
            channel_id: channel_id.to_owned(),
            published: draft.published,
            variants: draft.variants,
            version: next,
            updated_at: now,
        };
        append(&mut tx, now, NewEvent::new(EventType::ListingUpdated, &listing));
        self.commit(tx).await?;
        Ok(listing)
    }

    /// Channel prices that differ from their base price (of one product, if named), by variant
    /// and channel.
    pub async fn price_parity(
        &self,
        product_id: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<ParityRow>, Option<String>), Error> {
        // Ids are of one length, so the joined key sorts as the pair does.
        let rows = self
            .db
            .fetch_all(
                sql("SELECT lp.product_id, lp.channel_id, lp.variant_id, v.sku, v.price_amount, v.price_currency, lp.amount, lp.currency, \
                            c.parity, c.max_deviation_percent, lp.variant_id || ':' || lp.channel_id AS position_key \
                     FROM listing_prices lp JOIN variants v ON v.id = lp.variant_id JOIN channels c ON c.id = lp.channel_id \
                     WHERE (lp.amount <> v.price_amount OR lp.currency <> v.price_currency) \
                       AND lp.variant_id || ':' || lp.channel_id > $1 AND ($3 = '' OR lp.product_id = $3) \
                     ORDER BY lp.variant_id, lp.channel_id LIMIT $2")
                .bind(page.after())
                .bind(page.limit + 1)
                .bind(product_id.unwrap_or("")),
            )
            .await?;
        let keyed = rows
            .iter()
            .map(|r| Ok((r.text("position_key")?, parity_row(r)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let (keyed, next) = page.finish(keyed, |(key, _)| key);
        Ok((keyed.into_iter().map(|(_, row)| row).collect(), next))
    }
}

fn parity_row(r: &Row) -> Result<ParityRow, Error> {
    let base = Money::new(r.int("price_amount")?, &r.text("price_currency")?);
    let channel_price = Money::new(r.int("amount")?, &r.text("currency")?);
    let policy = PricePolicy {
        parity: parse_enum(r.text("parity")?)?,
        max_deviation_percent: r.opt_int("max_deviation_percent")?,
    };
    Ok(ParityRow {
        product_id: r.text("product_id")?,
        channel_id: r.text("channel_id")?,
        variant_id: r.text("variant_id")?,
        sku: r.text("sku")?,
        deviation_basis_points: deviation_basis_points(&base, &channel_price),
        within_policy: policy.allows(&base, &channel_price).is_ok(),
        base_price: base,
        channel_price,
    })
}

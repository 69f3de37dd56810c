//! Carts in a sales channel, priced with that channel's prices, that follow the customer
//! across channels; checkout turns one into an order.

use omnihub_domain::catalog::Channel;
use omnihub_domain::customers::LoyaltyProgram;
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::orders::{Cart, CartDetails, CartLine, CartLineDraft, CartStatus, totals};
use omnihub_domain::{FieldError, Invalid, Money, Timestamp};

use crate::db::events::append;
use crate::db::{Backend, Db, Row, Sql, Tx, sql};
use crate::{Error, Store};

impl Store {
    /// The cart as checkout would charge it: an active cart's lines at the channel's current
    /// prices (priced as checkout prices them, from the catalog cache), and the discount its
    /// loyalty points are worth. A line no longer sold in the channel keeps the price it was
    /// added at (checkout refuses it).
    pub async fn priced_cart(&self, mut cart: Cart) -> Result<Cart, Error> {
        if cart.status == CartStatus::Active && !cart.lines.is_empty() {
            let channel = self.channel(&cart.channel_id).await?;
            for line in &mut cart.lines {
                if let Some(price) = self.channel_price(&channel, &line.sku).await? {
                    line.unit_price.amount = price;
                }
            }
        }
        let sums: Vec<(i64, i64)> = cart.lines.iter().map(|l| (l.quantity, l.unit_price.amount)).collect();
        let discount = LoyaltyProgram::default().redemption_value(cart.details.loyalty_points);
        cart.totals = totals(&sums, discount, &cart.totals.total.currency)?;
        Ok(cart)
    }

    /// A variant's price in a channel: its listing's override, or the base price. `None` when
    /// the product is not published there.
    pub(super) async fn channel_price(&self, channel: &Channel, sku: &str) -> Result<Option<i64>, Error> {
        let key = (channel.id.clone(), sku.to_owned());
        self.cached(|s| &mut s.prices, key, read_channel_price(&self.db, channel, sku))
            .await
    }
}

pub(super) async fn read_channel_price(db: &Db, channel: &Channel, sku: &str) -> Result<Option<i64>, Error> {
    let row = db
        .fetch_optional(
            sql(
                "SELECT v.price_amount, v.price_currency, lp.amount AS override_amount, lp.currency AS override_currency \
                 FROM variants v \
                 JOIN listings l ON l.product_id = v.product_id AND l.channel_id = $2 AND l.published \
                 LEFT JOIN listing_prices lp ON lp.variant_id = v.id AND lp.channel_id = $2 \
                 WHERE v.sku = $1",
            )
            .bind(sku)
            .bind(&channel.id),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let base = Money::new(row.int("price_amount")?, &row.text("price_currency")?);
    let price_override = match row.opt_int("override_amount")? {
        Some(amount) => Some(Money::new(amount, &row.text("override_currency")?)),
        None => None,
    };
    Ok(channel
        .charged(&base, price_override.as_ref())
        .map(|price| price.amount))
}

/// The refusal of redeeming more points than the customer has, named after the cart's field.
pub(crate) fn points_beyond_balance(points: i64, balance: i64) -> Invalid {
    Invalid::one(
        "loyalty_points",
        "insufficient_points",
        format!("the customer has {balance} points; {points} cannot be redeemed"),
    )
}

/// A cart and its lines in one statement: one row per line, or one row without a line.
const CART_WITH_LINES: &str = "SELECT c.*, l.id AS line_id, l.sku AS line_sku, l.quantity AS line_quantity, \
     l.unit_amount AS line_unit_amount FROM carts c LEFT JOIN cart_lines l ON l.cart_id = c.id \
     WHERE c.id = $1 ORDER BY l.id";

pub(super) async fn read_cart(tx: &mut Tx, id: &str) -> Result<Cart, Error> {
    joined_cart(&tx.fetch_all(sql(CART_WITH_LINES).bind(id)).await?)
}

pub(super) fn joined_cart(rows: &[Row]) -> Result<Cart, Error> {
    let row = rows.first().ok_or(Error::NotFound("cart"))?;
    let currency = row.text("currency")?;
    let mut lines = Vec::with_capacity(rows.len());
    for l in rows {
        if let Some(id) = l.opt_text("line_id")? {
            lines.push(CartLine {
                id,
                sku: l.text("line_sku")?,
                quantity: l.int("line_quantity")?,
                unit_price: Money::new(l.int("line_unit_amount")?, &currency),
            });
        }
    }
    cart(row, lines, &currency)
}

/// The cart of a `carts` row, with its lines.
pub(super) async fn with_lines(tx: &mut Tx, row: &Row) -> Result<Cart, Error> {
    let id = row.text("id")?;
    let currency = row.text("currency")?;
    let lines = tx
        .fetch_all(sql("SELECT * FROM cart_lines WHERE cart_id = $1 ORDER BY id").bind(&id))
        .await?
        .iter()
        .map(|l| {
            Ok(CartLine {
                id: l.text("id")?,
                sku: l.text("sku")?,
                quantity: l.int("quantity")?,
                unit_price: Money::new(l.int("unit_amount")?, &currency),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    cart(row, lines, &currency)
}

pub(super) fn cart(row: &Row, lines: Vec<CartLine>, currency: &str) -> Result<Cart, Error> {
    let details = CartDetails {
        email: row.opt_text("email")?,
        customer_id: row.opt_text("customer_id")?,
        shipping_address: row
            .opt_text("shipping_address")?
            .and_then(|a| serde_json::from_str(&a).ok()),
        fulfillment: row.json("fulfillment")?,
        loyalty_points: row.int("loyalty_points")?,
    };
    let sums: Vec<(i64, i64)> = lines.iter().map(|l| (l.quantity, l.unit_price.amount)).collect();
    let status = if row.text("status")? == "active" {
        CartStatus::Active
    } else {
        CartStatus::CheckedOut
    };
    Ok(Cart {
        id: row.text("id")?,
        channel_id: row.text("channel_id")?,
        status,
        totals: totals(&sums, 0, currency)?,
        details,
        lines,
        order_id: row.opt_text("order_id")?,
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// How often adding a line reads the cart again when others changed it in between.
const LINE_ATTEMPTS: usize = 8;

/// `current` with `draft`'s units added at `price`, as written at `now`, and the line as
/// changed: a SKU already in the cart adds to its line, a new one gets a line of its own.
pub(super) fn with_line(
    current: &Cart,
    draft: &CartLineDraft,
    price: i64,
    now: Timestamp,
) -> Result<(Cart, CartLine), Error> {
    let currency = &current.totals.total.currency;
    let mut lines: Vec<CartLine> = current.lines.iter().filter(|l| l.sku != draft.sku).cloned().collect();
    let line = match current.lines.iter().find(|l| l.sku == draft.sku) {
        Some(line) => CartLine {
            quantity: line.quantity + draft.quantity,
            unit_price: Money::new(price, currency),
            ..line.clone()
        },
        None => CartLine {
            id: id::new(Kind::CartLine),
            sku: draft.sku.clone(),
            quantity: draft.quantity,
            unit_price: Money::new(price, currency),
        },
    };
    lines.push(line.clone());
    // As a read answers them.
    lines.sort_by(|a, b| a.id.cmp(&b.id));
    let sums: Vec<(i64, i64)> = lines.iter().map(|l| (l.quantity, l.unit_price.amount)).collect();
    let changed = Cart {
        totals: totals(&sums, 0, currency)?,
        lines,
        version: current.version + 1,
        updated_at: now,
        ..current.clone()
    };
    Ok((changed, line))
}

/// Binds a line's id, SKU, quantity and price, in that order.
pub(super) fn bind_line(upsert: Sql, line: &CartLine) -> Sql {
    upsert
        .bind(&line.id)
        .bind(&line.sku)
        .bind(line.quantity)
        .bind(line.unit_price.amount)
}

/// Bumps the version of an active cart and announces the change; a cart checked out
/// meanwhile refuses, and the job's changes roll back with it.
pub(super) async fn touch(tx: &mut Tx, id: &str, now: Timestamp) -> Result<Cart, Error> {
    let update =
        sql("UPDATE carts SET version = version + 1, updated_at = $2 WHERE id = $1 AND status = 'active' RETURNING *")
            .bind(id)
            .bind(now.millis());
    let cart = changed_cart(tx, update).await?.ok_or_else(checked_out)?;
    Ok(announce(tx, cart, now))
}

/// Runs `update`, which changes one cart and ends in `RETURNING *`, and reads the cart as
/// changed, with its lines; `None` when it changed nothing. On PostgreSQL that is one
/// statement (each is a round trip there); SQLite's writer runs two.
pub(super) async fn changed_cart(tx: &mut Tx, update: Sql) -> Result<Option<Cart>, Error> {
    if tx.backend() == Backend::Sqlite {
        let Some(row) = tx.fetch_optional(update).await? else {
            return Ok(None);
        };
        return with_lines(tx, &row).await.map(Some);
    }
    let read = update.within(
        "WITH changed AS (",
        ") SELECT c.*, l.id AS line_id, l.sku AS line_sku, l.quantity AS line_quantity, \
         l.unit_amount AS line_unit_amount FROM changed c LEFT JOIN cart_lines l ON l.cart_id = c.id ORDER BY l.id",
    );
    let rows = tx.fetch_all(read).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    joined_cart(&rows).map(Some)
}

/// The changed cart, with its `cart.updated` event.
pub(super) fn announce(tx: &mut Tx, cart: Cart, now: Timestamp) -> Cart {
    append(tx, now, NewEvent::new(EventType::CartUpdated, &cart));
    cart
}

pub(super) fn checked_out() -> Error {
    Error::Conflict("this cart was checked out already".into())
}

/// The statement that closes the cart the order is placed from, as it was priced; it answers
/// the cart's id, and changes nothing if the cart changed meanwhile (see [`refusal_to_close`]).
pub(crate) fn closing(cart: &PricedCart, order_id: &str, now: Timestamp) -> Sql {
    sql(
        "UPDATE carts SET status = 'checked_out', order_id = $3, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND version = $2 AND status = 'active' RETURNING id",
    )
    .bind(&cart.id)
    .bind(cart.version)
    .bind(order_id)
    .bind(now.millis())
}

/// Why a cart could not be closed: it changed since it was priced (a version mismatch while it
/// is active) or was checked out already. The placement rolls back.
pub(crate) async fn refusal_to_close(tx: &mut Tx, cart_id: &str) -> Error {
    match read_cart(tx, cart_id).await {
        Ok(latest) if latest.status == CartStatus::Active => Error::VersionMismatch {
            current: latest.version,
        },
        Ok(_) => checked_out(),
        Err(error) => error,
    }
}

/// A cart being checked out, and the version whose lines were priced.
#[derive(Debug, Clone)]
pub(crate) struct PricedCart {
    pub id: String,
    pub version: i64,
}

impl Store {
    pub async fn create_cart(&self, channel_id: &str, customer_id: Option<&str>) -> Result<Cart, Error> {
        let channel = self.channel(channel_id).await.map_err(|_| {
            Error::from(Invalid::one(
                "channel_id",
                "not_found",
                "there is no such sales channel",
            ))
        })?;
        // The order would land on the cart's customer.
        if let Some(customer_id) = customer_id {
            self.check_live_customer("customer_id", customer_id).await?;
        }
        let now = self.clock.now();
        let cart = Cart {
            id: id::new(Kind::Cart),
            channel_id: channel.id.clone(),
            status: CartStatus::Active,
            totals: totals(&[], 0, &channel.draft.currency)?,
            details: CartDetails {
                customer_id: customer_id.map(str::to_owned),
                ..CartDetails::default()
            },
            lines: Vec::new(),
            order_id: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let insert = sql("INSERT INTO carts (id, channel_id, customer_id, currency, fulfillment, loyalty_points, status, version, created_at, updated_at) \
                          VALUES ($1, $2, $3, $4, $5, 0, 'active', 1, $6, $6) RETURNING id")
            .bind(&cart.id)
            .bind(&cart.channel_id)
            .bind(cart.details.customer_id.as_deref())
            .bind(&channel.draft.currency)
            .bind(serde_json::to_string(&cart.details.fulfillment).unwrap_or_default())
            .bind(now.millis());
        self.write_announced(insert, now, NewEvent::new(EventType::CartCreated, &cart))
            .await?
            .ok_or_else(|| Error::Corrupt("the cart was not written".into()))?;
        self.recent_carts.remember(&cart);
        Ok(cart)
    }

    pub async fn cart(&self, id: &str) -> Result<Cart, Error> {
        joined_cart(&self.db.fetch_by_key(sql(CART_WITH_LINES).bind(id)).await?)
    }

    /// The cart to make a change from: as this process last wrote it, or else as read. Every
    /// change is written only at the version it was made from, so one made from a cart changed
    /// elsewhere meanwhile refuses, and is made again from the cart as read (`recent_carts`).
    pub async fn cart_to_change(&self, id: &str) -> Result<Cart, Error> {
        if let Some(cart) = self.recent_carts.get(id) {
            return Ok(cart);
        }
        let cart = self.cart(id).await?;
        self.recent_carts.remember(&cart);
        Ok(cart)
    }

    /// Makes `change` from `cart`; if it fails and the cart is no longer at that version (it
    /// was remembered or read before another change), makes it once more from the cart as it
    /// is now. A refusal made from a cart nobody had changed stands.
    pub async fn change_latest<T, E, F>(&self, cart: &Cart, change: impl Fn(Cart) -> F) -> Result<T, E>
    where
        E: From<Error>,
        F: Future<Output = Result<T, E>>,
    {
        let error = match change(cart.clone()).await {
            Err(error) => error,
            done => return done,
        };
        let latest = self.cart(&cart.id).await?;
        if latest.version == cart.version {
            return Err(error);
        }
        self.recent_carts.remember(&latest);
        change(latest).await
    }

    /// The customer's active cart, whatever channel started it: the most recently changed.
    pub async fn customer_cart(&self, customer_id: &str) -> Result<Cart, Error> {
        let mut tx = self.db.begin_read().await?;
        let row = tx
            .fetch_optional(
                sql("SELECT * FROM carts WHERE customer_id = $1 AND status = 'active' ORDER BY updated_at DESC, id DESC LIMIT 1").bind(customer_id),
            )
            .await?
            .ok_or(Error::NotFound("active cart"))?;
        with_lines(&mut tx, &row).await
    }

    /// Adds units of a SKU to `current` (the cart as just read, or as last written here) at the
    /// channel's price; the channel must be able to sell them all. The line is written at the
    /// version of `current`, so the cart as changed is known before it is written; a cart
    /// changed meanwhile is read again and the line added to that.
    pub async fn add_cart_line(&self, current: &Cart, draft: CartLineDraft) -> Result<Cart, Error> {
        draft.validate()?;
        let draft = &draft;
        self.change_latest(current, |cart| async move { self.add_line_to(&cart, draft).await })
            .await
    }

    async fn add_line_to(&self, current: &Cart, draft: &CartLineDraft) -> Result<Cart, Error> {
        let channel = self.channel(&current.channel_id).await?;
        let price = self.channel_price(&channel, &draft.sku).await?.ok_or_else(|| {
            Error::from(Invalid::one(
                "sku",
                "not_sold_here",
                format!("{} is not sold in this channel", draft.sku),
            ))
        })?;
        let mut current = current.clone();
        for _ in 0..LINE_ATTEMPTS {
            if current.status != CartStatus::Active {
                return Err(checked_out());
            }
            let (changed, line) = with_line(&current, draft, price, self.clock.now())?;
            self.check_sellable(&channel, &line.sku, line.quantity).await?;
            if self.write_line(&changed, current.version, line).await? {
                self.recent_carts.remember(&changed);
                return Ok(changed);
            }
            current = self.cart(&current.id).await?;
        }
        Err(Error::Conflict(
            "the cart changed too fast to add the line; retry".into(),
        ))
    }

    /// Writes `line` of `changed` if the cart is still active at `version`, with its event;
    /// answers whether it did. On PostgreSQL one statement, the line taking the cart's row
    /// `FROM written`.
    async fn write_line(&self, changed: &Cart, version: i64, line: CartLine) -> Result<bool, Error> {
        let now = changed.updated_at;
        let touch = sql(
            "UPDATE carts SET version = version + 1, updated_at = $3 WHERE id = $1 AND version = $2 AND status = 'active' RETURNING id",
        )
        .bind(&changed.id)
        .bind(version)
        .bind(now.millis());
        let event = NewEvent::new(EventType::CartUpdated, changed);
        if self.db.backend() == Backend::Postgres {
            let upsert = sql(concat!(
                "INSERT INTO cart_lines (id, cart_id, sku, quantity, unit_amount) SELECT $1, id, $2, $3, $4 FROM written ",
                "ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = excluded.quantity, unit_amount = excluded.unit_amount"
            ));
            let upsert = bind_line(upsert, &line);
            let written = self
                .write_announced_on_postgres(touch, Some(upsert), now, event)
                .await?;
            return Ok(written.is_some());
        }
        let cart_id = changed.id.clone();
        self.write(move |tx| {
            Box::pin(async move {
                if tx.fetch_optional(touch).await?.is_none() {
                    return Ok(false);
                }
                let upsert = sql(concat!(
                    "INSERT INTO cart_lines (id, sku, quantity, unit_amount, cart_id) VALUES ($1, $2, $3, $4, $5) ",
                    "ON CONFLICT (cart_id, sku) DO UPDATE SET quantity = excluded.quantity, unit_amount = excluded.unit_amount"
                ));
                tx.execute(bind_line(upsert, &line).bind(cart_id)).await?;
                append(tx, now, event);
                Ok(true)
            })
        })
        .await
    }

    /// Sets the quantity of a line of `current` (the cart as just read).
    pub async fn set_cart_line(&self, current: &Cart, line_id: &str, quantity: i64) -> Result<Cart, Error> {
        let mut check = omnihub_domain::validation::Check::new();
        omnihub_domain::orders::check_quantity("quantity", quantity, &mut check);
        check.done()?;
        let line = current
            .lines
            .iter()
            .find(|l| l.id == line_id)
            .ok_or(Error::NotFound("cart line"))?;
        let channel = self.channel(&current.channel_id).await?;
        self.check_sellable(&channel, &line.sku, quantity).await?;
        let (cart_id, line_id, clock) = (current.id.clone(), line_id.to_owned(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    sql("UPDATE cart_lines SET quantity = $3 WHERE id = $2 AND cart_id = $1")
                        .bind(&cart_id)
                        .bind(&line_id)
                        .bind(quantity),
                )
                .await?;
                touch(tx, &cart_id, clock.now()).await
            })
        })
        .await
        .inspect(|cart| self.recent_carts.remember(cart))
    }

    pub async fn remove_cart_line(&self, cart_id: &str, line_id: &str) -> Result<Cart, Error> {
        let (cart_id, line_id, clock) = (cart_id.to_owned(), line_id.to_owned(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let removed = tx
                    .execute(
                        sql("DELETE FROM cart_lines WHERE id = $2 AND cart_id = $1")
                            .bind(&cart_id)
                            .bind(&line_id),
                    )
                    .await?;
                if removed == 0 {
                    return Err(Error::NotFound("cart line"));
                }
                touch(tx, &cart_id, clock.now()).await
            })
        })
        .await
        .inspect(|cart| self.recent_carts.remember(cart))
    }

    /// Sets who the cart is for, where it goes and how, on `current` (the cart as just read)
    /// if it is still at `version`. Every change of a cart moves its version on, so the cart as
    /// changed is known before it is written, and on PostgreSQL it goes with its event in one
    /// statement.
    pub async fn update_cart(&self, current: &Cart, details: CartDetails, version: i64) -> Result<Cart, Error> {
        details.validate()?;
        if let Some(customer_id) = &details.customer_id {
            let balance = self.check_live_customer("customer_id", customer_id).await?;
            // Refused now on the field the client set, rather than only at checkout; a change
            // of something else leaves points the balance no longer covers to checkout.
            let spending_changed = details.customer_id != current.details.customer_id
                || details.loyalty_points != current.details.loyalty_points;
            if spending_changed && details.loyalty_points > balance {
                return Err(points_beyond_balance(details.loyalty_points, balance).into());
            }
        }
        if details.fulfillment != current.details.fulfillment {
            self.check_fulfillment(&current.channel_id, &details.fulfillment)
                .await?;
        }
        if current.status != CartStatus::Active {
            return Err(checked_out());
        }
        if version != current.version {
            return Err(Error::VersionMismatch {
                current: current.version,
            });
        }
        let now = self.clock.now();
        let changed = Cart {
            details: CartDetails {
                email: details.email.map(|e| e.trim().to_lowercase()),
                ..details
            },
            version: version + 1,
            updated_at: now,
            ..current.clone()
        };
        let details = &changed.details;
        let update = sql("UPDATE carts SET email = $3, customer_id = $4, shipping_address = $5, fulfillment = $6, loyalty_points = $7, \
                          version = version + 1, updated_at = $8 WHERE id = $1 AND version = $2 AND status = 'active' RETURNING id")
            .bind(&changed.id)
            .bind(version)
            .bind(details.email.as_deref())
            .bind(details.customer_id.as_deref())
            .bind(details.shipping_address.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default()))
            .bind(serde_json::to_string(&details.fulfillment).unwrap_or_default())
            .bind(details.loyalty_points)
            .bind(now.millis());
        if self
            .write_announced(update, now, NewEvent::new(EventType::CartUpdated, &changed))
            .await?
            .is_some()
        {
            self.recent_carts.remember(&changed);
            return Ok(changed);
        }
        // Changed or checked out since it was read.
        let latest = self.cart(&current.id).await?;
        if latest.status != CartStatus::Active {
            return Err(checked_out());
        }
        Err(Error::VersionMismatch {
            current: latest.version,
        })
    }

    async fn check_sellable(&self, channel: &Channel, sku: &str, quantity: i64) -> Result<(), Error> {
        let available = self
            .availability(channel, &[sku.to_owned()])
            .await?
            .first()
            .map_or(0, |a| a.available);
        if quantity > available {
            return Err(Error::InsufficientStock(vec![FieldError {
                field: "quantity".into(),
                code: "insufficient_stock".into(),
                message: format!("{quantity} units of {sku} wanted, {available} available in this channel"),
            }]));
        }
        Ok(())
    }
}

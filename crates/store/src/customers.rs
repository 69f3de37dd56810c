//! Customers: profiles, the identities that recognise them on every channel, resolution,
//! merges, consents, export and erasure. Loyalty points and the timeline live in the
//! submodules; other domains write into both from their own transactions.

mod loyalty;
pub(crate) mod timeline;

use std::collections::{BTreeMap, HashMap};

use omnihub_domain::customers::{
    Consent, ConsentStatus, Customer, CustomerDraft, CustomerExport, CustomerMerge, Identity, IdentityKind,
    MergeSuggestion, Region, check_merge, merge_tags, normalize, normalize_identities, search_name,
};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::{Invalid, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::db::Page;
use crate::db::events::append;
use crate::db::{Db, Row, Sql, Tx, placeholders, sql, sql_built};
use crate::{Error, Store};

pub use loyalty::{add_loyalty_points_in, record_spend_in};

// ───────────────────────────── reading ─────────────────────────────

/// Reads from the pool or from inside a transaction, so that one reader serves both.
trait Source {
    async fn all(&mut self, sql: Sql) -> Result<Vec<Row>, Error>;
    async fn one(&mut self, sql: Sql) -> Result<Option<Row>, Error>;
}

impl Source for &Db {
    async fn all(&mut self, sql: Sql) -> Result<Vec<Row>, Error> {
        self.fetch_all(sql).await
    }
    async fn one(&mut self, sql: Sql) -> Result<Option<Row>, Error> {
        self.fetch_optional(sql).await
    }
}

impl Source for Tx {
    async fn all(&mut self, sql: Sql) -> Result<Vec<Row>, Error> {
        self.fetch_all(sql).await
    }
    async fn one(&mut self, sql: Sql) -> Result<Option<Row>, Error> {
        self.fetch_optional(sql).await
    }
}

/// The JSON name of a unit enum variant (`opted_in`), as stored.
fn to_text<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn from_text<T: DeserializeOwned>(text: String) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| Error::Corrupt(format!("unknown value {text}")))
}

fn parse_kind(text: &str) -> Result<IdentityKind, Error> {
    IdentityKind::parse(text).ok_or_else(|| Error::Corrupt(format!("unknown identity kind {text}")))
}

fn ids_of(rows: &[Row], col: &str) -> Result<Vec<String>, Error> {
    rows.iter().map(|r| r.text(col)).collect()
}

/// The customers of `rows` with their identities and consents, two queries for the lot.
async fn with_details(source: &mut impl Source, rows: &[Row]) -> Result<Vec<Customer>, Error> {
    let ids = ids_of(rows, "id")?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = placeholders(1, ids.len());
    let bind_all = |text: String| ids.iter().fold(sql_built(text), |q, id| q.bind(id));
    let identity_rows = source
        .all(bind_all(format!(
            "SELECT customer_id, kind, value FROM customer_identities WHERE customer_id IN ({list}) \
             ORDER BY created_at, kind, value"
        )))
        .await?;
    let consent_rows = source
        .all(bind_all(format!(
            "SELECT * FROM customer_consents WHERE customer_id IN ({list}) ORDER BY channel"
        )))
        .await?;
    let mut identities: HashMap<String, Vec<Identity>> = HashMap::new();
    for row in &identity_rows {
        let identity = Identity::new(parse_kind(&row.text("kind")?)?, row.text("value")?);
        identities.entry(row.text("customer_id")?).or_default().push(identity);
    }
    let mut consents: HashMap<String, Vec<Consent>> = HashMap::new();
    for row in &consent_rows {
        consents
            .entry(row.text("customer_id")?)
            .or_default()
            .push(consent(row)?);
    }
    rows.iter()
        .map(|row| {
            let id = row.text("id")?;
            let own_identities = identities.remove(&id).unwrap_or_default();
            customer(row, own_identities, consents.remove(&id).unwrap_or_default())
        })
        .collect()
}

fn consent(row: &Row) -> Result<Consent, Error> {
    Ok(Consent {
        channel: parse_kind(&row.text("channel")?)?,
        status: from_text::<ConsentStatus>(row.text("status")?)?,
        at: Timestamp(row.int("at")?),
        source: row.text("source")?,
    })
}

fn customer(row: &Row, identities: Vec<Identity>, consents: Vec<Consent>) -> Result<Customer, Error> {
    Ok(Customer {
        id: row.text("id")?,
        name: row.opt_text("name")?,
        identities,
        consents,
        tags: row.json("tags")?,
        preferred_channel: row
            .opt_text("preferred_channel")?
            .as_deref()
            .map(parse_kind)
            .transpose()?,
        merged_into: row.opt_text("merged_into")?,
        erased_at: row.opt_int("erased_at")?.map(Timestamp),
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

async fn read_customer(source: &mut impl Source, id: &str) -> Result<Customer, Error> {
    let row = source
        .one(sql("SELECT * FROM customers WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let mut found = with_details(source, &[row]).await?;
    found.pop().ok_or(Error::NotFound("customer"))
}

/// A newest-first page position, `at/id` of the last item seen: rows of one moment keep an
/// order, and rows stamped earlier than others written before them still sort by time.
fn newest_first_cursor(page: &Page) -> Result<(i64, String), Error> {
    let Some(cursor) = &page.after else {
        return Ok((i64::MAX, String::new()));
    };
    cursor
        .split_once('/')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| Invalid::one("cursor", "invalid", "is not a cursor this server gave").into())
}

/// Splits the extra fetched row off and names the cursor of the next page.
fn finish_newest_first<T>(
    page: &Page,
    mut items: Vec<T>,
    key: impl Fn(&T) -> (Timestamp, &str),
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(page.limit).unwrap_or(0);
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(|item| {
        let (at, id) = key(item);
        format!("{}/{id}", at.millis())
    });
    (items, next)
}

// ───────────────────────────── writing ─────────────────────────────

/// The conflict for a write to a customer (a row with `merged_into` and `erased_at`) that was
/// merged or erased; `None` for a live one.
fn closed(row: &Row) -> Result<Option<Error>, Error> {
    if let Some(survivor) = row.opt_text("merged_into")? {
        let detail = format!("the customer was merged into {survivor}; use that one");
        return Ok(Some(Error::Conflict(detail)));
    }
    if row.opt_int("erased_at")?.is_some() {
        return Ok(Some(Error::Conflict("the customer's personal data was erased".into())));
    }
    Ok(None)
}

/// Takes a live customer for a change, which bumps its version: the row lock keeps merges and
/// erasures out until the change commits. With `expected`, only from that version.
async fn take_for_change(tx: &mut Tx, id: &str, expected: Option<i64>, now: Timestamp) -> Result<i64, Error> {
    let taken = tx
        .fetch_optional(
            sql("UPDATE customers SET version = version + 1, updated_at = $3 \
                 WHERE id = $1 AND ($2 IS NULL OR version = $2) AND merged_into IS NULL AND erased_at IS NULL \
                 RETURNING version")
            .bind(id)
            .bind(expected)
            .bind(now.millis()),
        )
        .await?;
    if let Some(row) = taken {
        return row.int("version");
    }
    let row = tx
        .fetch_optional(sql("SELECT version, merged_into, erased_at FROM customers WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("customer"))?;
    if let Some(conflict) = closed(&row)? {
        return Err(conflict);
    }
    Err(Error::VersionMismatch {
        current: row.int("version")?,
    })
}

/// Who holds each identity now, in the order given.
async fn holders(tx: &mut Tx, identities: &[Identity]) -> Result<Vec<Option<String>>, Error> {
    let mut found = Vec::with_capacity(identities.len());
    for identity in identities {
        let row = tx
            .fetch_optional(
                sql("SELECT customer_id FROM customer_identities WHERE kind = $1 AND value = $2")
                    .bind(identity.kind.as_str())
                    .bind(&identity.value),
            )
            .await?;
        found.push(row.map(|r| r.text("customer_id")).transpose()?);
    }
    Ok(found)
}

/// Each holder once, in the order of the identities they hold.
fn distinct(holders: &[Option<String>]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in holders.iter().flatten() {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// What giving identities to a customer did.
#[derive(Default)]
struct Attached {
    added: Vec<Identity>,
    /// Identities another customer holds, with that customer.
    taken: Vec<(IdentityKind, String)>,
}

/// Gives `identities` to the customer. The unique key decides between two requests racing
/// for one identity: the loser's insert does nothing and the identity is reported taken.
async fn attach(tx: &mut Tx, customer_id: &str, identities: &[Identity], now: Timestamp) -> Result<Attached, Error> {
    let mut attached = Attached::default();
    for identity in identities {
        let inserted = tx
            .execute(
                sql(
                    "INSERT INTO customer_identities (kind, value, customer_id, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind, value) DO NOTHING",
                )
                .bind(identity.kind.as_str())
                .bind(&identity.value)
                .bind(customer_id)
                .bind(now.millis()),
            )
            .await?;
        if inserted == 1 {
            attached.added.push(identity.clone());
            continue;
        }
        let holder = holders(tx, std::slice::from_ref(identity)).await?.pop().flatten();
        if let Some(holder) = holder.filter(|h| h != customer_id) {
            attached.taken.push((identity.kind, holder));
        }
    }
    Ok(attached)
}

/// The conflict for an identity held by someone else: names its kind, never its value.
fn identity_taken(kind: IdentityKind) -> Error {
    Error::Conflict(format!(
        "the {} identity given belongs to another customer",
        kind.as_str()
    ))
}

/// Announces identities newly given to an existing customer.
async fn announce_identities(tx: &mut Tx, customer_id: &str, added: &[Identity], now: Timestamp) -> Result<(), Error> {
    for identity in added {
        let data = json!({"customer_id": customer_id, "kind": identity.kind});
        timeline::record(tx, customer_id, now, "customer.identity_added", None, &data).await?;
        append(tx, now, NewEvent::new(EventType::CustomerIdentityAdded, data));
    }
    Ok(())
}

async fn write_consents(tx: &mut Tx, customer_id: &str, consents: &[Consent]) -> Result<(), Error> {
    tx.execute(sql("DELETE FROM customer_consents WHERE customer_id = $1").bind(customer_id))
        .await?;
    for consent in consents {
        tx.execute(
            sql("INSERT INTO customer_consents (customer_id, channel, status, at, source) VALUES ($1, $2, $3, $4, $5)")
                .bind(customer_id)
                .bind(consent.channel.as_str())
                .bind(to_text(&consent.status))
                .bind(consent.at.millis())
                .bind(&consent.source),
        )
        .await?;
    }
    Ok(())
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// A new customer with the draft's profile and the given (canonical) identities. Identities
/// someone else won in a race are answered, not attached.
async fn create_in(
    tx: &mut Tx,
    draft: &CustomerDraft,
    identities: &[Identity],
    now: Timestamp,
) -> Result<(String, Attached), Error> {
    let id = id::new(Kind::Customer);
    tx.execute(
        sql("INSERT INTO customers (id, name, tags, preferred_channel, loyalty_balance, version, created_at, updated_at, search_name) \
             VALUES ($1, $2, $3, $4, 0, 1, $5, $5, $6)")
        .bind(&id)
        .bind(draft.name.as_deref().map(str::trim))
        .bind(tags_json(&draft.trimmed_tags()))
        .bind(draft.preferred_channel.map(IdentityKind::as_str))
        .bind(now.millis())
        .bind(search_name(draft.name.as_deref())),
    )
    .await?;
    let attached = attach(tx, &id, identities, now).await?;
    let consents: Vec<Consent> = draft.consents.iter().map(|c| c.dated(&[], now)).collect();
    write_consents(tx, &id, &consents).await?;
    let kinds: Vec<IdentityKind> = attached.added.iter().map(|i| i.kind).collect();
    let data = json!({"customer_id": id, "identity_kinds": kinds});
    timeline::record(tx, &id, now, "customer.created", None, &data).await?;
    append(tx, now, NewEvent::new(EventType::CustomerCreated, data));
    Ok((id, attached))
}

/// Records that the customers (the first and each other one) may be one person. Each pair
/// is kept once, however often identities tie them together again.
async fn suggest_merge(tx: &mut Tx, customer_ids: &[String], now: Timestamp) -> Result<(), Error> {
    let Some((first, others)) = customer_ids.split_first() else {
        return Ok(());
    };
    for other in others {
        let (a, b) = if first < other { (first, other) } else { (other, first) };
        let added = tx
            .execute(
                sql(
                    "INSERT INTO merge_suggestions (customer_id, other_customer_id, suggested_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (customer_id, other_customer_id) DO NOTHING",
                )
                .bind(a)
                .bind(b)
                .bind(now.millis()),
            )
            .await?;
        if added == 1 {
            append(
                tx,
                now,
                NewEvent::new(EventType::CustomerMergeSuggested, json!({"customer_ids": [a, b]})),
            );
        }
    }
    Ok(())
}

// ───────────────────────────── for other domains ─────────────────────────────

/// The customer behind `identities`, for another domain's transaction (an order, a
/// conversation): found by any identity or created, with the identities it lacked attached.
///
/// Never fails because identities point to two customers: the first identity's customer is
/// used and a merge suggested, since a sale must not be lost to a profile question.
pub async fn resolve_customer_in(
    tx: &mut Tx,
    identities: &[Identity],
    name: Option<&str>,
    now: Timestamp,
    phone_region: Region,
) -> Result<String, Error> {
    let identities = normalize_identities(identities, phone_region)?;
    let found = holders(tx, &identities).await?;
    let customers = distinct(&found);
    let Some(first) = customers.first() else {
        let named = CustomerDraft {
            name: name.map(str::to_owned),
            ..CustomerDraft::default()
        };
        // A name the profile rules refuse (blank, too long) is left out rather than failing the sale.
        let draft = match named.validate(phone_region) {
            Ok(_) => named,
            Err(_) => CustomerDraft::default(),
        };
        let (id, attached) = create_in(tx, &draft, &identities, now).await?;
        suggest_merge(tx, &with_takers(&id, &attached), now).await?;
        return Ok(id);
    };
    suggest_merge(tx, &customers, now).await?;
    let attached = attach_free(tx, first, &identities, &found, now).await?;
    suggest_merge(tx, &with_takers(first, &attached), now).await?;
    Ok(first.clone())
}

/// The customer followed by every customer that won one of its identities in a race.
fn with_takers(customer_id: &str, attached: &Attached) -> Vec<String> {
    let mut ids = vec![customer_id.to_owned()];
    ids.extend(attached.taken.iter().map(|(_, holder)| holder.clone()));
    distinct(&ids.into_iter().map(Some).collect::<Vec<_>>())
}

/// Gives a customer those of `identities` nobody held (`found` says who held each).
async fn attach_free(
    tx: &mut Tx,
    customer_id: &str,
    identities: &[Identity],
    found: &[Option<String>],
    now: Timestamp,
) -> Result<Attached, Error> {
    let free: Vec<Identity> = identities
        .iter()
        .zip(found)
        .filter(|(_, holder)| holder.is_none())
        .map(|(identity, _)| identity.clone())
        .collect();
    if free.is_empty() {
        return Ok(Attached::default());
    }
    take_for_change(tx, customer_id, None, now).await?;
    let attached = attach(tx, customer_id, &free, now).await?;
    announce_identities(tx, customer_id, &attached.added, now).await?;
    Ok(attached)
}

/// Moves the rows other domains hold about a customer from the absorbed customer `from` to
/// the survivor `to`, inside the merge's transaction; answers how many moved, by what.
///
/// Every domain that stores a customer id adds its UPDATE here (conversations …), so that
/// a merge leaves nothing behind.
pub(crate) async fn move_customer_references(
    tx: &mut Tx,
    from: &str,
    to: &str,
) -> Result<BTreeMap<String, i64>, Error> {
    let mut moved = BTreeMap::new();
    for (what, statement) in [
        (
            "timeline_entries",
            sql("UPDATE customer_timeline SET customer_id = $2 WHERE customer_id = $1"),
        ),
        (
            "spend_records",
            sql("UPDATE customer_spend SET customer_id = $2 WHERE customer_id = $1"),
        ),
        (
            "orders",
            sql("UPDATE orders SET customer_id = $2 WHERE customer_id = $1"),
        ),
        // Every change of a cart moves its version on (`recent_carts` relies on it).
        (
            "carts",
            sql("UPDATE carts SET customer_id = $2, version = version + 1 WHERE customer_id = $1"),
        ),
        (
            "conversations",
            sql("UPDATE conversations SET customer_id = $2 WHERE customer_id = $1"),
        ),
    ] {
        let rows = tx.execute(statement.bind(from).bind(to)).await?;
        moved.insert(what.to_owned(), count(rows));
    }
    Ok(moved)
}

/// Removes the personal data other domains hold next to an erased customer's id, inside the
/// erasure's transaction, keeping what the books need (order lines, totals, points).
///
/// Every domain that stores personal data with a customer id adds its statement here. Runs
/// before the customer's identities go, as carts are also found by e-mail.
pub(crate) async fn erase_customer_references(tx: &mut Tx, id: &str) -> Result<(), Error> {
    for statement in [
        sql("DELETE FROM customer_timeline WHERE customer_id = $1"),
        sql("UPDATE orders SET email = NULL, shipping_address = NULL WHERE customer_id = $1"),
        // Their carts: those made for them, those that became their orders (a guest's cart
        // checked out under their identity) and any other carrying one of their e-mails.
        sql(
            "UPDATE carts SET email = NULL, shipping_address = NULL, version = version + 1 \
             WHERE customer_id = $1 \
                OR order_id IN (SELECT id FROM orders WHERE customer_id = $1) \
                OR email IN (SELECT value FROM customer_identities WHERE customer_id = $1 AND kind = 'email')",
        ),
        sql("UPDATE messages SET text = NULL, template = NULL \
             WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = $1)"),
        // The provider's id of the person goes too; the conversation stays for the books.
        // So do an e-mail and a phone number the person gave in a chat.
        sql(
            "UPDATE conversations SET contact_address = id, claimed_email = NULL, claimed_phone = NULL \
             WHERE customer_id = $1",
        ),
    ] {
        tx.execute(statement.bind(id)).await?;
    }
    Ok(())
}

fn count(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

// ───────────────────────────── the store ─────────────────────────────

/// What resolving identities found.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    Found(Customer),
    Created(Customer),
    /// The identities belong to several customers: nothing was attached, a merge was suggested.
    Ambiguous(Vec<Holder>),
}

/// A customer holding some of the identities resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub customer_id: String,
    pub kinds: Vec<IdentityKind>,
}

fn holder_list(customers: &[String], identities: &[Identity], found: &[Option<String>]) -> Vec<Holder> {
    customers
        .iter()
        .map(|customer_id| Holder {
            customer_id: customer_id.clone(),
            kinds: identities
                .iter()
                .zip(found)
                .filter(|(_, holder)| holder.as_ref() == Some(customer_id))
                .map(|(identity, _)| identity.kind)
                .collect(),
        })
        .collect()
}

impl Store {
    pub async fn create_customer(&self, draft: CustomerDraft) -> Result<Customer, Error> {
        let identities = draft.validate(self.phone_region())?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (id, attached) = create_in(&mut tx, &draft, &identities, now).await?;
        if let Some((kind, _)) = attached.taken.first() {
            return Err(identity_taken(*kind));
        }
        let created = read_customer(&mut tx, &id).await?;
        self.commit(tx).await?;
        Ok(created)
    }

    /// Refuses `id`, the value of `field`, unless it names a customer that exists and is still
    /// in use: neither merged into another nor erased. Answers the customer's points balance.
    pub(crate) async fn check_live_customer(&self, field: &str, id: &str) -> Result<i64, Error> {
        let rows = self
            .db
            .fetch_by_key(sql("SELECT merged_into, erased_at, loyalty_balance FROM customers WHERE id = $1").bind(id))
            .await?;
        let refuse = |code: &str, message: String| Error::from(Invalid::one(field, code, message));
        let Some(row) = rows.first() else {
            return Err(refuse("not_found", "there is no such customer".into()));
        };
        if let Some(survivor) = row.opt_text("merged_into")? {
            return Err(refuse(
                "already_merged",
                format!("this customer was merged into {survivor}"),
            ));
        }
        if row.opt_int("erased_at")?.is_some() {
            return Err(refuse("erased", "this customer was erased".into()));
        }
        row.int("loyalty_balance")
    }

    /// A customer; one merged into another answers with `merged_into` naming the survivor.
    pub async fn customer(&self, id: &str) -> Result<Customer, Error> {
        read_customer(&mut &self.db, id).await
    }

    /// Live customers in id order; with `query`, those with an identity of that value (read
    /// the way identities are normalised) or whose name contains it.
    pub async fn customers(&self, page: &Page, query: Option<&str>) -> Result<(Vec<Customer>, Option<String>), Error> {
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        let rows = self.db.fetch_all(self.list_query(page, query)).await?;
        let items = with_details(&mut &self.db, &rows).await?;
        Ok(page.finish(items, |c| &c.id))
    }

    fn list_query(&self, page: &Page, query: Option<&str>) -> Sql {
        const LIVE: &str = "SELECT * FROM customers WHERE id > $1 AND merged_into IS NULL AND erased_at IS NULL";
        let Some(query) = query else {
            return sql_built(format!("{LIVE} ORDER BY id LIMIT $2"))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.limit + 1);
        };
        let values = self.search_values(query);
        let by_identity = if values.is_empty() {
            String::new()
        } else {
            format!(
                " OR id IN (SELECT customer_id FROM customer_identities WHERE value IN ({}))",
                placeholders(4, values.len())
            )
        };
        // A name a server from before migration 14 wrote has no search name yet.
        let text = format!(
            "{LIVE} AND (COALESCE(search_name, LOWER(name)) LIKE $3 ESCAPE '\\'{by_identity}) ORDER BY id LIMIT $2"
        );
        let pattern = format!("%{}%", escape_like(&search_name(Some(query)).unwrap_or_default()));
        values.iter().fold(
            sql_built(text)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.limit + 1)
                .bind(pattern),
            |q, value| q.bind(value),
        )
    }

    /// Every canonical value the search text can stand for: it may be any kind of identity.
    fn search_values(&self, query: &str) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        for kind in IdentityKind::ALL {
            if let Ok(identity) = normalize(&Identity::new(kind, query), self.phone_region())
                && !values.contains(&identity.value)
            {
                values.push(identity.value);
            }
        }
        values
    }

    /// Changes a customer's profile from version `version`. New identities are attached, those
    /// left out let go; a consent without `at` keeps its date unless its status changed.
    pub async fn update_customer(&self, id: &str, draft: CustomerDraft, version: i64) -> Result<Customer, Error> {
        let identities = draft.validate(self.phone_region())?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let new_version = take_for_change(&mut tx, id, Some(version), now).await?;
        let held = read_customer(&mut tx, id).await?;
        tx.execute(
            sql("UPDATE customers SET name = $2, tags = $3, preferred_channel = $4, search_name = $5 WHERE id = $1")
                .bind(id)
                .bind(draft.name.as_deref().map(str::trim))
                .bind(tags_json(&draft.trimmed_tags()))
                .bind(draft.preferred_channel.map(IdentityKind::as_str))
                .bind(search_name(draft.name.as_deref())),
        )
        .await?;
        let added = replace_identities(&mut tx, id, &held.identities, &identities, now).await?;
        let consents: Vec<Consent> = draft.consents.iter().map(|c| c.dated(&held.consents, now)).collect();
        write_consents(&mut tx, id, &consents).await?;
        announce_identities(&mut tx, id, &added, now).await?;
        append(
            &mut tx,
            now,
            NewEvent::new(
                EventType::CustomerUpdated,
                json!({"customer_id": id, "version": new_version}),
            ),
        );
        let updated = read_customer(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    /// The customer behind any of `identities`: found (with the identities it lacked
    /// attached), created when `create` allows, or — when they belong to several customers —
    /// none, with a merge suggested for a person to decide.
    pub async fn resolve_customer(
        &self,
        identities: &[Identity],
        name: Option<String>,
        create: bool,
    ) -> Result<Resolution, Error> {
        let draft = CustomerDraft {
            name,
            ..CustomerDraft::default()
        };
        draft.validate(self.phone_region())?;
        let identities = normalize_identities(identities, self.phone_region())?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let found = holders(&mut tx, &identities).await?;
        let resolution = match distinct(&found).as_slice() {
            [] if !create => return Err(Error::NotFound("customer")),
            [] => {
                let (id, attached) = create_in(&mut tx, &draft, &identities, now).await?;
                suggest_merge(&mut tx, &with_takers(&id, &attached), now).await?;
                Resolution::Created(read_customer(&mut tx, &id).await?)
            }
            [one] => {
                let attached = attach_free(&mut tx, one, &identities, &found, now).await?;
                suggest_merge(&mut tx, &with_takers(one, &attached), now).await?;
                Resolution::Found(read_customer(&mut tx, one).await?)
            }
            several => {
                suggest_merge(&mut tx, several, now).await?;
                Resolution::Ambiguous(holder_list(several, &identities, &found))
            }
        };
        self.commit(tx).await?;
        Ok(resolution)
    }

    /// Merges `absorbed_id` into `survivor_id` in one transaction: identities, consents (the
    /// survivor's word wins per channel), loyalty points, the timeline and every other
    /// domain's rows move over; the merge is recorded with the key that asked for it.
    pub async fn merge_customers(&self, survivor_id: &str, absorbed_id: &str, by: &str) -> Result<Customer, Error> {
        check_merge(survivor_id, absorbed_id, None)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        lock_pair(&mut tx, survivor_id, absorbed_id, now).await?;
        let survivor = read_customer(&mut tx, survivor_id).await?;
        let absorbed = read_customer(&mut tx, absorbed_id).await.map_err(|e| match e {
            Error::NotFound(_) => Invalid::one(
                "customer_id",
                "not_found",
                format!("there is no customer {absorbed_id}"),
            )
            .into(),
            e => e,
        })?;
        check_mergeable(&survivor, &absorbed)?;
        let moved = absorb(&mut tx, &survivor, &absorbed, now).await?;
        let merge = CustomerMerge {
            id: id::new(Kind::CustomerMerge),
            survivor_id: survivor_id.to_owned(),
            absorbed_id: absorbed_id.to_owned(),
            moved,
            by: by.to_owned(),
            at: now,
        };
        record_merge(&mut tx, &merge).await?;
        let merged = read_customer(&mut tx, survivor_id).await?;
        self.commit(tx).await?;
        Ok(merged)
    }

    /// Removes the customer's personal data: name, identities, consents, tags, timeline and
    /// merge suggestions go; references on loyalty movements and the e-mail and address on
    /// orders and carts are blanked. The id, points, spend and order totals stay so that the
    /// books still add up. Erasing again is a conflict.
    pub async fn erase_customer(&self, id: &str) -> Result<(), Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        take_for_change(&mut tx, id, None, now).await?;
        erase_customer_references(&mut tx, id).await?;
        for statement in [
            sql("DELETE FROM customer_identities WHERE customer_id = $1"),
            sql("DELETE FROM customer_consents WHERE customer_id = $1"),
            sql("DELETE FROM merge_suggestions WHERE customer_id = $1 OR other_customer_id = $1"),
            sql("UPDATE loyalty_movements SET reference = NULL WHERE customer_id = $1"),
        ] {
            tx.execute(statement.bind(id)).await?;
        }
        tx.execute(
            sql(
                "UPDATE customers SET name = NULL, search_name = NULL, tags = '[]', preferred_channel = NULL, erased_at = $2 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now.millis()),
        )
        .await?;
        append(
            &mut tx,
            now,
            NewEvent::new(EventType::CustomerErased, json!({"customer_id": id})),
        );
        self.commit(tx).await
    }

    /// Everything held about the customer.
    pub async fn export_customer(&self, id: &str) -> Result<CustomerExport, Error> {
        let customer = self.customer(id).await?;
        let (loyalty_balance, loyalty_movements) = loyalty::everything(&self.db, id).await?;
        Ok(CustomerExport {
            customer,
            loyalty_balance,
            loyalty_movements,
            timeline: timeline::everything(&self.db, id).await?,
            merges: self.merges_of(id).await?,
            merge_suggestions: self.suggestions_of(id).await?,
            exported_at: self.now(),
        })
    }

    async fn merges_of(&self, id: &str) -> Result<Vec<CustomerMerge>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM customer_merges WHERE survivor_id = $1 OR absorbed_id = $1 ORDER BY at, id")
                    .bind(id),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CustomerMerge {
                    id: row.text("id")?,
                    survivor_id: row.text("survivor_id")?,
                    absorbed_id: row.text("absorbed_id")?,
                    moved: row.json("moved")?,
                    by: row.text("by_key_id")?,
                    at: Timestamp(row.int("at")?),
                })
            })
            .collect()
    }

    async fn suggestions_of(&self, id: &str) -> Result<Vec<MergeSuggestion>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT * FROM merge_suggestions WHERE customer_id = $1 OR other_customer_id = $1 \
                     ORDER BY suggested_at, customer_id, other_customer_id",
                )
                .bind(id),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MergeSuggestion {
                    customer_ids: vec![row.text("customer_id")?, row.text("other_customer_id")?],
                    suggested_at: Timestamp(row.int("suggested_at")?),
                })
            })
            .collect()
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Identities leave the customer when a change leaves them out and join when it names them;
/// answers the ones that joined.
async fn replace_identities(
    tx: &mut Tx,
    id: &str,
    held: &[Identity],
    wanted: &[Identity],
    now: Timestamp,
) -> Result<Vec<Identity>, Error> {
    for gone in held.iter().filter(|i| !wanted.contains(i)) {
        tx.execute(
            sql("DELETE FROM customer_identities WHERE kind = $1 AND value = $2 AND customer_id = $3")
                .bind(gone.kind.as_str())
                .bind(&gone.value)
                .bind(id),
        )
        .await?;
    }
    let new: Vec<Identity> = wanted.iter().filter(|i| !held.contains(i)).cloned().collect();
    let attached = attach(tx, id, &new, now).await?;
    match attached.taken.first() {
        Some((kind, _)) => Err(identity_taken(*kind)),
        None => Ok(attached.added),
    }
}

/// Locks both rows in id order, so that two merges of the same pair cannot deadlock.
async fn lock_pair(tx: &mut Tx, a: &str, b: &str, now: Timestamp) -> Result<(), Error> {
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    for id in [first, second] {
        tx.execute(
            sql("UPDATE customers SET version = version + 1, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now.millis()),
        )
        .await?;
    }
    Ok(())
}

/// Only two live customers merge: the survivor (in the path) and the absorbed one (in the body).
fn check_mergeable(survivor: &Customer, absorbed: &Customer) -> Result<(), Invalid> {
    if let Some(into) = &survivor.merged_into {
        return Err(Invalid::one(
            "id",
            "already_merged",
            format!("this customer was merged into {into}; merge into that one"),
        ));
    }
    if survivor.erased_at.is_some() {
        return Err(Invalid::one("id", "erased", "this customer's personal data was erased"));
    }
    check_merge(&survivor.id, &absorbed.id, absorbed.merged_into.as_deref())?;
    if absorbed.erased_at.is_some() {
        return Err(Invalid::one(
            "customer_id",
            "erased",
            "that customer's personal data was erased",
        ));
    }
    Ok(())
}

/// Moves everything of `absorbed` to `survivor` and leaves `absorbed` a pointer without
/// personal data; answers how many of each thing moved.
async fn absorb(
    tx: &mut Tx,
    survivor: &Customer,
    absorbed: &Customer,
    now: Timestamp,
) -> Result<BTreeMap<String, i64>, Error> {
    let (to, from) = (survivor.id.as_str(), absorbed.id.as_str());
    let mut moved = BTreeMap::new();
    let identities = tx
        .execute(
            sql("UPDATE customer_identities SET customer_id = $2 WHERE customer_id = $1")
                .bind(from)
                .bind(to),
        )
        .await?;
    moved.insert("identities".to_owned(), count(identities));
    let consents = tx
        .execute(
            sql("UPDATE customer_consents SET customer_id = $2 WHERE customer_id = $1 \
                 AND channel NOT IN (SELECT channel FROM customer_consents WHERE customer_id = $2)")
            .bind(from)
            .bind(to),
        )
        .await?;
    tx.execute(sql("DELETE FROM customer_consents WHERE customer_id = $1").bind(from))
        .await?;
    moved.insert("consents".to_owned(), count(consents));
    moved.extend(loyalty::move_points(tx, from, to).await?);
    take_over_profile(tx, survivor, absorbed).await?;
    move_suggestions(tx, from, to).await?;
    // Earlier merges into the absorbed customer now point at the survivor: one hop always.
    tx.execute(
        sql("UPDATE customers SET merged_into = $2 WHERE merged_into = $1")
            .bind(from)
            .bind(to),
    )
    .await?;
    tx.execute(
        sql("UPDATE customers SET merged_into = $2, name = NULL, search_name = NULL, tags = '[]', preferred_channel = NULL, updated_at = $3 \
             WHERE id = $1")
        .bind(from)
        .bind(to)
        .bind(now.millis()),
    )
    .await?;
    moved.extend(move_customer_references(tx, from, to).await?);
    Ok(moved)
}

/// The survivor keeps its profile, fills what it lacks from the absorbed one and gains its tags.
async fn take_over_profile(tx: &mut Tx, survivor: &Customer, absorbed: &Customer) -> Result<(), Error> {
    let name = survivor.name.as_ref().or(absorbed.name.as_ref());
    let preferred = survivor.preferred_channel.or(absorbed.preferred_channel);
    tx.execute(
        sql("UPDATE customers SET name = $2, tags = $3, preferred_channel = $4, search_name = $5 WHERE id = $1")
            .bind(&survivor.id)
            .bind(name)
            .bind(tags_json(&merge_tags(&survivor.tags, &absorbed.tags)))
            .bind(preferred.map(IdentityKind::as_str))
            .bind(search_name(name.map(String::as_str))),
    )
    .await?;
    Ok(())
}

/// The absorbed customer's open suggestions become the survivor's; theirs with each other end.
async fn move_suggestions(tx: &mut Tx, from: &str, to: &str) -> Result<(), Error> {
    let rows = tx
        .fetch_all(
            sql(
                "SELECT customer_id, other_customer_id, suggested_at FROM merge_suggestions \
                 WHERE customer_id = $1 OR other_customer_id = $1",
            )
            .bind(from),
        )
        .await?;
    tx.execute(sql("DELETE FROM merge_suggestions WHERE customer_id = $1 OR other_customer_id = $1").bind(from))
        .await?;
    for row in &rows {
        let (a, b) = (row.text("customer_id")?, row.text("other_customer_id")?);
        let other = if a == from { b } else { a };
        if other == to {
            continue;
        }
        let (a, b) = if to < other.as_str() {
            (to, other.as_str())
        } else {
            (other.as_str(), to)
        };
        tx.execute(
            sql(
                "INSERT INTO merge_suggestions (customer_id, other_customer_id, suggested_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (customer_id, other_customer_id) DO NOTHING",
            )
            .bind(a)
            .bind(b)
            .bind(row.int("suggested_at")?),
        )
        .await?;
    }
    Ok(())
}

async fn record_merge(tx: &mut Tx, merge: &CustomerMerge) -> Result<(), Error> {
    let moved = serde_json::to_string(&merge.moved).unwrap_or_else(|_| "{}".into());
    tx.execute(
        sql("INSERT INTO customer_merges (id, survivor_id, absorbed_id, moved, by_key_id, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&merge.id)
            .bind(&merge.survivor_id)
            .bind(&merge.absorbed_id)
            .bind(moved)
            .bind(&merge.by)
            .bind(merge.at.millis()),
    )
    .await?;
    let data = json!({"customer_id": merge.survivor_id, "absorbed_id": merge.absorbed_id, "merge_id": merge.id,
                      "moved": merge.moved, "by": merge.by});
    timeline::record(
        tx,
        &merge.survivor_id,
        merge.at,
        "customer.merged",
        Some(&merge.id),
        &data,
    )
    .await?;
    append(tx, merge.at, NewEvent::new(EventType::CustomerMerged, data));
    Ok(())
}

impl Store {
    /// The customers suggested for merging with this one.
    pub async fn merge_candidates(&self, customer_id: &str) -> Result<Vec<String>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT customer_id, other_customer_id FROM merge_suggestions \
                     WHERE customer_id = $1 OR other_customer_id = $1 ORDER BY suggested_at")
                .bind(customer_id),
            )
            .await?;
        rows.iter()
            .map(|row| {
                let (a, b) = (row.text("customer_id")?, row.text("other_customer_id")?);
                Ok(if a == customer_id { b } else { a })
            })
            .collect()
    }
}

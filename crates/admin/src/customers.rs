//! Customers: found by any identity, however it is typed; the profile with identities,
//! consents, loyalty, the active cart, orders and the timeline from every channel; and merging
//! two profiles of one person.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use omnihub_domain::customers::{ConsentStatus, Customer, TimelineEntry};
use omnihub_domain::orders::Order;
use omnihub_domain::users::{Access, Area};
use omnihub_store::{OrderFilter, Page};
use serde::Deserialize;

use crate::forms::{Fields, chosen, field};
use crate::names::Names;
use crate::orders::{Done, status_class};
use crate::page::{Feedback, Layout, PageError, Query, done, render, render_with, status_of};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/customers", get(list))
        .route("/admin/customers/{id}", get(profile))
        .route("/admin/customers/{id}/merge", post(merge))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

pub struct CustomerRow {
    pub id: String,
    pub name: String,
    pub identities: Vec<String>,
    pub tags: String,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    layout: Layout,
    q: String,
    rows: Vec<CustomerRow>,
    next: Option<String>,
}

/// The customer's name, or else how they can be recognised.
pub fn name_of(customer: &Customer) -> String {
    customer
        .name
        .clone()
        .or_else(|| customer.identities.first().map(|i| i.value.clone()))
        .unwrap_or_else(|| "(no name)".to_owned())
}

fn customer_row(customer: &Customer) -> CustomerRow {
    CustomerRow {
        id: customer.id.clone(),
        name: name_of(customer),
        identities: customer
            .identities
            .iter()
            .map(|i| format!("{}: {}", i.kind.as_str(), i.value))
            .collect(),
        tags: customer.tags.join(", "),
    }
}

async fn list(State(admin): State<Admin>, staff: Staff, Query(query): Query<ListQuery>) -> Result<Response, PageError> {
    staff.require(Area::Customers, Access::Read)?;
    let q = chosen(&query.q);
    let page = Page {
        after: chosen(&query.after),
        limit: 50,
    };
    let (customers, next) = admin.store.customers(&page, q.as_deref()).await?;
    let next = next.map(|cursor| {
        let mut pairs = vec![("after", cursor)];
        pairs.extend(q.clone().map(|q| ("q", q)));
        format!(
            "/admin/customers?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    });
    let page = CustomersPage {
        layout: Layout::new(&staff, Area::Customers, "Customers"),
        q: q.unwrap_or_default(),
        rows: customers.iter().map(customer_row).collect(),
        next,
    };
    Ok(render(&page))
}

pub struct OrderLine {
    pub id: String,
    pub number: String,
    pub placed: String,
    pub channel: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub total: String,
}

pub struct CartView {
    pub channel: String,
    pub updated: String,
    pub lines: Vec<String>,
    pub total: String,
}

pub struct EntryView {
    pub when: String,
    pub label: String,
    pub order_id: Option<String>,
}

pub struct Candidate {
    pub id: String,
    pub name: String,
    pub identities: Vec<String>,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    layout: Layout,
    id: String,
    merged_into: Option<String>,
    identities: Vec<(String, String)>,
    consents: Vec<(String, bool, String)>,
    tags: String,
    preferred: String,
    points: i64,
    tier: String,
    spend: String,
    cart: Option<CartView>,
    orders: Vec<OrderLine>,
    timeline: Vec<EntryView>,
    candidates: Vec<Candidate>,
    may_merge: bool,
    feedback: Feedback,
}

fn order_line(order: &Order, names: &Names) -> OrderLine {
    OrderLine {
        id: order.id.clone(),
        number: order.number.clone(),
        placed: show::when(order.created_at),
        channel: names.channel(&order.channel_id),
        status: show::status(order.status),
        status_class: status_class(order.status),
        total: show::money(&order.totals.total),
    }
}

/// `Order placed · #1001`: the entry's kind and the order number it names, if any.
fn entry_view(entry: &TimelineEntry) -> EntryView {
    let number = entry.summary.get("number").and_then(|n| n.as_str());
    EntryView {
        when: show::when(entry.at),
        label: match number {
            Some(number) => format!("{} · {number}", show::event_kind(&entry.kind)),
            None => show::event_kind(&entry.kind),
        },
        order_id: entry.reference.clone().filter(|r| r.starts_with("ord_")),
    }
}

async fn active_cart(admin: &Admin, id: &str, names: &Names) -> Result<Option<CartView>, PageError> {
    match admin.store.customer_cart(id).await {
        Ok(cart) => {
            let cart = admin.store.priced_cart(cart).await?;
            Ok(Some(CartView {
                channel: names.channel(&cart.channel_id),
                updated: show::when(cart.updated_at),
                lines: cart
                    .lines
                    .iter()
                    .map(|l| format!("{} × {}", l.quantity, l.sku))
                    .collect(),
                total: show::money(&cart.totals.total),
            }))
        }
        Err(omnihub_store::Error::NotFound(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn candidates(admin: &Admin, id: &str) -> Result<Vec<Candidate>, PageError> {
    let mut found = Vec::new();
    for other in admin.store.merge_candidates(id).await? {
        let customer = admin.store.customer(&other).await?;
        if customer.merged_into.is_none() {
            let row = customer_row(&customer);
            found.push(Candidate {
                id: row.id,
                name: row.name,
                identities: row.identities,
            });
        }
    }
    Ok(found)
}

async fn profile_page(
    admin: &Admin,
    staff: &Staff,
    id: &str,
    feedback: Feedback,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let customer = admin.store.customer(id).await?;
    let names = Names::load(&admin.store).await?;
    let standing = admin.store.loyalty_standing(id).await?;
    let recent = Page { after: None, limit: 50 };
    let (timeline, _) = admin.store.customer_timeline(id, &recent).await?;
    let filter = OrderFilter {
        customer_id: Some(id.to_owned()),
        ..OrderFilter::default()
    };
    let (orders, _) = admin.store.orders(&filter, &Page { after: None, limit: 20 }).await?;
    let page = CustomerPage {
        layout: Layout::new(staff, Area::Customers, name_of(&customer)).done(notice),
        id: customer.id.clone(),
        merged_into: customer.merged_into.clone(),
        identities: customer
            .identities
            .iter()
            .map(|i| (i.kind.as_str().to_owned(), i.value.clone()))
            .collect(),
        consents: customer
            .consents
            .iter()
            .map(|c| {
                let opted_in = c.status == ConsentStatus::OptedIn;
                (
                    c.channel.as_str().to_owned(),
                    opted_in,
                    format!("{} · {}", show::when(c.at), c.source),
                )
            })
            .collect(),
        tags: customer.tags.join(", "),
        preferred: customer.preferred_channel.map_or("", |k| k.as_str()).to_owned(),
        points: standing.balance,
        tier: standing.tier.name.clone(),
        spend: show::money(&omnihub_domain::Money::new(standing.spend_12m_minor, "EUR")),
        cart: active_cart(admin, id, &names).await?,
        orders: orders.iter().map(|o| order_line(o, &names)).collect(),
        timeline: timeline.iter().map(entry_view).collect(),
        candidates: candidates(admin, id).await?,
        may_merge: staff.may_change(Area::Customers) && customer.merged_into.is_none(),
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

async fn profile(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Result<Response, PageError> {
    staff.require(Area::Customers, Access::Read)?;
    profile_page(&admin, &staff, &id, Feedback::none(), query.done()).await
}

/// Merges the customer named in the form into this one; the merge is recorded as this
/// person's doing.
async fn merge(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Customers, Access::Write)?;
    let absorbed = field(&fields, "customer_id").to_owned();
    match admin.store.merge_customers(&id, &absorbed, &staff.user.id).await {
        Ok(_) => Ok(done(&format!("/admin/customers/{id}"), "merged")),
        Err(error) => {
            let feedback = Feedback::from_error("merge", error, fields)?;
            profile_page(&admin, &staff, &id, feedback, None).await
        }
    }
}

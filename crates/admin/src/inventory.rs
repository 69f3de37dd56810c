//! Inventory: levels by SKU and location, what each channel may sell (after its buffer),
//! adjustments with a reason, transfers, the movement ledger and reorder suggestions.
//!
//! Store staff see their own store's stock only, and change nothing here.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use omnihub_domain::catalog::{Channel, StockBuffer};
use omnihub_domain::inventory::{AdjustmentDraft, MovementReason, TransferDraft};
use omnihub_domain::users::{Access, Area};
use omnihub_store::{LevelFilter, Page};
use serde::Deserialize;

use crate::forms::{Fields, chosen, field, given, number};
use crate::names::Names;
use crate::orders::Choice;
use crate::page::{Feedback, Layout, PageError, Query, done, render_with, status_of};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/inventory", get(inventory))
        .route("/admin/inventory/adjust", post(adjust))
        .route("/admin/inventory/transfer", post(transfer))
        .route("/admin/inventory/replenishment", get(replenishment))
}

#[derive(Debug, Default, Deserialize)]
pub struct InventoryQuery {
    sku: Option<String>,
    location: Option<String>,
    stock_outs: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

pub struct LevelRow {
    pub sku: String,
    pub location: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

pub struct ChannelRow {
    pub channel: String,
    pub buffer: String,
    pub available: i64,
    pub locations: Vec<String>,
}

pub struct MovementRow {
    pub when: String,
    pub sku: String,
    pub location: String,
    pub delta: String,
    pub reason: &'static str,
    pub reference: String,
    pub on_hand_after: i64,
}

#[derive(Template)]
#[template(path = "inventory.html")]
struct InventoryPage {
    layout: Layout,
    sku: String,
    /// Store staff are held to their store: no location choice.
    own_store: bool,
    locations: Vec<Choice>,
    reasons: Vec<Choice>,
    levels: Vec<LevelRow>,
    next: Option<String>,
    channels: Vec<ChannelRow>,
    movements: Vec<MovementRow>,
    stock_outs: Option<Vec<String>>,
    may_change: bool,
    feedback: Feedback,
}

/// `1 unit + 10 %`, or `none`.
fn buffer(buffer: &StockBuffer) -> String {
    let parts: Vec<String> = [
        buffer
            .units
            .map(|u| format!("{u} unit{}", if u == 1 { "" } else { "s" })),
        buffer.percent.map(|p| format!("{p} %")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(" + ")
    }
}

async fn channel_rows(
    admin: &Admin,
    channels: &[Channel],
    sku: &str,
    names: &Names,
) -> Result<Vec<ChannelRow>, PageError> {
    let mut rows = Vec::with_capacity(channels.len());
    for channel in channels {
        let answer = admin.store.availability(channel, &[sku.to_owned()]).await?;
        let Some(stock) = answer.into_iter().next() else {
            continue;
        };
        rows.push(ChannelRow {
            channel: channel.draft.name.clone(),
            buffer: buffer(&channel.draft.stock_buffer),
            available: stock.available,
            locations: stock
                .locations
                .iter()
                .filter(|l| l.available > 0)
                .map(|l| format!("{} at {}", l.available, names.location(&l.location_id)))
                .collect(),
        });
    }
    Ok(rows)
}

struct Shown {
    sku: Option<String>,
    location: Option<String>,
    stock_outs: bool,
    after: Option<String>,
    done: Option<String>,
}

async fn inventory_page(admin: &Admin, staff: &Staff, shown: Shown, feedback: Feedback) -> Result<Response, PageError> {
    let names = Names::load(&admin.store).await?;
    // Store staff see their own store whatever they ask for.
    let location = staff.store().map(str::to_owned).or(shown.location);
    let filter = LevelFilter {
        sku: shown.sku.clone(),
        location_id: location.clone(),
    };
    let page = Page {
        after: shown.after,
        limit: 100,
    };
    let (levels, next) = admin.store.levels(&filter, &page).await?;
    let channels = match (&shown.sku, staff.store()) {
        (Some(sku), None) => channel_rows(admin, &names.channels, sku, &names).await?,
        _ => Vec::new(),
    };
    let movements = admin.store.latest_movements(&filter, 50).await?;
    let stock_outs = match shown.stock_outs {
        true => Some(admin.store.stock_outs(200).await?),
        false => None,
    };
    let next = next.map(|cursor| {
        let mut query = vec![("after", cursor)];
        query.extend(shown.sku.clone().map(|s| ("sku", s)));
        query.extend(location.clone().map(|l| ("location", l)));
        format!(
            "/admin/inventory?{}",
            serde_urlencoded::to_string(query).unwrap_or_default()
        )
    });
    let chosen_location = feedback_or(&feedback, "location_id", location.as_deref());
    let page = InventoryPage {
        layout: Layout::new(staff, Area::Inventory, "Inventory")
            .live("stock")
            .done(shown.done.as_deref()),
        sku: shown.sku.unwrap_or_default(),
        own_store: staff.store().is_some(),
        locations: names
            .locations
            .iter()
            .map(|l| Choice::new(&l.id, &l.draft.name, chosen_location.as_deref()))
            .collect(),
        reasons: MovementReason::ALL
            .iter()
            .filter(|r| r.is_manual() && **r != MovementReason::Sale)
            .map(|r| Choice::new(r.as_str(), show::reason(*r), Some(feedback.value("adjust", "reason"))))
            .collect(),
        levels: levels
            .iter()
            .map(|l| LevelRow {
                sku: l.sku.clone(),
                location: names.location(&l.location_id),
                on_hand: l.on_hand,
                reserved: l.reserved,
                available: l.available(),
            })
            .collect(),
        next,
        channels,
        movements: movements
            .iter()
            .map(|m| MovementRow {
                when: show::when(m.at),
                sku: m.sku.clone(),
                location: names.location(&m.location_id),
                delta: format!("{:+}", m.delta),
                reason: show::reason(m.reason),
                reference: m.reference.clone().unwrap_or_default(),
                on_hand_after: m.on_hand_after,
            })
            .collect(),
        stock_outs,
        may_change: staff.may_change(Area::Inventory),
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

/// What the person typed into a failed form, or else what the page shows.
fn feedback_or(feedback: &Feedback, field: &str, otherwise: Option<&str>) -> Option<String> {
    let typed = [feedback.value("adjust", field), feedback.value("transfer", field)]
        .into_iter()
        .find(|v| !v.is_empty());
    typed.or(otherwise).map(str::to_owned)
}

async fn inventory(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<InventoryQuery>,
) -> Result<Response, PageError> {
    staff.require(Area::Inventory, Access::Read)?;
    let shown = Shown {
        sku: chosen(&query.sku),
        location: chosen(&query.location),
        stock_outs: chosen(&query.stock_outs).is_some(),
        after: chosen(&query.after),
        done: query.done,
    };
    inventory_page(&admin, &staff, shown, Feedback::none()).await
}

/// The page again after a failed form, showing the SKU the form was about.
async fn again(admin: &Admin, staff: &Staff, fields: &Fields, feedback: Feedback) -> Result<Response, PageError> {
    let shown = Shown {
        sku: given(fields, "sku"),
        location: None,
        stock_outs: false,
        after: None,
        done: None,
    };
    inventory_page(admin, staff, shown, feedback).await
}

fn after_change(sku: &str, code: &str) -> Response {
    let query = serde_urlencoded::to_string([("sku", sku)]).unwrap_or_default();
    done(&format!("/admin/inventory?{query}"), code)
}

/// An adjustment from the form: a change (`delta`) or a count (`set_on_hand`), with a reason.
fn adjustment(fields: &Fields) -> Result<AdjustmentDraft, Feedback> {
    let invalid = |field: &str, message: &str| Feedback::invalid("adjust", field, message, fields.clone());
    let delta = number(fields, "delta").map_err(|()| invalid("delta", "must be a whole number, like 5 or -2"))?;
    let set_on_hand = number(fields, "set_on_hand").map_err(|()| invalid("set_on_hand", "must be a whole number"))?;
    let reason = MovementReason::parse(field(fields, "reason")).ok_or_else(|| invalid("reason", "choose a reason"))?;
    Ok(AdjustmentDraft {
        sku: field(fields, "sku").to_owned(),
        location_id: field(fields, "location_id").to_owned(),
        delta,
        set_on_hand,
        reason,
        reference: given(fields, "reference"),
    })
}

async fn adjust(State(admin): State<Admin>, staff: Staff, Form(fields): Form<Fields>) -> Result<Response, PageError> {
    staff.require(Area::Inventory, Access::Write)?;
    let draft = match adjustment(&fields) {
        Ok(draft) => draft,
        Err(feedback) => return again(&admin, &staff, &fields, feedback).await,
    };
    let sku = draft.sku.clone();
    match admin.store.adjust_stock(draft).await {
        Ok(_) => Ok(after_change(&sku, "adjusted")),
        Err(error) => {
            let feedback = Feedback::from_error("adjust", error, fields.clone())?;
            again(&admin, &staff, &fields, feedback).await
        }
    }
}

async fn transfer(State(admin): State<Admin>, staff: Staff, Form(fields): Form<Fields>) -> Result<Response, PageError> {
    staff.require(Area::Inventory, Access::Write)?;
    let Ok(Some(quantity)) = number(&fields, "quantity") else {
        let feedback = Feedback::invalid("transfer", "quantity", "must be a whole number", fields.clone());
        return again(&admin, &staff, &fields, feedback).await;
    };
    let draft = TransferDraft {
        sku: field(&fields, "sku").to_owned(),
        from_location_id: field(&fields, "from_location_id").to_owned(),
        to_location_id: field(&fields, "to_location_id").to_owned(),
        quantity,
        reference: given(&fields, "reference"),
    };
    let sku = draft.sku.clone();
    match admin.store.transfer_stock(draft).await {
        Ok(_) => Ok(after_change(&sku, "transferred")),
        Err(error) => {
            let feedback = Feedback::from_error("transfer", error, fields.clone())?;
            again(&admin, &staff, &fields, feedback).await
        }
    }
}

// ───────────────────────────── replenishment ─────────────────────────────

#[derive(Debug, Default, Deserialize)]
pub struct ReplenishmentQuery {
    location: Option<String>,
}

pub struct ReorderRow {
    pub sku: String,
    pub available: i64,
    pub sold: i64,
    pub per_day: String,
    pub reorder_point: i64,
    pub suggested: i64,
}

#[derive(Template)]
#[template(path = "replenishment.html")]
struct ReplenishmentPage {
    layout: Layout,
    own_store: bool,
    locations: Vec<Choice>,
    rows: Vec<ReorderRow>,
}

/// The window and rules the suggestions are made with, as the API's defaults.
const WINDOW_DAYS: i64 = 30;
const LEAD_TIME_DAYS: i64 = 7;
const SAFETY_STOCK: i64 = 2;
const REVIEW_DAYS: i64 = 14;

async fn replenishment(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<ReplenishmentQuery>,
) -> Result<Response, PageError> {
    staff.require(Area::Inventory, Access::Read)?;
    let names = Names::load(&admin.store).await?;
    let location = staff
        .store()
        .map(str::to_owned)
        .or_else(|| chosen(&query.location))
        .or_else(|| names.locations.first().map(|l| l.id.clone()))
        .ok_or(PageError::NotFound("location"))?;
    let suggestions = admin
        .store
        .replenishment(&location, WINDOW_DAYS, LEAD_TIME_DAYS, SAFETY_STOCK, REVIEW_DAYS)
        .await?;
    let page = ReplenishmentPage {
        layout: Layout::new(
            &staff,
            Area::Inventory,
            format!("Reorder suggestions: {}", names.location(&location)),
        ),
        own_store: staff.store().is_some(),
        locations: names
            .locations
            .iter()
            .map(|l| Choice::new(&l.id, &l.draft.name, Some(&location)))
            .collect(),
        rows: suggestions
            .iter()
            .map(|r| ReorderRow {
                sku: r.sku.clone(),
                available: r.available,
                sold: r.units_sold,
                per_day: format!("{:.1}", r.reorder.velocity_per_day_milli as f64 / 1000.0),
                reorder_point: r.reorder.reorder_point,
                suggested: r.reorder.suggested_quantity,
            })
            .collect(),
    };
    Ok(render_with(axum::http::StatusCode::OK, &page))
}

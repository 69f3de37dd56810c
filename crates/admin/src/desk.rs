//! The pick-up desk of a store: the orders waiting there, finding an order by its number (typed
//! or scanned), handing it over, and taking back goods of any channel's order.
//!
//! Store staff always work at their own store; managers and owners choose one.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use omnihub_domain::orders::{FulfillmentKind, Order, Step};
use omnihub_domain::users::{Access, Area};
use serde::Deserialize;

use crate::forms::{Fields, chosen, field};
use crate::names::Names;
use crate::orders::{Choice, QtyLine, StepView, legal_steps, record_return, returnable_lines, status_class, step_code};
use crate::page::{Feedback, Layout, PageError, Query, done, render_with, status_of};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/desk", get(desk))
        .route("/admin/desk/{order_id}/return", post(take_return))
        .route("/admin/desk/{order_id}/{fulfillment_id}/{step}", post(advance))
}

#[derive(Debug, Default, Deserialize)]
pub struct DeskQuery {
    location: Option<String>,
    number: Option<String>,
    /// The buyer's e-mail, which finds an order of another store for store staff.
    email: Option<String>,
    done: Option<String>,
}

/// A pick-up waiting at this desk, with what may be done to it.
pub struct Handover {
    pub fulfillment_id: String,
    pub status: &'static str,
    pub steps: Vec<StepView>,
}

/// An order as the desk shows it.
pub struct DeskOrder {
    pub id: String,
    pub number: String,
    pub placed: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub customer: String,
    pub lines: Vec<String>,
    pub total: String,
    pub handovers: Vec<Handover>,
    pub returnable: Vec<QtyLine>,
}

#[derive(Template)]
#[template(path = "desk.html")]
struct DeskPage {
    layout: Layout,
    location_id: String,
    location: String,
    /// Managers and owners choose the store; store staff have theirs.
    stores: Vec<Choice>,
    number: String,
    email: String,
    found: Option<DeskOrder>,
    not_found: bool,
    waiting: Vec<DeskOrder>,
    feedback: Feedback,
}

/// The store this desk serves: store staff's own; otherwise the one asked for, or the first.
fn desk_location(staff: &Staff, asked: Option<String>, names: &Names) -> Option<String> {
    if let Some(own) = staff.store() {
        return Some(own.to_owned());
    }
    asked.or_else(|| names.stores().next().map(|l| l.id.clone()))
}

/// Store staff find their store's orders by number, others' only with the buyer's e-mail;
/// managers and owners find every order.
fn may_find(staff: &Staff, order: &Order, email: Option<&str>) -> bool {
    staff.store().is_none_or(|store| order.found_at_desk(store, email))
}

fn desk_order(order: &Order, location: &str) -> DeskOrder {
    DeskOrder {
        id: order.id.clone(),
        number: order.number.clone(),
        placed: show::when(order.created_at),
        status: show::status(order.status),
        status_class: status_class(order.status),
        customer: order.email.clone().unwrap_or_else(|| "—".to_owned()),
        lines: order
            .lines
            .iter()
            .map(|l| format!("{} × {}", l.quantity, l.sku))
            .collect(),
        total: show::money(&order.totals.total),
        handovers: order
            .fulfillments
            .iter()
            .filter(|f| f.kind == FulfillmentKind::Pickup && f.location_id == location)
            .map(|f| Handover {
                fulfillment_id: f.id.clone(),
                status: show::fulfillment_status(f.status),
                steps: legal_steps(f),
            })
            .filter(|h| !h.steps.is_empty())
            .collect(),
        returnable: returnable_lines(order),
    }
}

struct Asked {
    location: Option<String>,
    number: Option<String>,
    email: Option<String>,
    done: Option<String>,
}

async fn desk_page(admin: &Admin, staff: &Staff, asked: Asked, feedback: Feedback) -> Result<Response, PageError> {
    let names = Names::load(&admin.store).await?;
    let location = desk_location(staff, asked.location, &names).ok_or(PageError::NotFound("store"))?;
    let waiting = admin.store.pickup_queue(&location).await?;
    let (found, not_found) = match &asked.number {
        Some(number) => match admin.store.order_by_number(number).await {
            Ok(order) if may_find(staff, &order, asked.email.as_deref()) => {
                (Some(desk_order(&order, &location)), false)
            }
            // Another store's order is "not found" alike: the desk tells nothing of it.
            Ok(_) | Err(omnihub_store::Error::NotFound(_)) => (None, true),
            Err(error) => return Err(error.into()),
        },
        None => (None, false),
    };
    let stores = if staff.store().is_some() {
        Vec::new()
    } else {
        names
            .stores()
            .map(|l| Choice::new(&l.id, &l.draft.name, Some(&location)))
            .collect()
    };
    let page = DeskPage {
        layout: Layout::new(staff, Area::PickupDesk, "Pick-up desk")
            .live("orders")
            .done(asked.done.as_deref()),
        location: names.location(&location),
        location_id: location.clone(),
        stores,
        number: asked.number.unwrap_or_default(),
        email: asked.email.unwrap_or_default(),
        found,
        not_found,
        waiting: waiting.iter().map(|o| desk_order(o, &location)).collect(),
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

async fn desk(State(admin): State<Admin>, staff: Staff, Query(query): Query<DeskQuery>) -> Result<Response, PageError> {
    staff.require(Area::PickupDesk, Access::Read)?;
    let asked = Asked {
        location: chosen(&query.location),
        number: chosen(&query.number),
        email: chosen(&query.email),
        done: query.done,
    };
    desk_page(&admin, &staff, asked, Feedback::none()).await
}

/// Where to go back after an action: this desk, and the order that was looked up.
fn back(staff: &Staff, location: &str, fields: &Fields) -> String {
    let mut query = Vec::new();
    if staff.store().is_none() {
        query.push(("location", location.to_owned()));
    }
    for name in ["number", "email"] {
        if let Some(value) = chosen(&Some(field(fields, name).to_owned())) {
            query.push((name, value));
        }
    }
    format!("/admin/desk?{}", serde_urlencoded::to_string(query).unwrap_or_default())
}

/// The desk's store from a form: store staff's own whatever the form says.
async fn form_location(admin: &Admin, staff: &Staff, fields: &Fields) -> Result<String, PageError> {
    let names = Names::load(&admin.store).await?;
    desk_location(staff, chosen(&Some(field(fields, "location").to_owned())), &names)
        .ok_or(PageError::NotFound("store"))
}

async fn advance(
    State(admin): State<Admin>,
    staff: Staff,
    Path((order_id, fulfillment_id, step)): Path<(String, String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::PickupDesk, Access::Write)?;
    let step = match step.as_str() {
        "ready" => Step::Ready,
        "collect" => Step::Collect,
        _ => return Err(PageError::NotFound("action")),
    };
    let location = form_location(&admin, &staff, &fields).await?;
    let order = admin.store.order(&order_id).await?;
    // A desk hands over only what waits at its own store.
    let here = order
        .fulfillments
        .iter()
        .any(|f| f.id == fulfillment_id && f.location_id == location && f.kind == FulfillmentKind::Pickup);
    if !here {
        return Err(PageError::Forbidden);
    }
    match admin
        .store
        .advance_fulfillment(&order_id, &fulfillment_id, step, None)
        .await
    {
        Ok(_) => Ok(done(&back(&staff, &location, &fields), step_code(step))),
        Err(error) => {
            let feedback = Feedback::from_error(format!("step:{fulfillment_id}"), error, fields.clone())?;
            desk_page(&admin, &staff, asked_again(location, &fields), feedback).await
        }
    }
}

fn asked_again(location: String, fields: &Fields) -> Asked {
    Asked {
        location: Some(location),
        number: chosen(&Some(field(fields, "number").to_owned())),
        email: chosen(&Some(field(fields, "email").to_owned())),
        done: None,
    }
}

async fn take_return(
    State(admin): State<Admin>,
    staff: Staff,
    Path(order_id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::PickupDesk, Access::Write)?;
    // Goods come back at this desk's store, whichever channel sold them, for an order the
    // desk could find.
    let location = form_location(&admin, &staff, &fields).await?;
    let order = admin.store.order(&order_id).await?;
    if !may_find(
        &staff,
        &order,
        chosen(&Some(field(&fields, "email").to_owned())).as_deref(),
    ) {
        return Err(PageError::Forbidden);
    }
    match record_return(&admin, &order_id, &location, &fields).await {
        Ok(_) => Ok(done(&back(&staff, &location, &fields), "returned")),
        Err(error) => {
            let feedback = error.feedback("return", fields.clone())?;
            desk_page(&admin, &staff, asked_again(location, &fields), feedback).await
        }
    }
}

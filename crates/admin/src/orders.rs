//! Orders: the list with its filters, and the order page with its lines, where the stock is
//! held, fulfilments, returns, the events of its life, and only the actions its state allows.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use omnihub_domain::orders::{
    FulfillmentKind, FulfillmentRecord, Method, Order, PaymentStatus, Status, Step, check_mark_paid,
};
use omnihub_domain::users::{Access, Area};
use omnihub_store::{FulfillmentDraft, OrderSearch, OrderSummary, Page};
use serde::Deserialize;

use crate::forms::{Fields, chosen, field, given, picked_lines};
use crate::names::Names;
use crate::page::{Feedback, Layout, PageError, Query, done, render_with, status_of};
use crate::pickup_code;
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/orders", get(list))
        .route("/admin/orders/{id}", get(order))
        .route("/admin/orders/{id}/fulfillments", post(fulfil))
        .route("/admin/orders/{id}/fulfillments/{fulfillment_id}/{step}", post(advance))
        .route("/admin/orders/{id}/cancel", post(cancel))
        .route("/admin/orders/{id}/mark-paid", post(mark_paid))
        .route("/admin/orders/{id}/returns", post(take_return))
}

/// An option of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>, chosen: Option<&str>) -> Choice {
        let value = value.into();
        Choice {
            selected: chosen == Some(value.as_str()),
            value,
            label: label.into(),
        }
    }
}

/// How an order's status looks: done is green, gone is red, waiting is amber.
pub fn status_class(status: Status) -> &'static str {
    match status {
        Status::Completed => "badge-ok",
        Status::Cancelled | Status::Returned => "badge-bad",
        Status::ReadyForPickup | Status::PartiallyFulfilled => "badge-warn",
        _ => "",
    }
}

// ───────────────────────────── the list ─────────────────────────────

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    channel: Option<String>,
    /// A status, or `open` for every order still to be fulfilled.
    status: Option<String>,
    method: Option<String>,
    location: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
}

pub struct OrderRow {
    pub id: String,
    pub number: String,
    pub placed: String,
    pub channel: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub method: &'static str,
    pub location: String,
    pub total: String,
}

pub fn row(order: &OrderSummary, names: &Names) -> OrderRow {
    OrderRow {
        id: order.id.clone(),
        number: order.number.clone(),
        placed: show::when(order.created_at),
        channel: names.channel(&order.channel_id),
        status: show::status(order.status),
        status_class: status_class(order.status),
        method: show::method(order.method),
        location: order
            .location_id
            .as_deref()
            .map(|l| names.location(l))
            .unwrap_or_default(),
        total: show::money(&order.total),
    }
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    layout: Layout,
    channels: Vec<Choice>,
    statuses: Vec<Choice>,
    methods: Vec<Choice>,
    locations: Vec<Choice>,
    from: String,
    to: String,
    rows: Vec<OrderRow>,
    next: Option<String>,
}

impl ListQuery {
    fn search(&self) -> Result<OrderSearch, PageError> {
        let status = chosen(&self.status);
        let day = |text: &Option<String>| chosen(text).map(|d| show::parse_day(&d).ok_or(PageError::NotFound("date")));
        Ok(OrderSearch {
            channel_id: chosen(&self.channel),
            open_only: status.as_deref() == Some("open"),
            status: status.as_deref().and_then(Status::parse),
            method: chosen(&self.method)
                .as_deref()
                .and_then(omnihub_domain::orders::Method::parse),
            location_id: chosen(&self.location),
            placed_from: day(&self.from).transpose()?,
            // The "to" day is included: up to the start of the next one.
            placed_before: day(&self.to).transpose()?.map(|d| d.plus_seconds(86_400)),
        })
    }

    /// This list's address with another cursor.
    fn with_cursor(&self, cursor: &str) -> String {
        let pairs = [
            ("channel", &self.channel),
            ("status", &self.status),
            ("method", &self.method),
            ("location", &self.location),
            ("from", &self.from),
            ("to", &self.to),
        ];
        let mut query: Vec<(&str, String)> = pairs
            .iter()
            .filter_map(|(key, value)| chosen(value).map(|v| (*key, v)))
            .collect();
        query.push(("after", cursor.to_owned()));
        format!(
            "/admin/orders?{}",
            serde_urlencoded::to_string(query).unwrap_or_default()
        )
    }
}

async fn list(State(admin): State<Admin>, staff: Staff, Query(query): Query<ListQuery>) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Read)?;
    let search = query.search()?;
    let page = Page {
        after: chosen(&query.after),
        limit: 50,
    };
    let (orders, next) = admin.store.search_orders(&search, &page).await?;
    let names = Names::load(&admin.store).await?;
    let status = chosen(&query.status);
    let mut statuses = vec![Choice::new("open", "Open (still to fulfil)", status.as_deref())];
    statuses.extend(
        Status::ALL
            .iter()
            .map(|s| Choice::new(s.as_str(), show::status(*s), status.as_deref())),
    );
    let method = chosen(&query.method);
    let channel = chosen(&query.channel);
    let location = chosen(&query.location);
    let page = OrdersPage {
        layout: Layout::new(&staff, Area::Orders, "Orders").live("orders"),
        channels: names
            .channels
            .iter()
            .map(|c| Choice::new(&c.id, &c.draft.name, channel.as_deref()))
            .collect(),
        statuses,
        methods: show::METHODS
            .iter()
            .map(|m| Choice::new(m.as_str(), show::method(*m), method.as_deref()))
            .collect(),
        locations: names
            .locations
            .iter()
            .map(|l| Choice::new(&l.id, &l.draft.name, location.as_deref()))
            .collect(),
        from: chosen(&query.from).unwrap_or_default(),
        to: chosen(&query.to).unwrap_or_default(),
        rows: orders.iter().map(|o| row(o, &names)).collect(),
        next: next.map(|cursor| query.with_cursor(&cursor)),
    };
    Ok(render_with(axum::http::StatusCode::OK, &page))
}

// ───────────────────────────── one order ─────────────────────────────

pub struct LineView {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: String,
    pub total: String,
    pub allocations: Vec<String>,
}

pub struct StepView {
    pub step: &'static str,
    pub label: &'static str,
    pub needs_tracking: bool,
}

pub struct FulfilmentView {
    pub id: String,
    pub kind: &'static str,
    pub location: String,
    pub status: &'static str,
    pub lines: Vec<String>,
    pub tracking: Option<String>,
    pub steps: Vec<StepView>,
}

/// A quantity field of a form that picks lines: the SKU and how many may be picked.
pub struct QtyLine {
    pub sku: String,
    pub max: i64,
}

pub struct FulfilForm {
    pub location_id: String,
    pub location: String,
    pub kind: &'static str,
    pub lines: Vec<QtyLine>,
}

pub struct ReturnView {
    pub when: String,
    pub location: String,
    pub restocked: bool,
    pub reason: String,
    pub lines: Vec<String>,
    pub refund: String,
}

pub struct EventView {
    pub when: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    layout: Layout,
    id: String,
    status: &'static str,
    status_class: &'static str,
    facts: Vec<(&'static str, String)>,
    customer_id: Option<String>,
    lines: Vec<LineView>,
    subtotal: String,
    discount: Option<String>,
    total: String,
    fulfilments: Vec<FulfilmentView>,
    returns: Vec<ReturnView>,
    may_act: bool,
    fulfil_forms: Vec<FulfilForm>,
    can_cancel: bool,
    awaits_payment: bool,
    returnable: Vec<QtyLine>,
    return_locations: Vec<Choice>,
    timeline: Vec<EventView>,
    /// For orders collected in a store: the code the desk scans.
    pickup_code: Option<String>,
    feedback: Feedback,
}

/// The lines that can still be returned, with how many of each.
pub fn returnable_lines(order: &Order) -> Vec<QtyLine> {
    if !order.status.can_return() {
        return Vec::new();
    }
    order
        .lines
        .iter()
        .map(|l| QtyLine {
            sku: l.sku.clone(),
            max: order.returnable(&l.sku),
        })
        .filter(|l| l.max > 0)
        .collect()
}

/// One form per location that holds units not yet in a fulfilment.
fn fulfil_forms(order: &Order, names: &Names) -> Vec<FulfilForm> {
    if !matches!(
        order.status,
        Status::Placed | Status::Allocated | Status::PartiallyFulfilled
    ) {
        return Vec::new();
    }
    let mut locations: Vec<&str> = order
        .lines
        .iter()
        .flat_map(|l| &l.allocations)
        .map(|a| a.location_id.as_str())
        .collect();
    locations.sort_unstable();
    locations.dedup();
    locations
        .into_iter()
        .map(|location| FulfilForm {
            location_id: location.to_owned(),
            location: names.location(location),
            kind: show::fulfillment_kind(order.fulfillment.method.fulfillment_kind()),
            lines: order
                .lines
                .iter()
                .map(|l| QtyLine {
                    sku: l.sku.clone(),
                    max: order.unfulfilled(&l.sku, location),
                })
                .filter(|l| l.max > 0)
                .collect(),
        })
        .filter(|form| !form.lines.is_empty())
        .collect()
}

pub fn step_label(step: Step) -> &'static str {
    match step {
        Step::Ship => "Ship",
        Step::Ready => "Mark ready for pick-up",
        Step::Collect => "Hand over to the customer",
        Step::Deliver => "Mark delivered",
    }
}

/// The steps the fulfilment's state allows, by the domain's own rule.
pub fn legal_steps(f: &FulfillmentRecord) -> Vec<StepView> {
    [Step::Ship, Step::Ready, Step::Collect, Step::Deliver]
        .into_iter()
        .filter(|step| f.status.after(f.kind, *step).is_ok())
        .map(|step| StepView {
            step: step.as_str(),
            label: step_label(step),
            needs_tracking: step == Step::Ship && f.kind == FulfillmentKind::Shipment,
        })
        .collect()
}

pub fn fulfilment_view(f: &FulfillmentRecord, names: &Names) -> FulfilmentView {
    FulfilmentView {
        id: f.id.clone(),
        kind: show::fulfillment_kind(f.kind),
        location: names.location(&f.location_id),
        status: show::fulfillment_status(f.status),
        lines: f.lines.iter().map(|l| format!("{} × {}", l.quantity, l.sku)).collect(),
        tracking: match (&f.carrier, &f.tracking_number) {
            (Some(carrier), Some(number)) => Some(format!("{carrier} {number}")),
            _ => None,
        },
        steps: legal_steps(f),
    }
}

fn facts(order: &Order, names: &Names) -> Vec<(&'static str, String)> {
    let mut facts = vec![
        ("Placed", show::when(order.created_at)),
        ("Channel", names.channel(&order.channel_id)),
        ("Fulfilment", show::method(order.fulfillment.method).to_owned()),
    ];
    if let Some(location) = &order.fulfillment.location_id {
        facts.push(("Store", names.location(location)));
    }
    if let Some(email) = &order.email {
        facts.push(("E-mail", email.clone()));
    }
    if let Some(external) = &order.external_id {
        facts.push(("Reference in the channel", external.clone()));
    }
    match order.payment_status {
        Some(PaymentStatus::Pending) => facts.push(("Payment", "Waiting for payment".to_owned())),
        Some(PaymentStatus::Paid) => facts.push(("Payment", "Paid".to_owned())),
        None => {}
    }
    if let Some(until) = order.hold_expires_at {
        facts.push(("Held until", show::when(until)));
    }
    if order.loyalty_points_redeemed > 0 {
        facts.push(("Points redeemed", order.loyalty_points_redeemed.to_string()));
    }
    facts
}

fn line_views(order: &Order, names: &Names) -> Vec<LineView> {
    order
        .lines
        .iter()
        .map(|l| LineView {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price: show::money(&l.unit_price),
            total: show::money(&omnihub_domain::Money::new(
                l.unit_price.amount * l.quantity,
                &l.unit_price.currency,
            )),
            allocations: l
                .allocations
                .iter()
                .map(|a| format!("{} at {}", a.quantity, names.location(&a.location_id)))
                .collect(),
        })
        .collect()
}

pub fn return_views(order: &Order, names: &Names) -> Vec<ReturnView> {
    order
        .returns
        .iter()
        .map(|r| ReturnView {
            when: show::when(r.created_at),
            location: names.location(&r.location_id),
            restocked: r.restock,
            reason: r.reason.clone(),
            lines: r.lines.iter().map(|l| format!("{} × {}", l.quantity, l.sku)).collect(),
            refund: show::money(&r.refund),
        })
        .collect()
}

async fn order_page(
    admin: &Admin,
    staff: &Staff,
    id: &str,
    feedback: Feedback,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let order = admin.store.order(id).await?;
    let names = Names::load(&admin.store).await?;
    let timeline = admin
        .store
        .order_events(id)
        .await?
        .iter()
        .map(|e| EventView {
            when: show::when(e.occurred_at),
            label: show::event_kind(&e.kind),
        })
        .collect();
    let discount = (order.totals.discount.amount != 0).then(|| show::money(&order.totals.discount));
    let page = OrderPage {
        layout: Layout::new(staff, Area::Orders, format!("Order {}", order.number))
            .live("orders")
            .done(notice),
        id: order.id.clone(),
        status: show::status(order.status),
        status_class: status_class(order.status),
        facts: facts(&order, &names),
        customer_id: order.customer_id.clone(),
        lines: line_views(&order, &names),
        subtotal: show::money(&order.totals.subtotal),
        discount,
        total: show::money(&order.totals.total),
        fulfilments: order.fulfillments.iter().map(|f| fulfilment_view(f, &names)).collect(),
        returns: return_views(&order, &names),
        may_act: staff.may_change(Area::Orders),
        fulfil_forms: fulfil_forms(&order, &names),
        can_cancel: order.status.can_cancel(),
        awaits_payment: check_mark_paid(order.payment_status, order.status).is_ok(),
        returnable: returnable_lines(&order),
        return_locations: names
            .locations
            .iter()
            .map(|l| Choice::new(&l.id, &l.draft.name, feedback.value("return", "location_id").into()))
            .collect(),
        timeline,
        pickup_code: matches!(order.fulfillment.method, Method::Pickup | Method::ReserveInStore)
            .then(|| pickup_code::svg(&order.number))
            .flatten(),
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

/// The confirmation code of the action that led to a page (`?done=…`).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    pub fn done(&self) -> Option<&str> {
        self.done.as_deref()
    }
}

async fn order(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Read)?;
    order_page(&admin, &staff, &id, Feedback::none(), query.done()).await
}

/// Answers an action: back to the order with a confirmation, or the order again with what
/// went wrong next to the form.
async fn answer(
    admin: &Admin,
    staff: &Staff,
    id: &str,
    form: String,
    result: Result<Order, omnihub_store::Error>,
    code: &str,
    fields: Fields,
) -> Result<Response, PageError> {
    match result {
        Ok(_) => Ok(done(&format!("/admin/orders/{id}"), code)),
        Err(error) => {
            let feedback = Feedback::from_error(form, error, fields)?;
            order_page(admin, staff, id, feedback, None).await
        }
    }
}

async fn fulfil(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Write)?;
    let location = field(&fields, "location_id").to_owned();
    let form = format!("fulfil:{location}");
    let lines = match picked_lines(&fields) {
        Ok(lines) => lines,
        Err(name) => {
            let feedback = Feedback::invalid(form, &name, "must be a whole number", fields);
            return order_page(&admin, &staff, &id, feedback, None).await;
        }
    };
    let order = admin.store.order(&id).await?;
    let draft = FulfillmentDraft {
        location_id: location,
        lines,
        kind: order.fulfillment.method.fulfillment_kind(),
    };
    let result = admin.store.create_fulfillment(&id, draft).await;
    answer(&admin, &staff, &id, form, result, "fulfilment", fields).await
}

fn parse_step(text: &str) -> Option<Step> {
    [Step::Ship, Step::Ready, Step::Collect, Step::Deliver]
        .into_iter()
        .find(|s| s.as_str() == text)
}

pub fn step_code(step: Step) -> &'static str {
    match step {
        Step::Ship => "shipped",
        Step::Ready => "ready",
        Step::Collect => "collected",
        Step::Deliver => "delivered",
    }
}

async fn advance(
    State(admin): State<Admin>,
    staff: Staff,
    Path((id, fulfillment_id, step)): Path<(String, String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Write)?;
    let step = parse_step(&step).ok_or(PageError::NotFound("action"))?;
    let form = format!("step:{fulfillment_id}");
    let carrier = match (given(&fields, "carrier"), given(&fields, "tracking_number")) {
        (Some(carrier), Some(tracking)) => Some((carrier, tracking)),
        _ => None,
    };
    let order = admin.store.order(&id).await?;
    let shipment = order
        .fulfillments
        .iter()
        .any(|f| f.id == fulfillment_id && f.kind == FulfillmentKind::Shipment);
    if step == Step::Ship && shipment && carrier.is_none() {
        let feedback = Feedback::invalid(
            form,
            "tracking_number",
            "a shipment needs its carrier and tracking number",
            fields,
        );
        return order_page(&admin, &staff, &id, feedback, None).await;
    }
    let result = admin
        .store
        .advance_fulfillment(&id, &fulfillment_id, step, carrier)
        .await;
    answer(&admin, &staff, &id, form, result, step_code(step), fields).await
}

async fn cancel(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Write)?;
    let result = admin.store.cancel_order(&id, None).await;
    answer(&admin, &staff, &id, "cancel".into(), result, "cancelled", fields).await
}

async fn mark_paid(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Write)?;
    let result = admin.store.mark_order_paid(&id, None).await;
    answer(&admin, &staff, &id, "mark-paid".into(), result, "paid", fields).await
}

/// Takes goods back at a location: the order page's return form and the pick-up desk's.
pub async fn record_return(admin: &Admin, id: &str, location: &str, fields: &Fields) -> Result<Order, ReturnError> {
    let lines = picked_lines(fields).map_err(ReturnError::NotANumber)?;
    if lines.is_empty() {
        return Err(ReturnError::Nothing);
    }
    let restock = field(fields, "restock") == "on";
    let reason = field(fields, "reason");
    admin
        .store
        .return_items(id, location, &lines, restock, reason)
        .await
        .map_err(ReturnError::Store)
}

pub enum ReturnError {
    NotANumber(String),
    Nothing,
    Store(omnihub_store::Error),
}

impl ReturnError {
    /// What to show next to the return form.
    pub fn feedback(self, form: &str, fields: Fields) -> Result<Feedback, PageError> {
        match self {
            ReturnError::NotANumber(name) => Ok(Feedback::invalid(form, &name, "must be a whole number", fields)),
            ReturnError::Nothing => Ok(Feedback::invalid(form, "lines", "choose what comes back", fields)),
            ReturnError::Store(error) => Feedback::from_error(form.to_owned(), error, fields),
        }
    }
}

async fn take_return(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Orders, Access::Write)?;
    let location = field(&fields, "location_id").to_owned();
    match record_return(&admin, &id, &location, &fields).await {
        Ok(_) => Ok(done(&format!("/admin/orders/{id}"), "returned")),
        Err(error) => {
            let feedback = error.feedback("return", fields)?;
            order_page(&admin, &staff, &id, feedback, None).await
        }
    }
}

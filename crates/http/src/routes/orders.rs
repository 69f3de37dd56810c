//! Carts that follow the customer, checkout, orders from every channel, fulfilment from any
//! location, cancellation and returns anywhere.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Extension, Router};
use omnihub_domain::Money;
use omnihub_domain::access::PublicLimit;
use omnihub_domain::customers::Identity;
use omnihub_domain::network::ClientAddress;
use omnihub_domain::orders::{
    Cart, CartDetails, CartLineDraft, CheckoutBy, Fulfillment, FulfillmentKind, ItemLine, Order, ShippingAddress, Step,
};
use omnihub_store::{ExternalLine, ExternalOrder, FulfillmentDraft, OrderFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{if_match, patched, version_race};
use omnihub_domain::validation::{Check, Lines};

use crate::auth::{Allowed, Caller, CartsWrite, CustomersRead, OrdersRead, OrdersWrite, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, Problem};
use crate::query::Query;
use crate::{AppState, limits};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/carts", post(create_cart))
        .route("/carts/{id}", get(get_cart).patch(patch_cart))
        .route("/carts/{id}/lines", post(add_line))
        .route("/carts/{id}/lines/{line_id}", patch(set_line).delete(remove_line))
        .route("/carts/{id}/checkout", post(checkout))
        .route("/customers/{id}/cart", get(customer_cart))
        .route("/orders", get(list_orders).post(take_order))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/orders/{id}/mark-paid", post(mark_order_paid))
        .route("/orders/{id}/fulfillments", post(create_fulfillment))
        .route(
            "/orders/{id}/fulfillments/{fulfillment_id}/{step}",
            post(advance_fulfillment),
        )
        .route("/orders/{id}/returns", post(return_items))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCart {
    /// The sales channel (a publishable key's own, when omitted).
    pub channel_id: Option<String>,
    /// The customer the cart is for: one that exists, neither merged into another nor erased.
    pub customer_id: Option<String>,
}

/// A cart the caller may touch: a publishable key only its channel's.
async fn own_cart(state: &AppState, caller: &Allowed<CartsWrite>, id: &str) -> Result<Cart, ApiError> {
    owned(caller, state.store.cart(id).await?)
}

/// The same, to change: possibly as this process last wrote it (`Store::cart_to_change`).
async fn own_cart_to_change(state: &AppState, caller: &Allowed<CartsWrite>, id: &str) -> Result<Cart, ApiError> {
    owned(caller, state.store.cart_to_change(id).await?)
}

fn owned(caller: &Caller, cart: Cart) -> Result<Cart, ApiError> {
    caller
        .channel(Some(&cart.channel_id))
        .map_err(|_| ApiError::not_found("cart"))?;
    Ok(cart)
}

/// Start a cart in a sales channel; prices are that channel's. Only a secret key (the
/// storefront's backend, which knows who is signed in) may name the `customer_id`: a
/// publishable key naming one is refused with 403 `forbidden`.
#[utoipa::path(post, path = "/api/v1/carts", tag = "orders", request_body = NewCart,
    responses((status = 201, body = Cart), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_cart(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Json(body): Json<NewCart>,
) -> Result<Created<Cart>, ApiError> {
    let channel = caller
        .channel(body.channel_id.as_deref())?
        .ok_or_else(|| ApiError::invalid_field("channel_id", "required", "name the sales channel"))?;
    if body.customer_id.is_some() {
        caller.forbid_publishable("name the customer of a cart")?;
    }
    Ok(Created(
        state.store.create_cart(channel, body.customer_id.as_deref()).await?,
    ))
}

/// Read a cart, as checkout would charge it: lines at the channel's current prices, and the
/// discount its `loyalty_points` are worth.
#[utoipa::path(get, path = "/api/v1/carts/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = Cart), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_cart(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Path(id): Path<String>,
) -> Result<Json<Cart>, ApiError> {
    let cart = own_cart(&state, &caller, &id).await?;
    Ok(Json(state.store.priced_cart(cart).await?))
}

/// Set the cart's e-mail, customer, shipping address, fulfilment method and loyalty points
/// to redeem (JSON Merge Patch, `If-Match` guarded). A fulfilment naming a location is refused
/// (422) when the cart's channel does not sell from it (`not_in_channel`) or, for a pickup or a
/// reservation in store, when customers cannot pick up there (`no_pickup`); stock is weighed at
/// checkout. Naming another `customer_id` or redeeming `loyalty_points` takes a secret key
/// (the storefront's backend, which knows who is signed in): a publishable key is refused
/// with 403 `forbidden` (it may still clear them).
/// `loyalty_points` above the customer's balance are refused (422 `insufficient_points`).
#[utoipa::path(patch, path = "/api/v1/carts/{id}", tag = "orders", request_body = CartDetails,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header)),
    responses((status = 200, body = Cart), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_cart(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Cart>, ApiError> {
    let asked = if_match(&headers)?;
    let current = own_cart_to_change(&state, &caller, &id).await?;
    let (state, patch, caller) = (&state, &patch, &caller);
    let patch_from = |current: Cart| async move { patch_from(state, caller, &current, patch, asked).await };
    let changed = state.store.change_latest(&current, patch_from).await?;
    Ok(Json(state.store.priced_cart(changed).await?))
}

async fn patch_from(
    state: &AppState,
    caller: &Caller,
    current: &Cart,
    patch: &serde_json::Value,
    asked: Option<i64>,
) -> Result<Cart, ApiError> {
    let details: CartDetails = patched(&current.details, patch)?;
    // Whoever holds the storefront's public key could otherwise spend anyone's points.
    if details.customer_id.is_some() && details.customer_id != current.details.customer_id {
        caller.forbid_publishable("name the customer of a cart")?;
    }
    if details.loyalty_points > 0 && details.loyalty_points != current.details.loyalty_points {
        caller.forbid_publishable("redeem loyalty points")?;
    }
    let version = asked.unwrap_or(current.version);
    state
        .store
        .update_cart(current, details, version)
        .await
        .map_err(|e| version_race(e, asked))
}

/// Add units of a SKU (added to the line when the SKU is there already).
#[utoipa::path(post, path = "/api/v1/carts/{id}/lines", tag = "orders", request_body = CartLineDraft, params(("id" = String, Path)),
    responses((status = 200, body = Cart), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_line(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Path(id): Path<String>,
    Json(draft): Json<CartLineDraft>,
) -> Result<Json<Cart>, ApiError> {
    let cart = own_cart_to_change(&state, &caller, &id).await?;
    let changed = state.store.add_cart_line(&cart, draft).await?;
    Ok(Json(state.store.priced_cart(changed).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineQuantity {
    pub quantity: i64,
}

/// Change a line's quantity.
#[utoipa::path(patch, path = "/api/v1/carts/{id}/lines/{line_id}", tag = "orders", request_body = LineQuantity,
    params(("id" = String, Path), ("line_id" = String, Path)), responses((status = 200, body = Cart)))]
pub async fn set_line(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Path((id, line_id)): Path<(String, String)>,
    Json(body): Json<LineQuantity>,
) -> Result<Json<Cart>, ApiError> {
    let cart = own_cart(&state, &caller, &id).await?;
    let changed = state.store.set_cart_line(&cart, &line_id, body.quantity).await?;
    Ok(Json(state.store.priced_cart(changed).await?))
}

/// Remove a line.
#[utoipa::path(delete, path = "/api/v1/carts/{id}/lines/{line_id}", tag = "orders",
    params(("id" = String, Path), ("line_id" = String, Path)), responses((status = 200, body = Cart)))]
pub async fn remove_line(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Path((id, line_id)): Path<(String, String)>,
) -> Result<Json<Cart>, ApiError> {
    own_cart(&state, &caller, &id).await?;
    let changed = state.store.remove_cart_line(&id, &line_id).await?;
    Ok(Json(state.store.priced_cart(changed).await?))
}

/// Check out: holds the stock and places the order in one atomic step. `409
/// insufficient_stock` names the short lines (and, for a pick-up, the nearest stores that
/// have everything) and holds nothing.
///
/// Through a publishable key the order waits for its payment (`payment_status: pending`): it
/// holds its stock for the payment window only (`hold_expires_at`; then it is cancelled), hands
/// nothing over until `POST /orders/{id}/mark-paid`. It needs the buyer's e-mail, which may
/// have 3 such orders at once; one client address may check out 20 an hour (429
/// `rate_limited`). Its answer names no customer: whoever typed the e-mail learns nothing of
/// who holds it.
#[utoipa::path(post, path = "/api/v1/carts/{id}/checkout", tag = "orders", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Order), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn checkout(
    State(state): State<AppState>,
    caller: Allowed<CartsWrite>,
    Path(id): Path<String>,
    client: Option<Extension<ClientAddress>>,
) -> Result<Created<Order>, ApiError> {
    let cart = own_cart_to_change(&state, &caller, &id).await?;
    let by = match caller.0.channel() {
        Some(channel) => {
            let shopper = limits::client_of(client);
            let refusal = "too many checkouts from this address";
            limits::within(&state, PublicLimit::StorefrontCheckouts, channel, &shopper, refusal)?;
            CheckoutBy::Storefront
        }
        None => CheckoutBy::Backend,
    };
    let mut order = state.store.checkout(&cart, by).await?;
    if by == CheckoutBy::Storefront {
        order.customer_id = None;
    }
    Ok(Created(order))
}

/// The customer's active cart, whatever channel started it.
#[utoipa::path(get, path = "/api/v1/customers/{id}/cart", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = Cart), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn customer_cart(
    State(state): State<AppState>,
    _: Secret<CustomersRead>,
    Path(id): Path<String>,
) -> Result<Json<Cart>, ApiError> {
    let cart = state.store.customer_cart(&id).await?;
    Ok(Json(state.store.priced_cart(cart).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeLine {
    pub sku: String,
    pub quantity: i64,
    /// What the customer paid per unit in that channel.
    pub unit_price: Money,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeCustomer {
    pub name: Option<String>,
    /// The buyer's identities (`email`, `phone`, `loyalty_card` …): the order lands on the
    /// customer who has any of them, or a new one.
    #[serde(default)]
    pub identities: Vec<Identity>,
}

/// An order made elsewhere: a marketplace, a POS, an external web shop.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    pub channel_id: String,
    /// Unique per channel: the same one again answers the first order (200).
    pub external_id: String,
    pub customer: Option<IntakeCustomer>,
    pub customer_id: Option<String>,
    pub lines: Vec<IntakeLine>,
    /// Loyalty points the customer redeems as a discount (a known customer only).
    #[serde(default)]
    pub loyalty_points: i64,
    #[serde(default)]
    pub fulfillment: Fulfillment,
    pub shipping_address: Option<ShippingAddress>,
}

/// Take in an order made elsewhere. Idempotent by channel and `external_id`; a POS sale is
/// handed over on the spot and takes the stock from its store.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = Intake,
    responses((status = 201, body = Order), (status = 200, description = "taken in before", body = Order),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn take_order(
    State(state): State<AppState>,
    _: Secret<OrdersWrite>,
    Json(intake): Json<Intake>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let (customer_name, identities) = intake.customer.map(|c| (c.name, c.identities)).unwrap_or_default();
    let external = ExternalOrder {
        channel_id: intake.channel_id,
        external_id: intake.external_id,
        customer_id: intake.customer_id,
        identities,
        customer_name,
        loyalty_points: intake.loyalty_points,
        lines: intake
            .lines
            .into_iter()
            .map(|l| ExternalLine {
                sku: l.sku,
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect(),
        fulfillment: intake.fulfillment,
        shipping_address: intake.shipping_address,
    };
    let (order, created) = state.store.take_order(external).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(order)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    pub channel_id: Option<String>,
    pub status: Option<String>,
    pub customer_id: Option<String>,
}

/// Orders of every channel, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderParams, ListParams), responses((status = 200, body = List<Order>)))]
pub async fn list_orders(
    State(state): State<AppState>,
    _: Secret<OrdersRead>,
    Query(filter): Query<OrderParams>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Order>>, ApiError> {
    if let Some(status) = &filter.status
        && omnihub_domain::orders::Status::parse(status).is_none()
    {
        return Err(ApiError::invalid_field("status", "invalid", "not an order status"));
    }
    let filter = OrderFilter {
        channel_id: filter.channel_id,
        status: filter.status,
        customer_id: filter.customer_id,
    };
    Ok(Json(List::new(state.store.orders(&filter, &params.page()?).await?)))
}

/// Read an order with its lines, allocations per location, fulfilments and returns, by its id
/// or by its number as customers quote it (`%231001` for `#1001`, or `1001`).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path, description = "ord_…, #1001 or 1001")),
    responses((status = 200, body = Order), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_order(
    State(state): State<AppState>,
    _: Secret<OrdersRead>,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    // Beside the id, what a customer quotes: `#1001` (or `1001`).
    let order = if id.starts_with("ord_") {
        state.store.order(&id).await?
    } else {
        state.store.order_by_number(&id).await?
    };
    Ok(Json(order))
}

/// Cancel an order that has not left yet; every hold is released. Otherwise 409.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path), ("If-Match" = Option<i64>, Header)),
    responses((status = 200, body = Order), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_order(
    State(state): State<AppState>,
    _: Secret<OrdersWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(state.store.cancel_order(&id, if_match(&headers)?).await?))
}

/// Mark a storefront's order paid (`payment_status: pending` → `paid`), as the shop's backend
/// or staff learn of the payment: it no longer lapses at `hold_expires_at` and may be shipped,
/// delivered or collected. An order not waiting for a payment, or cancelled: 409.
#[utoipa::path(post, path = "/api/v1/orders/{id}/mark-paid", tag = "orders", params(("id" = String, Path), ("If-Match" = Option<i64>, Header)),
    responses((status = 200, body = Order), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn mark_order_paid(
    State(state): State<AppState>,
    _: Secret<OrdersWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(state.store.mark_order_paid(&id, if_match(&headers)?).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFulfillment {
    pub location_id: String,
    pub lines: Vec<ItemLine>,
    pub kind: FulfillmentKind,
}

/// Fulfil some lines from one location that holds them for the order.
#[utoipa::path(post, path = "/api/v1/orders/{id}/fulfillments", tag = "orders", request_body = NewFulfillment, params(("id" = String, Path)),
    responses((status = 201, body = Order), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_fulfillment(
    State(state): State<AppState>,
    _: Secret<OrdersWrite>,
    Path(id): Path<String>,
    Json(body): Json<NewFulfillment>,
) -> Result<Created<Order>, ApiError> {
    let draft = FulfillmentDraft {
        location_id: body.location_id,
        lines: body.lines,
        kind: body.kind,
    };
    Ok(Created(state.store.create_fulfillment(&id, draft).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDetails {
    /// For `ship`: the carrier and its tracking number.
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

/// Move a fulfilment one step: `ship` (with `carrier` and `tracking_number`), `deliver`,
/// `ready` (prepared for pick-up) or `collect` (handed over at the desk). Shipping and
/// collecting take the stock away. A step not allowed now is 409.
#[utoipa::path(post, path = "/api/v1/orders/{id}/fulfillments/{fulfillment_id}/{step}", tag = "orders", request_body = Option<StepDetails>,
    params(("id" = String, Path), ("fulfillment_id" = String, Path), ("step" = String, Path, description = "ship, ready, collect or deliver")),
    responses((status = 200, body = Order), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn advance_fulfillment(
    State(state): State<AppState>,
    _: Secret<OrdersWrite>,
    Path((id, fulfillment_id, step)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Order>, ApiError> {
    let step = match step.as_str() {
        "ship" => Step::Ship,
        "ready" => Step::Ready,
        "collect" => Step::Collect,
        "deliver" => Step::Deliver,
        _ => return Err(ApiError::not_found("route")),
    };
    let details: StepDetails = if body.is_empty() {
        StepDetails::default()
    } else {
        crate::json::parse(&body)?
    };
    let mut check = Check::new();
    for (field, value) in [
        ("carrier", &details.carrier),
        ("tracking_number", &details.tracking_number),
    ] {
        check.characters(field, value.as_deref().unwrap_or_default(), Lines::One);
    }
    check.done()?;
    // Blank is missing: a parcel cannot be followed with an empty carrier or number.
    let filled = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let carrier = match (step, filled(details.carrier), filled(details.tracking_number)) {
        (Step::Ship, Some(carrier), Some(tracking)) => Some((carrier, tracking)),
        (Step::Ship, carrier, _)
            if state.store.order(&id).await?.fulfillment.method == omnihub_domain::orders::Method::Ship =>
        {
            return Err(ApiError::invalid_field(
                if carrier.is_none() {
                    "carrier"
                } else {
                    "tracking_number"
                },
                "required",
                "a shipment needs its carrier and tracking number",
            ));
        }
        _ => None,
    };
    Ok(Json(
        state
            .store
            .advance_fulfillment(&id, &fulfillment_id, step, carrier)
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReturn {
    pub lines: Vec<ItemLine>,
    /// Where the goods came back: any location, whatever channel sold them.
    pub location_id: String,
    /// Put the goods back on sale there (false for damaged goods).
    pub restock: bool,
    #[serde(default)]
    pub reason: String,
}

/// Take goods back at any location; restocks there when asked; records the refund.
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns", tag = "orders", request_body = NewReturn, params(("id" = String, Path)),
    responses((status = 201, body = Order), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn return_items(
    State(state): State<AppState>,
    _: Secret<OrdersWrite>,
    Path(id): Path<String>,
    Json(body): Json<NewReturn>,
) -> Result<Created<Order>, ApiError> {
    if body.reason.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "reason",
            "too_long",
            "must be at most 500 characters",
        ));
    }
    let mut check = Check::new();
    check.characters("reason", &body.reason, Lines::Many);
    check.done()?;
    Ok(Created(
        state
            .store
            .return_items(&id, &body.location_id, &body.lines, body.restock, &body.reason)
            .await?,
    ))
}

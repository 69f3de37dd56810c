//! Inventory: levels, adjustments, transfers, the ledger, availability, reservations and
//! replenishment suggestions.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use omnihub_domain::inventory::{
    AdjustmentDraft, Level, Movement, ReorderRow, Reservation, ReservationDraft, SkuAvailability, TransferDraft,
};
use omnihub_store::LevelFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Allowed, InventoryRead, InventoryWrite, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, Problem};
use crate::query::Query;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/inventory/levels", get(list_levels))
        .route("/inventory/adjustments", post(adjust))
        .route("/inventory/transfers", post(transfer))
        .route("/inventory/movements", get(list_movements))
        .route("/inventory/replenishment", get(replenishment))
        .route("/availability", get(availability))
        .route("/reservations", post(reserve))
        .route("/reservations/{id}", get(get_reservation).delete(release))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LevelParams {
    pub sku: Option<String>,
    pub location_id: Option<String>,
}

impl LevelParams {
    fn filter(&self) -> LevelFilter {
        LevelFilter {
            sku: self.sku.clone(),
            location_id: self.location_id.clone(),
        }
    }
}

/// Stock levels per SKU and location: `on_hand`, `reserved` and `available`.
#[utoipa::path(get, path = "/api/v1/inventory/levels", tag = "inventory", params(LevelParams, ListParams),
    responses((status = 200, body = List<Level>)))]
pub async fn list_levels(
    State(state): State<AppState>,
    _: Secret<InventoryRead>,
    Query(filter): Query<LevelParams>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Level>>, ApiError> {
    Ok(Json(List::new(
        state.store.levels(&filter.filter(), &params.page()?).await?,
    )))
}

/// Change what is on hand: `delta` or `set_on_hand`, with a `reason`; answers the new level.
/// Every change is a row of the movement ledger. Going below what is reserved is refused.
#[utoipa::path(post, path = "/api/v1/inventory/adjustments", tag = "inventory", request_body = AdjustmentDraft,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Level), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn adjust(
    State(state): State<AppState>,
    _: Secret<InventoryWrite>,
    Json(draft): Json<AdjustmentDraft>,
) -> Result<Json<Level>, ApiError> {
    Ok(Json(state.store.adjust_stock(draft).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferResult {
    pub from: Level,
    pub to: Level,
}

/// Move stock between two locations, atomically; both sides are in the ledger.
#[utoipa::path(post, path = "/api/v1/inventory/transfers", tag = "inventory", request_body = TransferDraft,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TransferResult), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn transfer(
    State(state): State<AppState>,
    _: Secret<InventoryWrite>,
    Json(draft): Json<TransferDraft>,
) -> Result<Json<TransferResult>, ApiError> {
    let (from, to) = state.store.transfer_stock(draft).await?;
    Ok(Json(TransferResult { from, to }))
}

/// The append-only movement ledger, oldest first; `on_hand` is always the sum of a level's
/// movements.
#[utoipa::path(get, path = "/api/v1/inventory/movements", tag = "inventory", params(LevelParams, ListParams),
    responses((status = 200, body = List<Movement>)))]
pub async fn list_movements(
    State(state): State<AppState>,
    _: Secret<InventoryRead>,
    Query(filter): Query<LevelParams>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Movement>>, ApiError> {
    Ok(Json(List::new(
        state.store.movements(&filter.filter(), &params.page()?).await?,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// The sales channel asking (a publishable key always asks for its own).
    pub channel_id: Option<String>,
    /// Comma-separated SKUs (at most 200).
    pub skus: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityAnswer {
    pub channel_id: String,
    pub data: Vec<SkuAvailability>,
}

/// What a channel may sell now, per SKU and location: its locations' stock less reservations,
/// less the channel's buffer, never below 0.
#[utoipa::path(get, path = "/api/v1/availability", tag = "inventory", params(AvailabilityParams),
    responses((status = 200, body = AvailabilityAnswer), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn availability(
    State(state): State<AppState>,
    caller: Allowed<InventoryRead>,
    Query(params): Query<AvailabilityParams>,
) -> Result<Json<AvailabilityAnswer>, ApiError> {
    let channel_id = caller
        .channel(params.channel_id.as_deref())?
        .ok_or_else(|| ApiError::invalid_field("channel_id", "required", "name the sales channel"))?
        .to_owned();
    let skus: Vec<String> = params
        .skus
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if skus.is_empty() || skus.len() > 200 {
        return Err(ApiError::invalid_field("skus", "out_of_range", "name 1 to 200 SKUs"));
    }
    let data = state
        .store
        .channel_availability(&channel_id, &skus)
        .await
        .map_err(|error| match error {
            omnihub_store::Error::NotFound(_) => {
                ApiError::invalid_field("channel_id", "not_found", "there is no such sales channel")
            }
            other => other.into(),
        })?;
    Ok(Json(AvailabilityAnswer { channel_id, data }))
}

/// Hold stock for a channel, all lines or none, for `ttl_seconds`. Lines without a location
/// are sourced: one location for everything when possible, then priority, then most stock.
#[utoipa::path(post, path = "/api/v1/reservations", tag = "inventory", request_body = ReservationDraft,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Reservation),
        (status = 409, description = "insufficient_stock: the short lines are in errors; nothing was held", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn reserve(
    State(state): State<AppState>,
    _: Secret<InventoryWrite>,
    Json(draft): Json<ReservationDraft>,
) -> Result<Created<Reservation>, ApiError> {
    Ok(Created(state.store.reserve(draft).await?))
}

/// Read a reservation.
#[utoipa::path(get, path = "/api/v1/reservations/{id}", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = Reservation), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_reservation(
    State(state): State<AppState>,
    _: Secret<InventoryRead>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(state.store.reservation(&id).await?))
}

/// Release a reservation: its stock is free again (status `released`).
#[utoipa::path(delete, path = "/api/v1/reservations/{id}", tag = "inventory", params(("id" = String, Path)),
    responses((status = 200, body = Reservation), (status = 409, description = "not active any more", body = Problem, content_type = "application/problem+json")))]
pub async fn release(
    State(state): State<AppState>,
    _: Secret<InventoryWrite>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    Ok((StatusCode::OK, Json(state.store.release_reservation(&id).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplenishmentParams {
    pub location_id: String,
    /// Days of sales to measure velocity over (default 28).
    pub window_days: Option<i64>,
    /// Days a reorder takes to arrive (default 7).
    pub lead_time_days: Option<i64>,
    /// Units always to keep (default 0).
    pub safety_stock: Option<i64>,
    /// Days until the next review (default 7).
    pub review_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplenishmentAnswer {
    pub data: Vec<ReorderRow>,
}

/// Reorder suggestions from sales velocity, lead time and safety stock; fast movers first.
#[utoipa::path(get, path = "/api/v1/inventory/replenishment", tag = "inventory", params(ReplenishmentParams),
    responses((status = 200, body = ReplenishmentAnswer)))]
pub async fn replenishment(
    State(state): State<AppState>,
    _: Secret<InventoryRead>,
    Query(params): Query<ReplenishmentParams>,
) -> Result<Json<ReplenishmentAnswer>, ApiError> {
    let days = |value: Option<i64>, default: i64, field: &str| match value.unwrap_or(default) {
        n @ 0..=365 => Ok(n),
        _ => Err(ApiError::invalid_field(
            field,
            "out_of_range",
            "must be between 0 and 365",
        )),
    };
    let window = days(params.window_days, 28, "window_days")?.max(1);
    let lead = days(params.lead_time_days, 7, "lead_time_days")?;
    let review = days(params.review_days, 7, "review_days")?;
    let safety = params.safety_stock.unwrap_or(0);
    if safety < 0 {
        return Err(ApiError::invalid_field(
            "safety_stock",
            "out_of_range",
            "must not be negative",
        ));
    }
    let data = state
        .store
        .replenishment(&params.location_id, window, lead, safety, review)
        .await?;
    Ok(Json(ReplenishmentAnswer { data }))
}

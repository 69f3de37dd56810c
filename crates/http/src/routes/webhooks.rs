//! Webhook endpoints: where the merchant's systems receive events, and the log of every
//! delivery to them.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use omnihub_domain::webhooks::{Delivery, Endpoint, EndpointDraft, NewEndpoint};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{if_match, patched, version_race};
use crate::AppState;
use crate::auth::{Admin, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, Problem};
use crate::query::Query;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/webhook-endpoints",
            get(list_webhook_endpoints).post(create_webhook_endpoint),
        )
        .route(
            "/webhook-endpoints/{id}",
            get(get_webhook_endpoint)
                .patch(patch_webhook_endpoint)
                .delete(delete_webhook_endpoint),
        )
        .route("/webhook-endpoints/{id}/deliveries", get(list_webhook_deliveries))
        .route("/webhook-endpoints/{id}/replay", post(replay_webhook_endpoint))
}

/// Register a webhook endpoint: every matching event committed from now on is POSTed to its
/// URL, signed with its secret (`Omnihub-Signature`). The secret is shown in this answer only.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "webhooks", request_body = NewEndpoint,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = Endpoint), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_webhook_endpoint(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Json(new): Json<NewEndpoint>,
) -> Result<Created<Endpoint>, ApiError> {
    Ok(Created(state.store.create_webhook_endpoint(new).await?))
}

/// List webhook endpoints.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "webhooks", params(ListParams),
    responses((status = 200, body = List<Endpoint>)))]
pub async fn list_webhook_endpoints(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Endpoint>>, ApiError> {
    Ok(Json(List::new(state.store.webhook_endpoints(&params.page()?).await?)))
}

/// Read a webhook endpoint (never its secret).
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_webhook_endpoint(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(state.store.webhook_endpoint(&id).await?))
}

/// Change `url` or `events`, or pause (`"status": "paused"`) and resume (`"active"`) an
/// endpoint, with a JSON Merge Patch. A paused endpoint keeps its place in the log and, once
/// resumed, receives what happened meanwhile.
#[utoipa::path(patch, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks", request_body = EndpointDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header, description = "The version the change is based on")),
    responses((status = 200, body = Endpoint), (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_webhook_endpoint(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Endpoint>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.webhook_endpoint(&id).await?;
    let draft = patched(&current.draft, &patch)?;
    let version = asked.unwrap_or(current.version);
    Ok(Json(
        state
            .store
            .update_webhook_endpoint(&id, draft, version)
            .await
            .map_err(|e| version_race(e, asked))?,
    ))
}

/// Delete a webhook endpoint with its delivery log: nothing more is sent to it. To stop
/// deliveries for a while instead, pause it.
#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_webhook_endpoint(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_webhook_endpoint(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, newest first: each with its status, attempts, last answer and
/// response time.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ListParams),
    responses((status = 200, body = List<Delivery>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_webhook_deliveries(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Delivery>>, ApiError> {
    Ok(Json(List::new(
        state.store.webhook_deliveries(&id, &params.page()?).await?,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Deliver again every matching event with this `seq` or a later one.
    pub from_seq: i64,
}

/// Deliver the endpoint's events again from `from_seq` on, as new deliveries with the same
/// `Omnihub-Event-Id` (receivers deduplicate by it).
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/replay", tag = "webhooks", request_body = Replay,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn replay_webhook_endpoint(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Path(id): Path<String>,
    Json(replay): Json<Replay>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(state.store.replay_webhook_endpoint(&id, replay.from_seq).await?))
}

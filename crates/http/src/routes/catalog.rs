//! Sales channels, locations, products, listings and price parity.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use omnihub_domain::catalog::{
    Channel, ChannelDraft, Listing, ListingDraft, Location, LocationDraft, ParityRow, Product, ProductDraft,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{if_match, patched, version_race};
use crate::AppState;
use crate::auth::{Allowed, CatalogRead, CatalogWrite, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, Problem};
use crate::query::Query;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels", get(list_channels).post(create_channel))
        .route("/channels/{id}", get(get_channel).patch(patch_channel))
        .route("/locations", get(list_locations).post(create_location))
        .route("/locations/{id}", get(get_location).patch(patch_location))
        .route("/products", get(list_products).post(create_product))
        .route("/products/{id}", get(get_product).patch(patch_product))
        .route(
            "/products/{id}/listings/{channel_id}",
            put(put_listing).get(get_listing),
        )
        .route("/price-parity", get(price_parity))
}

/// Create a sales channel.
#[utoipa::path(post, path = "/api/v1/channels", tag = "catalog", request_body = ChannelDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = Channel), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_channel(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Json(draft): Json<ChannelDraft>,
) -> Result<Created<Channel>, ApiError> {
    Ok(Created(state.store.create_channel(draft).await?))
}

/// List sales channels.
#[utoipa::path(get, path = "/api/v1/channels", tag = "catalog", params(ListParams), responses((status = 200, body = List<Channel>)))]
pub async fn list_channels(
    State(state): State<AppState>,
    _: Secret<CatalogRead>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Channel>>, ApiError> {
    Ok(Json(List::new(state.store.channels(&params.page()?).await?)))
}

/// Read a sales channel. A publishable key reads its own.
#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = Channel), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_channel(
    State(state): State<AppState>,
    caller: Allowed<CatalogRead>,
    Path(id): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    caller.channel(Some(&id))?;
    Ok(Json(state.store.channel(&id).await?))
}

/// Change a sales channel with a JSON Merge Patch (RFC 7396); `If-Match: <version>` guards
/// against lost updates.
#[utoipa::path(patch, path = "/api/v1/channels/{id}", tag = "catalog", request_body = ChannelDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header, description = "The version the change is based on")),
    responses((status = 200, body = Channel), (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_channel(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Channel>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.channel(&id).await?;
    let draft = patched(&current.draft, &patch)?;
    let version = asked.unwrap_or(current.version);
    Ok(Json(
        state
            .store
            .update_channel(&id, draft, version)
            .await
            .map_err(|e| version_race(e, asked))?,
    ))
}

/// Create a location: a warehouse, a store or a drop-shipper.
#[utoipa::path(post, path = "/api/v1/locations", tag = "catalog", request_body = LocationDraft,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Location), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_location(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Json(draft): Json<LocationDraft>,
) -> Result<Created<Location>, ApiError> {
    Ok(Created(state.store.create_location(draft).await?))
}

/// List locations.
#[utoipa::path(get, path = "/api/v1/locations", tag = "catalog", params(ListParams), responses((status = 200, body = List<Location>)))]
pub async fn list_locations(
    State(state): State<AppState>,
    _: Allowed<CatalogRead>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Location>>, ApiError> {
    Ok(Json(List::new(state.store.locations(&params.page()?).await?)))
}

/// Read a location.
#[utoipa::path(get, path = "/api/v1/locations/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = Location), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_location(
    State(state): State<AppState>,
    _: Allowed<CatalogRead>,
    Path(id): Path<String>,
) -> Result<Json<Location>, ApiError> {
    Ok(Json(state.store.location(&id).await?))
}

/// Change a location with a JSON Merge Patch.
#[utoipa::path(patch, path = "/api/v1/locations/{id}", tag = "catalog", request_body = LocationDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header)),
    responses((status = 200, body = Location), (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_location(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Location>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.location(&id).await?;
    let draft = patched(&current.draft, &patch)?;
    let version = asked.unwrap_or(current.version);
    Ok(Json(
        state
            .store
            .update_location(&id, draft, version)
            .await
            .map_err(|e| version_race(e, asked))?,
    ))
}

/// Create a product with its variants. A SKU is unique in the whole catalog (409 otherwise).
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = ProductDraft,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = Product), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_product(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Json(draft): Json<ProductDraft>,
) -> Result<Created<Product>, ApiError> {
    Ok(Created(state.store.create_product(draft).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChannelParam {
    /// Read with this channel's prices (only products published there). A publishable key
    /// always reads its own channel.
    pub channel_id: Option<String>,
}

/// List products.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ListParams, ChannelParam), responses((status = 200, body = List<Product>)))]
pub async fn list_products(
    State(state): State<AppState>,
    caller: Allowed<CatalogRead>,
    Query(params): Query<ListParams>,
    Query(channel): Query<ChannelParam>,
) -> Result<Json<List<Product>>, ApiError> {
    let channel = caller.channel(channel.channel_id.as_deref())?;
    Ok(Json(List::new(state.store.products(&params.page()?, channel).await?)))
}

/// Read a product; with a channel, each variant carries its `channel_price`.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path), ChannelParam),
    responses((status = 200, body = Product), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_product(
    State(state): State<AppState>,
    caller: Allowed<CatalogRead>,
    Path(id): Path<String>,
    Query(channel): Query<ChannelParam>,
) -> Result<Json<Product>, ApiError> {
    let channel = caller.channel(channel.channel_id.as_deref())?;
    Ok(Json(state.store.product(&id, channel).await?))
}

/// Change a product with a JSON Merge Patch. `variants`, when given, is the whole new list:
/// variants named by `id` are kept and changed, ones without `id` are added, others removed.
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "catalog", request_body = ProductDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header)),
    responses((status = 200, body = Product), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_product(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Product>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.product(&id, None).await?;
    let draft = patched(&current.to_draft(), &patch)?;
    let version = asked.unwrap_or(current.version);
    Ok(Json(
        state
            .store
            .update_product(&id, draft, version)
            .await
            .map_err(|e| version_race(e, asked))?,
    ))
}

/// Publish a product in a sales channel (or withdraw it), with optional channel prices that
/// the channel's price policy must allow (422 `price_policy` otherwise). A variant priced in
/// another currency than the channel's needs a channel price (422 `price_required`). An
/// override the policy no longer allows (tightened since, or the base price moved) is not
/// charged: the channel sells at the base price until the listing is put right.
#[utoipa::path(put, path = "/api/v1/products/{id}/listings/{channel_id}", tag = "catalog", request_body = ListingDraft,
    params(("id" = String, Path), ("channel_id" = String, Path), ("If-Match" = Option<i64>, Header)),
    responses((status = 200, body = Listing), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_listing(
    State(state): State<AppState>,
    _: Secret<CatalogWrite>,
    Path((id, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(draft): Json<ListingDraft>,
) -> Result<Json<Listing>, ApiError> {
    let asked = if_match(&headers)?;
    Ok(Json(state.store.put_listing(&id, &channel_id, draft, asked).await?))
}

/// Read a product's listing in a channel.
#[utoipa::path(get, path = "/api/v1/products/{id}/listings/{channel_id}", tag = "catalog",
    params(("id" = String, Path), ("channel_id" = String, Path)), responses((status = 200, body = Listing)))]
pub async fn get_listing(
    State(state): State<AppState>,
    _: Secret<CatalogRead>,
    Path((id, channel_id)): Path<(String, String)>,
) -> Result<Json<Listing>, ApiError> {
    state.store.product(&id, None).await?;
    state.store.channel(&channel_id).await?;
    Ok(Json(state.store.listing(&id, &channel_id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParityParams {
    /// Only this product's channel prices.
    pub product_id: Option<String>,
}

/// Every channel price that differs from its variant's base price, with the deviation and
/// whether the channel's policy allows it now; by variant, then channel.
#[utoipa::path(get, path = "/api/v1/price-parity", tag = "catalog", params(ParityParams, ListParams),
    responses((status = 200, body = List<ParityRow>)))]
pub async fn price_parity(
    State(state): State<AppState>,
    _: Secret<CatalogRead>,
    Query(filter): Query<ParityParams>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<ParityRow>>, ApiError> {
    let page = params.page()?;
    Ok(Json(List::new(
        state.store.price_parity(filter.product_id.as_deref(), &page).await?,
    )))
}

//! Customers: profiles with identities, resolution by identity, merges, the timeline,
//! loyalty points, export and erasure.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use omnihub_domain::customers::{
    Customer, CustomerDraft, CustomerExport, Identity, IdentityKind, LoyaltyAdjustment, LoyaltyMovement,
    LoyaltyStanding, TimelineEntry,
};
use omnihub_store::{Holder, Resolution};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{if_match, patched, version_race};
use crate::AppState;
use crate::auth::{CustomersRead, CustomersWrite, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::query::Query;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list_customers).post(create_customer))
        .route("/customers/resolve", post(resolve_customer))
        .route(
            "/customers/{id}",
            get(get_customer).patch(patch_customer).delete(erase_customer),
        )
        .route("/customers/{id}/merge", post(merge_customer))
        .route("/customers/{id}/timeline", get(customer_timeline))
        .route("/customers/{id}/loyalty", get(customer_loyalty))
        .route("/customers/{id}/loyalty/adjustments", post(adjust_loyalty))
        .route("/customers/{id}/export", get(export_customer))
}

/// Create a customer. Identities are normalised (e-mail lower-cased, phone numbers and
/// WhatsApp ids to E.164 `phone`); one already held by another customer is 409.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = CustomerDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = Customer), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_customer(
    State(state): State<AppState>,
    _: Secret<CustomersWrite>,
    Json(draft): Json<CustomerDraft>,
) -> Result<Created<Customer>, ApiError> {
    Ok(Created(state.store.create_customer(draft).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerSearch {
    /// Only customers with an identity of this value (written any way: `0151 12345678`,
    /// `Jane@Example.com`) or whose name contains it.
    pub q: Option<String>,
}

/// List customers (merged and erased ones are left out).
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(ListParams, CustomerSearch),
    responses((status = 200, body = List<Customer>)))]
pub async fn list_customers(
    State(state): State<AppState>,
    _: Secret<CustomersRead>,
    Query(params): Query<ListParams>,
    Query(search): Query<CustomerSearch>,
) -> Result<Json<List<Customer>>, ApiError> {
    let page = params.page()?;
    Ok(Json(List::new(
        state.store.customers(&page, search.q.as_deref()).await?,
    )))
}

/// Read a customer. One merged into another answers with `merged_into`: follow it.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_customer(
    State(state): State<AppState>,
    _: Secret<CustomersRead>,
    Path(id): Path<String>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(state.store.customer(&id).await?))
}

/// Change a customer with a JSON Merge Patch. `identities`, `consents` and `tags`, when
/// given, are the whole new lists; a consent without `at` keeps its date unless its status
/// changed. A merged or erased customer cannot change (409).
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers", request_body = CustomerDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header, description = "The version the change is based on")),
    responses((status = 200, body = Customer), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_customer(
    State(state): State<AppState>,
    _: Secret<CustomersWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Customer>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.customer(&id).await?;
    let draft = patched(&current.to_draft(), &patch)?;
    let version = asked.unwrap_or(current.version);
    let updated = state.store.update_customer(&id, draft, version).await;
    Ok(Json(updated.map_err(|e| version_race(e, asked))?))
}

/// Erase a customer's personal data: name, identities, consents, tags and timeline go; the
/// id, loyalty points and spend stay so that order totals still add up. Erasing a customer
/// again is 409 `conflict`, as is erasing one merged into another (erase the survivor).
#[utoipa::path(delete, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 204, description = "Erased"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn erase_customer(
    State(state): State<AppState>,
    _: Secret<CustomersWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.erase_customer(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub identities: Vec<Identity>,
    /// Create a customer when no identity is known.
    #[serde(default)]
    pub create: bool,
    /// The name of a customer created now.
    #[serde(default)]
    pub name: Option<String>,
}

/// A customer holding some of the identities resolved.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolveCandidate {
    pub customer_id: String,
    /// The kinds of the identities given that this customer holds.
    pub identity_kinds: Vec<IdentityKind>,
}

/// 409 from resolve: the identities belong to several customers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AmbiguousCustomer {
    #[serde(flatten)]
    pub problem: Problem,
    pub candidates: Vec<ResolveCandidate>,
}

/// Find the customer behind any of the identities (200, with the identities it lacked
/// attached), create one when `create` is true (201), or 404. When the identities belong to
/// several customers nothing is attached: 409 lists them as `candidates` and a merge
/// suggestion is recorded for a person to decide — customers are never merged silently.
#[utoipa::path(post, path = "/api/v1/customers/resolve", tag = "customers", request_body = ResolveRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Customer), (status = 201, body = Customer),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = AmbiguousCustomer, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn resolve_customer(
    State(state): State<AppState>,
    _: Secret<CustomersWrite>,
    Json(request): Json<ResolveRequest>,
) -> Result<Response, ApiError> {
    let resolution = state
        .store
        .resolve_customer(&request.identities, request.name, request.create)
        .await?;
    Ok(match resolution {
        Resolution::Found(customer) => Json(customer).into_response(),
        Resolution::Created(customer) => Created(customer).into_response(),
        Resolution::Ambiguous(holders) => ambiguous(holders),
    })
}

fn ambiguous(holders: Vec<Holder>) -> Response {
    let body = AmbiguousCustomer {
        problem: ApiError::conflict(
            "the identities belong to different customers; a merge was suggested, see candidates",
        )
        .problem(),
        candidates: holders
            .into_iter()
            .map(|h| ResolveCandidate {
                customer_id: h.customer_id,
                identity_kinds: h.kinds,
            })
            .collect(),
    };
    let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The customer to absorb into the one in the path.
    pub customer_id: String,
}

/// Merge another customer into this one, in one transaction: identities, consents (this
/// customer's win per channel), loyalty points, the timeline, orders, carts and
/// conversations move over; the merge is recorded. The absorbed id then answers with
/// `merged_into`. Merging a customer into itself, or a merged or erased one, is 422.
#[utoipa::path(post, path = "/api/v1/customers/{id}/merge", tag = "customers", request_body = MergeRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Customer), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn merge_customer(
    State(state): State<AppState>,
    caller: Secret<CustomersWrite>,
    Path(id): Path<String>,
    Json(request): Json<MergeRequest>,
) -> Result<Json<Customer>, ApiError> {
    let by = caller.0.key_id();
    Ok(Json(state.store.merge_customers(&id, &request.customer_id, by).await?))
}

/// What happened with the customer on every channel, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/timeline", tag = "customers", params(("id" = String, Path), ListParams),
    responses((status = 200, body = List<TimelineEntry>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn customer_timeline(
    State(state): State<AppState>,
    _: Secret<CustomersRead>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<TimelineEntry>>, ApiError> {
    let page = params.page()?;
    Ok(Json(List::new(state.store.customer_timeline(&id, &page).await?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoyaltyAccount {
    pub customer_id: String,
    #[serde(flatten)]
    pub standing: LoyaltyStanding,
    /// The points ledger, newest first (`?limit=`, `?cursor=` page it); the balance is its sum.
    pub movements: List<LoyaltyMovement>,
}

/// The customer's points balance, tier and ledger.
#[utoipa::path(get, path = "/api/v1/customers/{id}/loyalty", tag = "customers", params(("id" = String, Path), ListParams),
    responses((status = 200, body = LoyaltyAccount), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn customer_loyalty(
    State(state): State<AppState>,
    _: Secret<CustomersRead>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<LoyaltyAccount>, ApiError> {
    let page = params.page()?;
    let standing = state.store.loyalty_standing(&id).await?;
    let movements = List::new(state.store.loyalty_movements(&id, &page).await?);
    Ok(Json(LoyaltyAccount {
        customer_id: id,
        standing,
        movements,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoyaltyChange {
    #[serde(flatten)]
    pub movement: LoyaltyMovement,
    /// The balance after this change.
    pub balance: i64,
}

/// Add or take points by hand. A balance never goes below 0: taking more is 422
/// `validation_failed` (`insufficient_points`) and changes nothing.
#[utoipa::path(post, path = "/api/v1/customers/{id}/loyalty/adjustments", tag = "customers", request_body = LoyaltyAdjustment,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = LoyaltyChange), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn adjust_loyalty(
    State(state): State<AppState>,
    _: Secret<CustomersWrite>,
    Path(id): Path<String>,
    Json(adjustment): Json<LoyaltyAdjustment>,
) -> Result<Created<LoyaltyChange>, ApiError> {
    let (movement, balance) = state.store.adjust_loyalty(&id, adjustment).await?;
    Ok(Created(LoyaltyChange { movement, balance }))
}

/// Everything held about the customer, as one JSON document: profile, identities,
/// consents, loyalty ledger, timeline, merges and merge suggestions.
#[utoipa::path(get, path = "/api/v1/customers/{id}/export", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = CustomerExport), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn export_customer(
    State(state): State<AppState>,
    _: Secret<CustomersRead>,
    Path(id): Path<String>,
) -> Result<Json<CustomerExport>, ApiError> {
    Ok(Json(state.store.export_customer(&id).await?))
}

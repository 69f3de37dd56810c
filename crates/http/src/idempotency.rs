//! `Idempotency-Key` on every POST: the same key and body within 24 h answers what the first
//! request answered, with `Idempotent-Replayed: true`, and changes nothing again.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnihub_domain::ErrorCode;
use omnihub_domain::access::Principal;
use omnihub_domain::network::ClientAddress;
use omnihub_store::Claim;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::problem::{ApiError, PROBLEM_JSON};

pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (Some(key), true) = (key, request.method() == Method::POST) else {
        return next.run(request).await;
    };
    if key.is_empty() || key.len() > 255 {
        return ApiError::invalid_field("Idempotency-Key", "invalid", "must be 1 to 255 characters").into_response();
    }
    let Some(principal) = request.extensions().get::<Principal>() else {
        return ApiError::unauthorized().into_response();
    };
    let principal = scope(principal, &request);
    match run_once(&state, &principal, &key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

/// Whose keys an `Idempotency-Key` is one of. A secret key is one system's; a publishable
/// key is in every shopper's hands, so its keys are told apart by the shopper's address too:
/// a shopper who sends another's key never gets the other's stored answer (a new cart's id).
fn scope(principal: &Principal, request: &Request) -> String {
    match principal.channel() {
        None => principal.key_id().to_owned(),
        Some(_) => {
            let client = request
                .extensions()
                .get::<ClientAddress>()
                .map(|client| client.counted_as())
                .unwrap_or_default();
            format!("{}@{client}", principal.key_id())
        }
    }
}

async fn run_once(
    state: &AppState,
    principal: &str,
    key: &str,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, state.config.body_limit)
        .await
        .map_err(|_| ApiError::payload_too_large(state.config.body_limit).into_response())?;
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();

    let claim = state
        .store
        .claim_idempotency_key(principal, key, &hash)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match claim {
        Claim::Replay { status, body } => Ok(replay(status, body)),
        Claim::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with another request body",
        )
        .into_response()),
        Claim::InFlight => {
            Err(ApiError::conflict("a request with this Idempotency-Key is still running").into_response())
        }
        Claim::Run => {
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            Ok(remember(state, principal, key, response).await)
        }
    }
}

/// Stores the answer for replays; a failure on our side frees the key for a retry instead.
async fn remember(state: &AppState, principal: &str, key: &str, response: Response) -> Response {
    let status = response.status();
    if status.is_server_error() {
        if let Err(error) = state.store.release_idempotency_key(principal, key).await {
            tracing::error!(%error, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    if let Err(error) = state
        .store
        .finish_idempotent(principal, key, status.as_u16(), &text)
        .await
    {
        tracing::error!(%error, "could not store an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

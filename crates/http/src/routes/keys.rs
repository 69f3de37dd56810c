//! API keys. They are made with `omnihub keys …` or in the admin app, where the token is shown
//! once; here a key is revoked.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::delete;

use crate::AppState;
use crate::auth::{Admin, Secret};
use crate::problem::{ApiError, Problem};

pub fn routes() -> Router<AppState> {
    Router::new().route("/keys/{id}", delete(revoke_key))
}

/// Revoke an API key: its token is refused from now on (401 `unauthorized`), on the server that
/// answered at once and on the others within 10 seconds. An unknown or already revoked key is
/// 404.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_key(
    State(state): State<AppState>,
    _: Secret<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_api_key(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

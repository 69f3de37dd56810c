//! The routes, one module per area of the API.

mod answers;
mod catalog;
mod conversations;
mod customers;
mod events;
mod hooks;
mod inventory;
mod keys;
mod ops;
mod orders;
mod webchat;
mod webhooks;

use axum::Router;
use axum::http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::json::merge_patch;
use crate::problem::ApiError;

pub use hooks::hooks;
pub use ops::{method_not_allowed, not_found, ops};
pub use webchat::routes as webchat;
pub(crate) use {
    answers::*, catalog::*, conversations::*, customers::*, events::*, hooks::*, inventory::*, keys::*, ops::*,
    orders::*, webchat::*, webhooks::*,
};

/// Every route under `/api/v1`.
pub fn api() -> Router<AppState> {
    Router::new()
        .merge(catalog::routes())
        .merge(customers::routes())
        .merge(inventory::routes())
        .merge(orders::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(keys::routes())
        .merge(conversations::routes())
        .merge(answers::routes())
}

/// The version a client expects, from `If-Match` (`3` or `"3"`); versions start at 1.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("if-match") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .filter(|version: &i64| *version >= 1)
        .map(Some)
        .ok_or_else(|| ApiError::invalid_field("If-Match", "invalid", "must be the resource's integer version"))
}

/// A draft with a JSON Merge Patch applied, checked like a new body.
fn patched<D: Serialize + DeserializeOwned>(current: &D, patch: &serde_json::Value) -> Result<D, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::invalid_field("", "invalid", "a patch is a JSON object"));
    }
    let mut doc = serde_json::to_value(current).map_err(|_| ApiError::conflict("the resource cannot be patched"))?;
    merge_patch(&mut doc, patch);
    crate::json::from_value(doc)
}

/// A lost race without `If-Match` is a conflict to retry, not a stale precondition.
fn version_race(error: omnihub_store::Error, asked: Option<i64>) -> ApiError {
    match (error, asked) {
        (omnihub_store::Error::VersionMismatch { .. }, None) => {
            ApiError::conflict("the resource changed while this change was made; retry")
        }
        (error, _) => error.into(),
    }
}

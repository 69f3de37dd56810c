//! Cursor pagination: `?limit=` (default 50, max 500) and an opaque `?cursor=`; answers
//! `{"data": [...], "next_cursor": "..." | null}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use omnihub_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::ApiError;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many items (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                "out_of_range",
                "must be between 1 and 500",
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                decode(cursor)
                    .ok_or_else(|| ApiError::invalid_field("cursor", "invalid", "is not a cursor this server gave"))?,
            ),
        };
        Ok(Page { after, limit })
    }
}

fn decode(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    pub fn new((data, next): (Vec<T>, Option<String>)) -> Self {
        List {
            data,
            next_cursor: next.map(|id| URL_SAFE_NO_PAD.encode(id)),
        }
    }
}

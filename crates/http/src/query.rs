//! Query strings, refused as precisely as bodies: a parameter of the wrong type is 422
//! `validation_failed` naming it (axum's own extractor answers plain text).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The request's query string, deserialised into `T`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(params).map(Query).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { String::new() } else { field };
            ApiError::invalid_field(&field, "invalid", error.into_inner().to_string())
        })
    }
}

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
        refuse_control(query)?;
        let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(params).map(Query).map_err(|error| {
            let field = error.path().to_string();
            let field = if field == "." { String::new() } else { field };
            ApiError::invalid_field(&field, "invalid", error.into_inner().to_string())
        })
    }
}

/// Refuses a parameter holding a control character (`?q=%00`): ids, codes, cursors and
/// searches are single lines, and a NUL cannot even be looked up on PostgreSQL.
fn refuse_control(query: &str) -> Result<(), ApiError> {
    let holds_control = |text: &str| text.chars().any(char::is_control);
    match form_urlencoded::parse(query.as_bytes()).find(|(key, value)| holds_control(key) || holds_control(value)) {
        Some((key, _)) => Err(ApiError::invalid_field(
            &key.replace(char::is_control, "\u{fffd}"),
            "invalid_character",
            "must not contain control characters",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_parameters_are_refused_by_name() {
        assert!(refuse_control("q=caf%C3%A9&limit=5").is_ok());
        let nul = refuse_control("limit=5&q=%00").unwrap_err();
        assert_eq!(
            (nul.code.as_str(), nul.errors[0].field.as_str()),
            ("validation_failed", "q")
        );
        assert_eq!(refuse_control("sku=A%0AB").unwrap_err().errors[0].field, "sku");
        assert_eq!(refuse_control("a%00=1").unwrap_err().errors[0].field, "a\u{fffd}");
    }
}

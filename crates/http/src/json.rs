//! JSON bodies in and out, with precise errors: syntax errors are 400 `malformed_json`, a
//! body of the wrong shape is 422 `validation_failed` naming the field, too large is 413.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use omnihub_domain::ErrorCode;
use omnihub_domain::validation::has_nul;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON request body, or a JSON answer.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse(&bytes).map(Json)
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            rejection.body_text(),
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, rejection.body_text())
    }
}

/// Parses a JSON body, naming the field that has the wrong type or is missing. Only a body
/// that is not JSON at all is `malformed_json`; valid JSON of the wrong shape is
/// `validation_failed`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(|e| malformed(&e))?;
            Ok(value)
        }
        Err(error) if error.inner().is_data() => Err(invalid(error)),
        Err(error) => {
            // serde_json reports some wrong types as syntax errors (an enum given a number:
            // "expected value"); read from the parsed document, they are named as the data
            // errors they are.
            match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(document) => from_value(document),
                Err(_) => Err(malformed(error.inner())),
            }
        }
    }
}

/// Refuses a body with a NUL (U+0000) in any string, naming where: no text of the hub may
/// hold one (PostgreSQL cannot store it). JSON can only carry it escaped, so bodies without
/// `\u0000` are not looked into.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    const ESCAPED_NUL: &[u8] = br"\u0000";
    if !bytes.windows(ESCAPED_NUL.len()).any(|w| w == ESCAPED_NUL) {
        return Ok(());
    }
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match nul_at(&document, String::new()) {
        Some(field) => Err(ApiError::invalid_field(
            &field,
            "invalid_character",
            "must not contain the NUL character (U+0000)",
        )),
        None => Ok(()),
    }
}

/// Where in `value` (at `path`) a string or a key holds a NUL, as a field path
/// (`variants[0].sku`).
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) => has_nul(text).then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if has_nul(key) {
                Some(join(&key.replace('\0', "\u{fffd}")))
            } else {
                nul_at(item, join(key))
            }
        }),
        _ => None,
    }
}

/// Reads a parsed JSON document (a body, a patched resource) as `T`, naming the field that has
/// the wrong type or is missing.
pub fn from_value<T: DeserializeOwned>(document: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(document).map_err(invalid)
}

fn invalid(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let field = if path == "." { String::new() } else { path };
    let message = error.into_inner().to_string();
    let message = message.split(" at line ").next().unwrap_or_default().to_owned();
    ApiError::invalid_field(&field, "invalid", message)
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::MalformedJson,
        format!("the body is not valid JSON: {error}"),
    )
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(error) => {
                tracing::error!(%error, "could not serialise an answer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// `201 Created` with a JSON body.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

/// Applies a JSON Merge Patch (RFC 7396): objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(fields) = target {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        merge_patch(&mut doc, &json!({"list": [1, 2]}));
        assert_eq!(doc["list"], json!([1, 2]));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
        count: i64,
    }

    #[test]
    fn bad_bodies_get_their_own_codes() {
        assert_eq!(parse::<Thing>(b"{\"name\": ").unwrap_err().code, "malformed_json");
        let wrong = parse::<Thing>(br#"{"name": "x", "count": "many"}"#).unwrap_err();
        assert_eq!(wrong.code, "validation_failed");
        assert_eq!(wrong.errors[0].field, "count");
        let missing = parse::<Thing>(br#"{"name": "x"}"#).unwrap_err();
        assert_eq!(missing.code, "validation_failed");
        assert!(missing.errors[0].message.contains("count"), "{:?}", missing.errors);
        assert_eq!(
            parse::<Thing>(br#"{"name": "x", "count": 1} x"#).unwrap_err().code,
            "malformed_json"
        );
        let wrong_enum = parse::<Tagged>(br#"{"status": 5}"#).unwrap_err();
        assert_eq!(wrong_enum.code, "validation_failed");
        assert_eq!(wrong_enum.errors[0].field, "status");
        assert!(
            !wrong_enum.errors[0].message.contains("line"),
            "{:?}",
            wrong_enum.errors
        );
        assert_eq!(parse::<Tagged>(br#"{"status": 5"#).unwrap_err().code, "malformed_json");
    }

    #[test]
    fn a_nul_anywhere_is_refused_with_its_field() {
        let nul = parse::<serde_json::Value>(br#"{"variants": [{"sku": "A"}, {"sku": "B\u0000"}]}"#).unwrap_err();
        assert_eq!(
            (nul.code.as_str(), nul.errors[0].field.as_str()),
            ("validation_failed", "variants[1].sku")
        );
        assert_eq!(nul.errors[0].code, "invalid_character");
        let in_key = parse::<serde_json::Value>(br#"{"attributes": {"k\u0000": 1}}"#).unwrap_err();
        assert_eq!(in_key.errors[0].field, "attributes.k\u{fffd}");
        let top = parse::<String>(br#""\u0000""#).unwrap_err();
        assert_eq!(top.errors[0].field, "");
        let escaped_backslash = parse::<serde_json::Value>(br#"{"path": "C:\\u0000"}"#).unwrap();
        assert_eq!(escaped_backslash["path"], "C:\\u0000");
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Tagged {
        status: Status,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Open,
    }
}

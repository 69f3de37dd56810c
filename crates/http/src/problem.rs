//! Errors as `application/problem+json` (RFC 9457) with a stable machine `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omnihub_domain::{ErrorCode, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error answer: everything a handler can fail with ends up here, once.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a valid API key is needed: Authorization: Bearer <key>",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, detail)
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        ApiError {
            errors,
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                "the request breaks the rules; see errors",
            )
        }
    }

    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Self {
        ApiError::invalid(vec![FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }])
    }

    /// A provider webhook (or a custom channel's call) whose signature or secret does not
    /// prove it comes from whom it claims.
    pub fn invalid_signature() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidSignature,
            "the signature is missing or does not match the body",
        )
    }

    /// A free-form reply outside the channel's reply window.
    pub fn window_closed(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WindowClosed, detail)
    }

    pub fn rate_limited(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, detail)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("https://omnihub.dev/problems/{}", self.code.as_str().replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            errors: self.errors.clone(),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl From<omnihub_store::Error> for ApiError {
    fn from(error: omnihub_store::Error) -> Self {
        use omnihub_store::Error as E;
        match error {
            E::NotFound(what) => ApiError::not_found(what),
            E::Conflict(detail) => ApiError::conflict(detail),
            E::StockMoved => ApiError::conflict("the stock changed too fast to be held; retry"),
            E::VersionMismatch { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::VersionMismatch,
                format!("the resource has changed; its current version is {current}"),
            ),
            E::Invalid(invalid) => ApiError::invalid(invalid.0),
            E::WindowClosed(detail) => ApiError::window_closed(detail),
            E::RateLimited(detail) => ApiError::rate_limited(detail),
            E::InsufficientStock(errors) => ApiError {
                errors,
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::InsufficientStock,
                    "not enough stock for some lines; nothing was held",
                )
            },
            E::Unavailable(_) => {
                tracing::error!(error = %error, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the server cannot save changes right now; the request may be retried",
                )
            }
            E::Corrupt(_) | E::Sqlite(_) | E::Postgres(_) => {
                tracing::error!(error = %error, "storage failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "the server failed; the request may be retried",
                )
            }
        }
    }
}

impl From<omnihub_domain::Invalid> for ApiError {
    fn from(invalid: omnihub_domain::Invalid) -> Self {
        ApiError::invalid(invalid.0)
    }
}

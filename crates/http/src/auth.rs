//! Bearer-token authentication and scope checks.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnihub_domain::access::Principal;

use crate::AppState;
use crate::problem::ApiError;

/// Every API route needs a live key; the principal is attached to the request.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError::unauthorized().into_response();
    };
    match state.store.authenticate(token).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized().into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The principal a request was made by.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl Caller {
    /// The key must carry `scope` (publishable keys carry a fixed few).
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this key lacks the scope {scope}")))
        }
    }

    /// Only a secret key with `scope`: publishable keys never manage the hub.
    pub fn require_secret(&self, scope: &str) -> Result<(), ApiError> {
        if self.0.channel().is_some() {
            return Err(ApiError::forbidden(
                "a publishable key cannot do this; use a secret key",
            ));
        }
        self.require(scope)
    }

    /// Refuses a publishable key what only the shop's backend, which knows who is signed in,
    /// may do: naming the customer of a cart, spending a customer's loyalty points.
    pub fn forbid_publishable(&self, what: &str) -> Result<(), ApiError> {
        if self.0.channel().is_some() {
            return Err(ApiError::forbidden(format!(
                "a publishable key cannot {what}; use a secret key"
            )));
        }
        Ok(())
    }

    /// The channel a request acts in: a publishable key's own channel, which a request may
    /// name but never change.
    pub fn channel<'a>(&'a self, asked: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
        match (self.0.channel(), asked) {
            (Some(own), Some(asked)) if own != asked => Err(ApiError::forbidden(
                "a publishable key only acts in its own sales channel",
            )),
            (Some(own), _) => Ok(Some(own)),
            (None, asked) => Ok(asked),
        }
    }
}

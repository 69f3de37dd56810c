//! Bearer-token authentication and scope checks.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnihub_domain::access::{Principal, Scope};

use crate::AppState;
use crate::cors::{self, sent_origin};
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
            // A page of another site may use only a publishable key that names its site.
            let origin = sent_origin(request.headers());
            let cross_site = origin.filter(|_| principal.channel().is_some());
            if let Some(origin) = &cross_site
                && !principal.allows_origin(origin)
            {
                return cors::refused(origin);
            }
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            if let Some(origin) = &cross_site {
                cors::allow(&mut response, origin);
            }
            response
        }
        Ok(None) => ApiError::unauthorized().into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// A scope a route needs. Routes name it in their extractors ([`Secret`], [`Allowed`]), so it
/// is checked as the key is read: before the body, so that a key without it learns nothing of
/// the route (403, however malformed its body).
pub trait Needs {
    const SCOPE: Scope;
}

macro_rules! needs {
    ($($scope:ident),* $(,)?) => {
        $(
            #[doc = concat!("Needs [`Scope::", stringify!($scope), "`].")]
            pub struct $scope;

            impl Needs for $scope {
                const SCOPE: Scope = Scope::$scope;
            }
        )*
    };
}

needs!(
    CatalogRead,
    CatalogWrite,
    InventoryRead,
    InventoryWrite,
    OrdersRead,
    OrdersWrite,
    CustomersRead,
    CustomersWrite,
    ConversationsRead,
    ConversationsWrite,
    EventsRead,
    CartsWrite,
    Admin,
);

/// The caller, holding a secret key with the scope `S` (publishable keys never manage the hub).
pub struct Secret<S>(Caller, PhantomData<S>);

/// The caller, holding any key, secret or publishable, with the scope `S`.
pub struct Allowed<S>(Caller, PhantomData<S>);

impl<S: Needs, St: Send + Sync> FromRequestParts<St> for Secret<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_secret(S::SCOPE)?;
        Ok(Secret(caller, PhantomData))
    }
}

impl<S: Needs, St: Send + Sync> FromRequestParts<St> for Allowed<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(S::SCOPE)?;
        Ok(Allowed(caller, PhantomData))
    }
}

impl<S> std::ops::Deref for Secret<S> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S> std::ops::Deref for Allowed<S> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
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
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this key lacks the scope {scope}")))
        }
    }

    /// Only a secret key with `scope`: publishable keys never manage the hub.
    pub fn require_secret(&self, scope: Scope) -> Result<(), ApiError> {
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

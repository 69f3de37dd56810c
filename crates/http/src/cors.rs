//! Browsers on other sites (CORS). Only the pages of the sites a publishable key names may use
//! it: their browsers are told so (`Access-Control-Allow-Origin`), pages of any other site are
//! refused (403). Secret keys are never answered for a browser on another site, so no page can
//! use one. The web chat takes the pages of every site some publishable key names.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnihub_domain::access::{origin, publishable_route};

use crate::AppState;
use crate::problem::ApiError;

/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The `Origin` a browser sent, in its canonical form; `None` without one. An origin that is
/// not a site (`null`, from a sandboxed frame or a file) is kept as sent, to be refused.
pub fn sent_origin(headers: &HeaderMap) -> Option<String> {
    let sent = headers.get(header::ORIGIN)?.to_str().unwrap_or("null");
    Some(origin(sent).unwrap_or_else(|| sent.to_owned()))
}

/// Tells the browser that the page of `origin` may read the answer, with the headers of ours
/// a page may want (the request id to report, whether an idempotent retry was replayed).
pub fn allow(response: &mut Response, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, idempotent-replayed"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

pub fn refused(origin: &str) -> Response {
    ApiError::forbidden(format!("pages of {origin} may not call this")).into_response()
}

/// The method a browser's preflight asks for, when the request is one.
fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method != Method::OPTIONS {
        return None;
    }
    let asked = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    asked.to_str().ok().map(str::to_owned)
}

fn preflight_answer(origin: &str, methods: &str, headers: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    allow(&mut response, origin);
    let fixed = [
        (header::ACCESS_CONTROL_ALLOW_METHODS, methods),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, headers),
        (header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE),
    ];
    for (name, value) in fixed {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Whether the pages of `origin` may use some live publishable key.
async fn origin_has_keys(state: &AppState, origin: &str) -> Result<bool, Response> {
    state
        .store
        .origin_has_keys(origin)
        .await
        .map_err(|error| ApiError::from(error).into_response())
}

/// Answers a browser's preflight (an `OPTIONS` no route takes, asking for a method), `None`
/// for any other request. The API's preflight carries no key: yes for a route a publishable
/// key may use, from the pages of a site some publishable key names (the request that follows
/// is checked against its own key's sites); the web chat's, from the pages the chat answers.
/// Anything else is refused (403).
pub async fn preflight(state: &AppState, method: &Method, headers: &HeaderMap, path: &str) -> Option<Response> {
    let method = preflight_method(method, headers)?;
    let origin = sent_origin(headers)?;
    if path.starts_with("/webchat/") {
        return Some(match chat_allows(state, &origin).await {
            Ok(true) => preflight_answer(&origin, "GET, POST", "authorization, content-type, last-event-id"),
            Ok(false) => refused(&origin),
            Err(response) => response,
        });
    }
    let under_api = path
        .strip_prefix("/api/v1")
        .filter(|rest| publishable_route(&method, rest));
    if under_api.is_none() {
        return Some(refused(&origin));
    }
    Some(match origin_has_keys(state, &origin).await {
        Ok(true) => preflight_answer(
            &origin,
            &method,
            "authorization, content-type, idempotency-key, if-match",
        ),
        Ok(false) => refused(&origin),
        Err(response) => response,
    })
}

/// Whether the web chat answers the pages of `origin`: the hub's own, and those of every site
/// some publishable key names.
async fn chat_allows(state: &AppState, origin: &str) -> Result<bool, Response> {
    let own = omnihub_domain::access::origin(&state.config.public_url).is_some_and(|own| own == origin);
    Ok(own || origin_has_keys(state, origin).await?)
}

/// The web chat, called by the widget on the shop's pages: requests from pages it answers
/// (see [`chat_allows`]) are let read their answers, those from any other site are refused
/// (403), so that no other site opens chats from its visitors' browsers.
pub async fn webchat(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(origin) = sent_origin(request.headers()) else {
        return next.run(request).await;
    };
    match chat_allows(&state, &origin).await {
        Ok(true) => {
            let mut response = next.run(request).await;
            allow(&mut response, &origin);
            response
        }
        Ok(false) => refused(&origin),
        Err(response) => response,
    }
}

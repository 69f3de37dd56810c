//! What every request meets first, API and admin alike: addresses that cannot name anything
//! are turned away before any route reads them.

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnihub_domain::network::{ClientAddress, client_address};
use percent_encoding::percent_decode_str;

use crate::AppState;
use crate::problem::ApiError;

/// Tells every handler which client a request comes from ([`ClientAddress`]), as
/// [`client_address`] decides from the socket's peer, the trusted proxies and what they
/// forward: every limit counts under it.
pub async fn identify_client(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer {
        let headers = request.headers();
        let (forwarded_for, forwarded) = (values(headers, "x-forwarded-for"), values(headers, "forwarded"));
        let client = client_address(peer, &forwarded_for, &forwarded, &state.config.trusted_proxies);
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// A path holding a control character once decoded (`/products/prd_%00`) names no resource
/// (no id, SKU or page holds one): 404, before a database is asked for it.
pub async fn refuse_control_paths(request: Request, next: Next) -> Response {
    if decodes_to_control(request.uri().path()) {
        return ApiError::not_found("resource").into_response();
    }
    next.run(request).await
}

fn decodes_to_control(path: &str) -> bool {
    path.contains('%')
        && percent_decode_str(path)
            .decode_utf8_lossy()
            .chars()
            .any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decoding_to_control_characters_are_found() {
        assert!(decodes_to_control("/api/v1/products/prd_%00"));
        assert!(decodes_to_control("/admin/orders/%0a"));
        assert!(decodes_to_control("/x/%C2%85"));
        assert!(!decodes_to_control("/api/v1/orders/%231001"));
        assert!(!decodes_to_control("/api/v1/products/caf%C3%A9"));
    }
}

//! The stylesheet and the script, compiled into the binary: no CDN, nothing to install, and
//! the app works on a store's network without internet.
//!
//! Each is linked with a hash of its content (`admin.css?v=3f2a…`) and served with a year-long
//! cache: browsers keep it, and a new version of the binary is a new address.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 2] = [
    Asset {
        name: "admin.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/admin.css"),
    },
    Asset {
        name: "admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/admin.js"),
    },
];

/// The first hex digits of each asset's SHA-256, worked out once.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| hex::encode(&Sha256::digest(asset.body.as_bytes())[..6]))
        .collect()
});

/// The address of an asset, with its version.
pub fn url(name: &str) -> String {
    let version = ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .and_then(|i| VERSIONS.get(i))
        .map_or("", String::as_str);
    format!("/admin/assets/{name}?v={version}")
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

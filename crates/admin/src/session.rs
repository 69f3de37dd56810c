//! Signing in and out, the session cookie, the signed-in person of each request, and the
//! CSRF check of every form.
//!
//! The session cookie is `HttpOnly` (no script reads it), `SameSite=Lax` (other sites' forms
//! do not carry it), scoped to `/admin`, and `Secure` behind HTTPS. Each session has its own
//! CSRF token that every POST must carry back, as the form field `_csrf` or the header
//! `X-CSRF-Token`. The sign-in form, which has no session yet, uses a double-submit cookie.

use askama::Template;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use omnihub_domain::network::ClientAddress;
use omnihub_domain::users::{Access, Area, LOGIN_WINDOW_SECONDS, Role, SESSION_SECONDS};
use omnihub_store::{LogIn, User};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;

use crate::page::{PageError, render_with};
use crate::{Admin, assets, page};

const SESSION_COOKIE: &str = "omnihub_session";
const LOGIN_COOKIE: &str = "omnihub_login";
/// Admin forms are small; anything larger is not one of ours.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The person signed in, attached to every request behind the session check.
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: User,
    pub csrf: String,
    /// The name of the store of store staff.
    pub store_name: Option<String>,
}

impl Staff {
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Refuses unless the person's role reaches `area` this far.
    pub fn require(&self, area: Area, access: Access) -> Result<(), PageError> {
        let allowed = match access {
            Access::Nothing => true,
            Access::Read => self.role().may_see(area),
            Access::Write => self.role().may_change(area),
        };
        if allowed { Ok(()) } else { Err(PageError::Forbidden) }
    }

    pub fn may_change(&self, area: Area) -> bool {
        self.role().may_change(area)
    }

    /// The store a store-staff account is bound to.
    pub fn store(&self) -> Option<&str> {
        self.user.location_id.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Staff>().cloned().ok_or(PageError::Forbidden)
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn set_cookie(admin: &Admin, name: &str, value: &str, path: &str, max_age: i64, same_site: &str) -> HeaderValue {
    let secure = if admin.secure_cookies { "; Secure" } else { "" };
    let text = format!("{name}={value}; HttpOnly; SameSite={same_site}; Path={path}; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Every page behind it needs a live session; every POST behind it needs the session's CSRF
/// token.
pub async fn require_session(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let Some(token) = cookie(request.headers(), SESSION_COOKIE) else {
        return to_login(&request);
    };
    let signed_in = match admin.store.signed_in(&token).await {
        Ok(Some(signed_in)) => signed_in,
        Ok(None) => return to_login(&request),
        Err(error) => return PageError::from(error).into_response(),
    };
    let store_name = match &signed_in.user.location_id {
        Some(location) => admin.store.location(location).await.ok().map(|l| l.draft.name),
        None => None,
    };
    let staff = Staff {
        user: signed_in.user,
        csrf: signed_in.csrf_token,
        store_name,
    };
    let mut request = if request.method() == Method::POST {
        match checked_form(request, &staff.csrf).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    request.extensions_mut().insert(staff);
    let mut response = next.run(request).await;
    // Pages about customers and orders never linger in shared caches or the back button.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn to_login(request: &Request) -> Response {
    if request.method() == Method::GET {
        let next = request.uri().path_and_query().map_or("/admin", |p| p.as_str());
        let query = query_pair("next", next);
        return Redirect::to(&format!("/admin/login?{query}")).into_response();
    }
    Redirect::to("/admin/login").into_response()
}

fn query_pair(key: &str, value: &str) -> String {
    serde_urlencoded::to_string([(key, value)]).unwrap_or_default()
}

/// Reads the form body, checks its CSRF token and hands the request on with the body intact.
async fn checked_form(request: Request, expected: &str) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let forbidden = || PageError::Forbidden.into_response();
    let bytes = to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fields = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).unwrap_or_default();
    let from_form = fields.iter().find(|(k, _)| k == "_csrf").map(|(_, v)| v.clone());
    match from_header.or(from_form) {
        Some(token) if same_secret(&token, expected) => match page::holding_nul(&fields) {
            Some(field) => Err(PageError::BadForm(field).into_response()),
            None => Ok(Request::from_parts(parts, Body::from(bytes))),
        },
        _ => {
            tracing::info!(
                path = parts.uri.path(),
                "an admin form without a valid CSRF token was refused"
            );
            Err(forbidden())
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    css: String,
    csrf: String,
    next: String,
    email: String,
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only pages of the admin app are followed after signing in: a path of this site under
/// `/admin` that no browser reads as another site's (`//evil.example`, `/\\evil.example`) and
/// that fits in a `Location` header (no control characters). Anything else leads home.
fn safe_next(next: Option<&str>) -> Option<String> {
    let under_admin = |n: &str| n == "/admin" || n.starts_with("/admin/") || n.starts_with("/admin?");
    next.filter(|n| under_admin(n) && !n.contains("//") && !n.contains('\\'))
        .filter(|n| n.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// The sign-in page. Its `next` comes from wherever a link pointed, so an address it cannot
/// read or follow is dropped rather than refused.
pub async fn login_page(State(admin): State<Admin>, uri: Uri) -> Response {
    let query: LoginQuery = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let csrf = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let page = LoginPage {
        css: assets::url("admin.css"),
        csrf: csrf.clone(),
        next: safe_next(query.next.as_deref()).unwrap_or_default(),
        email: String::new(),
        message: None,
    };
    let mut response = render_with(StatusCode::OK, &page);
    let cookie = set_cookie(&admin, LOGIN_COOKIE, &csrf, "/admin/login", 3600, "Strict");
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

pub async fn log_in(
    State(admin): State<Admin>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddress>>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, &expected) {
        return Ok(login_again(
            &form,
            StatusCode::FORBIDDEN,
            "The sign-in form expired. Please try again.".into(),
        ));
    }
    let from = client.map_or_else(|| "unknown".to_owned(), |Extension(client)| client.counted_as());
    match admin.store.log_in(&form.email, &form.password, &from).await? {
        LogIn::Welcome(session) => {
            let to = safe_next(Some(&form.next)).unwrap_or_else(|| page::path_of(session.user.role.home()).to_owned());
            let mut response = Redirect::to(&to).into_response();
            let cookie = set_cookie(&admin, SESSION_COOKIE, &session.token, "/admin", SESSION_SECONDS, "Lax");
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            tracing::info!(user_id = session.user.id, "signed in to the admin app");
            Ok(response)
        }
        LogIn::Refused => Ok(login_again(
            &form,
            StatusCode::UNAUTHORIZED,
            "The e-mail address or the password is wrong.".into(),
        )),
        LogIn::Throttled { retry_after_seconds } => {
            let minutes = (retry_after_seconds + 59) / 60;
            let message = format!(
                "Too many wrong passwords for this address. For your safety, signing in is paused: try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut response = login_again(&form, StatusCode::TOO_MANY_REQUESTS, message);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds.clamp(1, LOGIN_WINDOW_SECONDS)),
            );
            Ok(response)
        }
    }
}

/// The sign-in form again with a message; the address stays filled in, the password not.
fn login_again(form: &LoginForm, status: StatusCode, message: String) -> Response {
    let csrf = form.csrf.clone();
    let page = LoginPage {
        css: assets::url("admin.css"),
        csrf,
        next: safe_next(Some(&form.next)).unwrap_or_default(),
        email: form.email.clone(),
        message: Some(message),
    };
    render_with(status, &page)
}

pub async fn log_out(State(admin): State<Admin>, headers: HeaderMap) -> Result<Response, PageError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        admin.store.log_out(&token).await?;
    }
    let mut response = Redirect::to("/admin/login").into_response();
    let cleared = set_cookie(&admin, SESSION_COOKIE, "", "/admin", 0, "Lax");
    response.headers_mut().insert(header::SET_COOKIE, cleared);
    Ok(response)
}

/// `/admin`: where the person's day starts.
pub async fn home(staff: Staff) -> Redirect {
    Redirect::to(page::path_of(staff.role().home()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_pages_are_followed_after_signing_in() {
        assert_eq!(
            safe_next(Some("/admin/orders?status=open")).as_deref(),
            Some("/admin/orders?status=open")
        );
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/admin//evil.example")), None);
        assert_eq!(safe_next(Some("/api/v1/orders")), None);
        assert_eq!(safe_next(Some("/admin")).as_deref(), Some("/admin"));
        for hostile in [
            "/admin\r\nSet-Cookie: x=1",
            "/admin/orders\u{0}",
            "/admin/\\evil.example",
            "/admin.evil.example",
            "/administrator",
            "/admin/ x",
            "/admin/é",
        ] {
            assert_eq!(safe_next(Some(hostile)), None, "{hostile:?}");
        }
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; omnihub_session=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}

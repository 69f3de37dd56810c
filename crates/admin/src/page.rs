//! What every page shares: the layout with the navigation a role may use, rendering, error
//! pages, and the feedback of a form that did not go through.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use omnihub_domain::FieldError;
use omnihub_domain::users::Area;
use omnihub_domain::validation::has_nul;
use serde::de::DeserializeOwned;

use crate::assets;
use crate::session::Staff;

/// One entry of the main navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The areas in the navigation, in the order people use them.
const NAVIGATION: [(Area, &str, &str); 8] = [
    (Area::Dashboard, "/admin/dashboard", "Dashboard"),
    (Area::Inbox, "/admin/inbox", "Inbox"),
    (Area::Orders, "/admin/orders", "Orders"),
    (Area::PickupDesk, "/admin/desk", "Pick-up desk"),
    (Area::Inventory, "/admin/inventory", "Inventory"),
    (Area::Catalog, "/admin/catalog", "Catalog"),
    (Area::Customers, "/admin/customers", "Customers"),
    (Area::Settings, "/admin/settings", "Settings"),
];

/// The page where an area starts.
pub fn path_of(area: Area) -> &'static str {
    NAVIGATION
        .iter()
        .find(|(a, _, _)| *a == area)
        .map_or("/admin/dashboard", |(_, path, _)| path)
}

/// The frame of every signed-in page.
pub struct Layout {
    pub title: String,
    pub user_name: String,
    pub role: &'static str,
    pub store: Option<String>,
    pub nav: Vec<NavItem>,
    pub csrf: String,
    pub css: String,
    pub js: String,
    /// Which live signal refreshes this page (`orders`, `stock`), if any.
    pub live: Option<&'static str>,
    /// Where the page is read again when it refreshes, when not its own address (a page
    /// drawn in answer to a form).
    pub live_url: Option<String>,
    pub notice: Option<&'static str>,
}

impl Layout {
    pub fn new(staff: &Staff, area: Area, title: impl Into<String>) -> Layout {
        let role = staff.user.role;
        Layout {
            title: title.into(),
            user_name: staff.user.name.clone(),
            role: role.label(),
            store: staff.store_name.clone(),
            nav: NAVIGATION
                .iter()
                .filter(|(a, _, _)| role.may_see(*a))
                .map(|(a, href, label)| NavItem {
                    href,
                    label,
                    current: *a == area,
                })
                .collect(),
            csrf: staff.csrf.clone(),
            css: assets::url("admin.css"),
            js: assets::url("admin.js"),
            live: None,
            live_url: None,
            notice: None,
        }
    }

    pub fn live(self, signal: &'static str) -> Layout {
        Layout {
            live: Some(signal),
            ..self
        }
    }

    pub fn live_from(self, url: String) -> Layout {
        Layout {
            live_url: Some(url),
            ..self
        }
    }

    /// Shows the confirmation of the action that led here (`?done=…`).
    pub fn done(self, code: Option<&str>) -> Layout {
        Layout {
            notice: code.and_then(notice),
            ..self
        }
    }
}

/// Confirmations after an action, by code: fixed texts, so nothing typed is echoed back.
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "adjusted" => "Stock adjusted.",
        "transferred" => "Stock transferred.",
        "fulfilment" => "Fulfilment created.",
        "shipped" => "Marked as shipped.",
        "ready" => "Marked as ready for pick-up.",
        "collected" => "Handed over to the customer.",
        "delivered" => "Marked as delivered.",
        "cancelled" => "Order cancelled.",
        "paid" => "Order marked paid.",
        "returned" => "Return taken.",
        "merged" => "Customers merged.",
        "user" => "Account created.",
        "deactivated" => "Account deactivated.",
        "channel" => "Sales channel saved.",
        "location" => "Location saved.",
        "inbox" => "Inbox connected. Register its webhook URL with the provider.",
        "revoked" => "API key revoked. It no longer works.",
        "webhook" => "Webhook endpoint saved.",
        "webhook_deleted" => "Webhook endpoint deleted.",
        "password" => "Password set. The person was signed out everywhere.",
        "replied" => "Reply sent.",
        "reply_failed" => "The channel did not take the reply: it is marked failed in the thread.",
        "noted" => "Note added.",
        "assigned" => "Assignment saved.",
        "resolved" => "Conversation resolved.",
        "reopened" => "Conversation reopened.",
        "pending" => "Conversation marked pending.",
        _ => return None,
    })
}

/// A rendered page, or a plain error when the template itself fails (a bug).
pub fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

pub fn render_with(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "an admin page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page failed to render").into_response()
        }
    }
}

/// After an action: back to `to` with a confirmation; a reload does not repeat the action.
pub fn done(to: &str, code: &str) -> Response {
    let separator = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{separator}done={code}")).into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    css: String,
    title: &'static str,
    detail: String,
}

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum PageError {
    /// The person's role does not reach here.
    Forbidden,
    NotFound(&'static str),
    /// The page's address carries a parameter it cannot read (edited by hand, say).
    BadAddress(String),
    /// A form field holds what no field may hold (a NUL), which no form of ours sends.
    BadForm(String),
    Store(omnihub_store::Error),
}

impl From<omnihub_store::Error> for PageError {
    fn from(error: omnihub_store::Error) -> Self {
        match error {
            omnihub_store::Error::NotFound(what) => PageError::NotFound(what),
            error => PageError::Store(error),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not for your role",
                "Your role does not give access to this page or action. Ask the owner if you need it.".to_owned(),
            ),
            PageError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", format!("The {what} was not found.")),
            PageError::BadAddress(why) => (
                StatusCode::BAD_REQUEST,
                "This address is not right",
                format!(
                    "The page cannot read its address ({why}). Go back to the admin and open the page from its menu."
                ),
            ),
            PageError::BadForm(field) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "This form cannot be kept",
                format!(
                    "The field {field} holds a character that cannot be kept (U+0000). Go back, retype it and send the form again."
                ),
            ),
            PageError::Store(omnihub_store::Error::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The server cannot save changes right now. Please try again in a moment.".to_owned(),
            ),
            PageError::Store(error) => {
                tracing::error!(%error, "an admin page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server failed. Please try again.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            css: assets::url("admin.css"),
            title,
            detail,
        };
        let mut response = render_with(status, &page);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        response
    }
}

/// A page's query string, deserialised into `T`; one it cannot read is an error page like any
/// other, not axum's plain-text answer.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some(name) = holding_control(query) {
            return Err(PageError::BadAddress(format!("{name} holds a control character")));
        }
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|error| PageError::BadAddress(error.to_string()))
    }
}

/// The first field of a query string or form holding a character no single line holds (a NUL,
/// which PostgreSQL cannot store, among them).
fn holding_control(encoded: &str) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(encoded).unwrap_or_default();
    fields
        .into_iter()
        .find(|(key, value)| (key.clone() + value).chars().any(char::is_control))
        .map(|(key, _)| key.replace(char::is_control, "\u{fffd}"))
}

/// The first field of a submitted form holding a NUL: no text of the hub may hold one. Line
/// breaks and tabs are for the fields of free text to keep or refuse.
pub fn holding_nul(fields: &[(String, String)]) -> Option<String> {
    fields
        .iter()
        .find(|(key, value)| has_nul(key) || has_nul(value))
        .map(|(key, _)| key.replace('\0', "\u{fffd}"))
}

pub async fn not_found(uri: Uri) -> PageError {
    tracing::debug!(path = uri.path(), "no admin page here");
    PageError::NotFound("page")
}

/// What went wrong with a form, shown next to its fields when the page is drawn again.
#[derive(Debug, Default)]
pub struct Feedback {
    form: String,
    errors: Vec<FieldError>,
    values: Vec<(String, String)>,
}

impl Feedback {
    pub fn none() -> Feedback {
        Feedback::default()
    }

    /// Feedback for `form` from a store error a person can fix; other errors stay errors.
    pub fn from_error(
        form: impl Into<String>,
        error: omnihub_store::Error,
        values: Vec<(String, String)>,
    ) -> Result<Feedback, PageError> {
        use omnihub_store::Error as E;
        let errors = match error {
            E::Invalid(invalid) => invalid.0,
            E::InsufficientStock(errors) => errors,
            E::Conflict(message) => vec![field_error("", "conflict", message)],
            E::VersionMismatch { .. } => vec![field_error(
                "",
                "version_mismatch",
                "someone changed this meanwhile; look again and retry",
            )],
            error => return Err(error.into()),
        };
        Ok(Feedback {
            form: form.into(),
            errors,
            values,
        })
    }

    /// Feedback for a form the admin itself found wrong before asking the store.
    pub fn invalid(form: impl Into<String>, field: &str, message: &str, values: Vec<(String, String)>) -> Feedback {
        Feedback {
            form: form.into(),
            errors: vec![field_error(field, "invalid", message)],
            values,
        }
    }

    pub fn failed(&self, form: impl AsRef<str>) -> bool {
        self.form == form.as_ref() && !self.errors.is_empty()
    }

    /// The first message about `field` (or a part of it, `lines[0].quantity`) of `form`.
    pub fn error(&self, form: impl AsRef<str>, field: impl AsRef<str>) -> Option<&str> {
        let field = field.as_ref();
        if self.form != form.as_ref() {
            return None;
        }
        self.errors
            .iter()
            .find(|e| {
                e.field == field
                    || e.field
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
            .map(|e| e.message.as_str())
    }

    /// Every message of `form`, for the summary above it.
    pub fn messages(&self, form: impl AsRef<str>) -> Vec<String> {
        if self.form != form.as_ref() {
            return Vec::new();
        }
        self.errors
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect()
    }

    /// What was typed into `form`, when it is the form that failed.
    pub fn typed(&self, form: &str) -> Option<&[(String, String)]> {
        self.failed(form).then_some(self.values.as_slice())
    }

    /// What was typed into `field` of `form`, to show it again.
    pub fn value(&self, form: impl AsRef<str>, field: impl AsRef<str>) -> &str {
        let field = field.as_ref();
        if self.form != form.as_ref() {
            return "";
        }
        self.values
            .iter()
            .find(|(name, _)| name == field)
            .map_or("", |(_, value)| value.as_str())
    }
}

fn field_error(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// A failed form is answered 422 with the page drawn again; a clean page 200.
pub fn status_of(feedback: &Feedback) -> StatusCode {
    if feedback.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_control_characters_are_named() {
        assert_eq!(holding_control("status=open&q=Ann"), None);
        assert_eq!(holding_control("status=open&q=%00").as_deref(), Some("q"));
        assert_eq!(holding_control("next=%2Fadmin%0d%0a").as_deref(), Some("next"));
        let form = vec![("text".to_owned(), "two\nlines".to_owned())];
        assert_eq!(holding_nul(&form), None);
        let form = vec![("name".to_owned(), "A\0".to_owned())];
        assert_eq!(holding_nul(&form).as_deref(), Some("name"));
    }

    #[test]
    fn feedback_finds_the_field_and_its_parts() {
        let feedback = Feedback {
            form: "return".into(),
            errors: vec![field_error(
                "lines[0].quantity",
                "x",
                "only 1 units of A can be returned",
            )],
            values: vec![("reason".into(), "broken".into())],
        };
        assert_eq!(
            feedback.error("return", "lines"),
            Some("only 1 units of A can be returned")
        );
        assert_eq!(feedback.error("return", "line"), None);
        assert_eq!(feedback.error("adjust", "lines"), None);
        assert_eq!(feedback.value("return", "reason"), "broken");
        assert_eq!(feedback.messages("return").len(), 1);
        assert_eq!(status_of(&feedback), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

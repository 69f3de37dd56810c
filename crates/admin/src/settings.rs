//! Settings: where an owner or manager sets the shop up without the API — sales channels,
//! locations and messaging inboxes — and where the owner alone keeps the API keys, the webhook
//! endpoints and the accounts of the people who sign in. Every change goes through the same
//! store functions as the API's, so the same rules answer, next to the field.

mod inboxes;
mod integrations;
mod people;
mod shop;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use omnihub_domain::users::{Access, Area};
use serde::Serialize;

use crate::Admin;
use crate::forms::Fields;
use crate::names::Names;
use crate::orders::Done;
use crate::page::{Feedback, Layout, PageError, Query, done, render_with, status_of};
use crate::session::Staff;

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/settings", get(settings))
        .merge(shop::routes())
        .merge(inboxes::routes())
        .merge(integrations::routes())
        .merge(people::routes())
}

/// A secret shown this once, right after it was made: it is not kept, so it is not redirected
/// to.
#[derive(Default)]
pub struct ShownOnce {
    /// The token of a new API key.
    pub token: Option<String>,
    /// The signing secret of a new webhook endpoint.
    pub signing_secret: Option<String>,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    may_change: bool,
    shop: shop::Shop,
    inboxes: inboxes::Inboxes,
    integrations: Option<integrations::Integrations>,
    people: Option<people::People>,
    once: ShownOnce,
    feedback: Feedback,
}

/// The name the API gives a value (`mobile_app`).
fn api_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The API's name of a value, as words (`mobile app`).
fn text_of<T: Serialize>(value: &T) -> String {
    api_name(value).replace('_', " ")
}

async fn settings_page(
    admin: &Admin,
    staff: &Staff,
    feedback: Feedback,
    once: ShownOnce,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let names = Names::load(&admin.store).await?;
    let integrations = match staff.role().may_see(Area::ApiKeys) {
        true => Some(integrations::view(admin, &names, &feedback).await?),
        false => None,
    };
    let people = match staff.role().may_see(Area::Staff) {
        true => Some(people::view(admin, staff, &names, &feedback).await?),
        false => None,
    };
    let page = SettingsPage {
        layout: Layout::new(staff, Area::Settings, "Settings").done(notice),
        may_change: staff.may_change(Area::Settings),
        shop: shop::view(&names, &feedback),
        inboxes: inboxes::view(admin, &names, &feedback).await?,
        integrations,
        people,
        once,
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

async fn settings(State(admin): State<Admin>, staff: Staff, Query(query): Query<Done>) -> Result<Response, PageError> {
    staff.require(Area::Settings, Access::Read)?;
    settings_page(&admin, &staff, Feedback::none(), ShownOnce::default(), query.done()).await
}

/// The page again with what went wrong in `form` next to its fields; errors nobody can fix by
/// typing stay errors.
async fn refused(
    admin: &Admin,
    staff: &Staff,
    form: &str,
    error: omnihub_store::Error,
    values: Fields,
) -> Result<Response, PageError> {
    let feedback = Feedback::from_error(form, error, values)?;
    settings_page(admin, staff, feedback, ShownOnce::default(), None).await
}

/// Back to Settings with the confirmation `done_code`, or the page again with what went wrong.
async fn answer(
    admin: &Admin,
    staff: &Staff,
    form: &str,
    outcome: Result<(), omnihub_store::Error>,
    values: Fields,
    done_code: &str,
) -> Result<Response, PageError> {
    match outcome {
        Ok(()) => Ok(done("/admin/settings", done_code)),
        Err(error) => refused(admin, staff, form, error, values).await,
    }
}

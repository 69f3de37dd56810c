//! Settings: sales channels (with the stock each holds back), locations, API keys and the
//! accounts of the people who sign in. Keys and accounts are the owner's alone.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use omnihub_domain::access::SCOPES;
use omnihub_domain::catalog::StockBuffer;
use omnihub_domain::users::{Access, Area, Role, UserDraft};

use crate::forms::{Fields, field, given, number};
use crate::names::Names;
use crate::orders::{Choice, Done};
use crate::page::{Feedback, Layout, PageError, done, render_with, status_of};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/settings", get(settings))
        .route("/admin/settings/channels/{id}/buffer", post(set_buffer))
        .route("/admin/settings/keys", post(create_key))
        .route("/admin/settings/users", post(create_user))
        .route("/admin/settings/users/{id}/deactivate", post(deactivate_user))
}

pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub currency: String,
    pub locations: String,
    pub units: String,
    pub percent: String,
    pub policy: String,
}

pub struct LocationRow {
    pub name: String,
    pub kind: String,
    pub city: String,
    pub services: String,
}

pub struct KeyRow {
    pub name: String,
    pub prefix: String,
    pub access: String,
    pub created: String,
}

pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub store: String,
    pub active: bool,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    may_change: bool,
    channels: Vec<ChannelRow>,
    locations: Vec<LocationRow>,
    keys: Option<Vec<KeyRow>>,
    scopes: Vec<&'static str>,
    channel_choices: Vec<Choice>,
    new_token: Option<String>,
    users: Option<Vec<UserRow>>,
    roles: Vec<Choice>,
    stores: Vec<Choice>,
    feedback: Feedback,
}

fn text_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

fn channel_rows(names: &Names) -> Vec<ChannelRow> {
    names
        .channels
        .iter()
        .map(|c| {
            let policy = &c.draft.price_policy;
            ChannelRow {
                id: c.id.clone(),
                name: c.draft.name.clone(),
                kind: text_of(&c.draft.kind),
                currency: c.draft.currency.clone(),
                locations: c
                    .draft
                    .location_ids
                    .iter()
                    .map(|l| names.location(l))
                    .collect::<Vec<_>>()
                    .join(", "),
                units: c.draft.stock_buffer.units.map(|u| u.to_string()).unwrap_or_default(),
                percent: c.draft.stock_buffer.percent.map(|p| p.to_string()).unwrap_or_default(),
                policy: match policy.max_deviation_percent {
                    Some(max) => format!("{}, up to {max} %", text_of(&policy.parity)),
                    None => text_of(&policy.parity),
                },
            }
        })
        .collect()
}

fn location_rows(names: &Names) -> Vec<LocationRow> {
    names
        .locations
        .iter()
        .map(|l| {
            let d = &l.draft;
            let services: Vec<&str> = [
                d.pickup.then_some("pick-up"),
                d.ship_from.then_some("ships"),
                d.same_day_radius_km.map(|_| "same day"),
            ]
            .into_iter()
            .flatten()
            .collect();
            LocationRow {
                name: d.name.clone(),
                kind: text_of(&d.kind),
                city: d.address.city.clone(),
                services: services.join(", "),
            }
        })
        .collect()
}

async fn key_rows(admin: &Admin, names: &Names) -> Result<Vec<KeyRow>, PageError> {
    Ok(admin
        .store
        .api_keys()
        .await?
        .iter()
        .map(|k| KeyRow {
            name: k.name.clone(),
            prefix: format!("{}…", k.token_prefix),
            access: match &k.channel_id {
                Some(channel) => format!("publishable, {}", names.channel(channel)),
                None => k.scopes.join(", "),
            },
            created: show::when(k.created_at),
        })
        .collect())
}

async fn user_rows(admin: &Admin, staff: &Staff, names: &Names) -> Result<Vec<UserRow>, PageError> {
    Ok(admin
        .store
        .users()
        .await?
        .iter()
        .map(|u| UserRow {
            id: u.id.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            role: u.role.label(),
            store: u.location_id.as_deref().map(|l| names.location(l)).unwrap_or_default(),
            active: u.active,
            is_me: u.id == staff.user.id,
        })
        .collect())
}

async fn settings_page(
    admin: &Admin,
    staff: &Staff,
    feedback: Feedback,
    new_token: Option<String>,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let names = Names::load(&admin.store).await?;
    let keys = match staff.role().may_see(Area::ApiKeys) {
        true => Some(key_rows(admin, &names).await?),
        false => None,
    };
    let users = match staff.role().may_see(Area::Staff) {
        true => Some(user_rows(admin, staff, &names).await?),
        false => None,
    };
    let chosen_role = feedback.value("user", "role");
    let chosen_store = feedback.value("user", "location_id");
    let page = SettingsPage {
        layout: Layout::new(staff, Area::Settings, "Settings").done(notice),
        may_change: staff.may_change(Area::Settings),
        channels: channel_rows(&names),
        locations: location_rows(&names),
        keys,
        scopes: SCOPES.to_vec(),
        channel_choices: names
            .channels
            .iter()
            .map(|c| Choice::new(&c.id, &c.draft.name, None))
            .collect(),
        new_token,
        users,
        roles: Role::ALL
            .iter()
            .map(|r| Choice::new(r.as_str(), r.label(), Some(chosen_role)))
            .collect(),
        stores: names
            .stores()
            .map(|l| Choice::new(&l.id, &l.draft.name, Some(chosen_store)))
            .collect(),
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

async fn settings(State(admin): State<Admin>, staff: Staff, Query(query): Query<Done>) -> Result<Response, PageError> {
    staff.require(Area::Settings, Access::Read)?;
    settings_page(&admin, &staff, Feedback::none(), None, query.done()).await
}

/// Changes what a channel holds back of every SKU; availability follows at once.
async fn set_buffer(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Settings, Access::Write)?;
    let form = format!("buffer:{id}");
    let (Ok(units), Ok(percent)) = (number(&fields, "units"), number(&fields, "percent")) else {
        let feedback = Feedback::invalid(form, "stock_buffer", "must be whole numbers", fields);
        return settings_page(&admin, &staff, feedback, None, None).await;
    };
    let channel = admin.store.channel(&id).await?;
    let mut draft = channel.draft.clone();
    draft.stock_buffer = StockBuffer { units, percent };
    match admin.store.update_channel(&id, draft, channel.version).await {
        Ok(_) => Ok(done("/admin/settings", "channel")),
        Err(error) => {
            let feedback = Feedback::from_error(form, error, fields)?;
            settings_page(&admin, &staff, feedback, None, None).await
        }
    }
}

/// Makes a key and shows its token this once: it is not kept, so it is not redirected to.
async fn create_key(
    State(admin): State<Admin>,
    staff: Staff,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::ApiKeys, Access::Write)?;
    let name = given(&fields, "name").unwrap_or_else(|| "api key".to_owned());
    let channel = given(&fields, "channel_id").filter(|_| field(&fields, "kind") == "publishable");
    let scopes: Vec<String> = match channel {
        Some(_) => Vec::new(),
        None => fields
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    match admin.store.generate_api_key(&name, &scopes, channel.as_deref()).await {
        Ok(made) => {
            tracing::info!(key_id = made.key.id, "an API key was made in the admin");
            settings_page(&admin, &staff, Feedback::none(), Some(made.token), None).await
        }
        Err(error) => {
            let feedback = Feedback::from_error("key", error, fields)?;
            settings_page(&admin, &staff, feedback, None, None).await
        }
    }
}

async fn create_user(
    State(admin): State<Admin>,
    staff: Staff,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Staff, Access::Write)?;
    // The password is never shown again, not even after a mistake.
    let values: Fields = fields.iter().filter(|(k, _)| k != "password").cloned().collect();
    let Some(role) = Role::parse(field(&fields, "role")) else {
        let feedback = Feedback::invalid("user", "role", "choose a role", values);
        return settings_page(&admin, &staff, feedback, None, None).await;
    };
    let draft = UserDraft {
        email: field(&fields, "email").to_owned(),
        name: field(&fields, "name").to_owned(),
        role,
        location_id: given(&fields, "location_id").filter(|_| role.needs_location()),
    };
    let password = fields
        .iter()
        .find(|(k, _)| k == "password")
        .map_or("", |(_, v)| v.as_str());
    match admin.store.create_user(draft, password).await {
        Ok(_) => Ok(done("/admin/settings", "user")),
        Err(error) => {
            let feedback = Feedback::from_error("user", error, values)?;
            settings_page(&admin, &staff, feedback, None, None).await
        }
    }
}

async fn deactivate_user(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    staff.require(Area::Staff, Access::Write)?;
    if id == staff.user.id {
        let feedback = Feedback::invalid("users", "", "you cannot deactivate your own account", Vec::new());
        return settings_page(&admin, &staff, feedback, None, None).await;
    }
    match admin.store.deactivate_user(&id).await {
        Ok(_) => Ok(done("/admin/settings", "deactivated")),
        Err(error) => {
            let feedback = Feedback::from_error("users", error, Vec::new())?;
            settings_page(&admin, &staff, feedback, None, None).await
        }
    }
}

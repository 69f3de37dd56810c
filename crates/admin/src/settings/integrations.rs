//! What other systems reach the shop with, the owner's alone: API keys (made, their token
//! shown once; revoked) and webhook endpoints (registered, their signing secret shown once;
//! paused, resumed, deleted).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use omnihub_domain::access::Scope;
use omnihub_domain::users::{Access, Area};
use omnihub_domain::webhooks::{EndpointStatus, NewEndpoint};

use super::{ShownOnce, answer, refused, settings_page};
use crate::forms::{Fields, Filled, field, given};
use crate::names::{ALL, Names};
use crate::orders::Choice;
use crate::page::{Feedback, PageError};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/settings/keys", post(create_key))
        .route("/admin/settings/keys/{id}/revoke", post(revoke_key))
        .route("/admin/settings/webhooks", post(create_endpoint))
        .route("/admin/settings/webhooks/{id}/pause", post(pause_endpoint))
        .route("/admin/settings/webhooks/{id}/resume", post(resume_endpoint))
        .route("/admin/settings/webhooks/{id}/delete", post(delete_endpoint))
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub access: String,
    pub created: String,
}

pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub paused: bool,
    pub created: String,
}

pub struct Integrations {
    pub keys: Vec<KeyRow>,
    pub scopes: Vec<&'static str>,
    pub channel_choices: Vec<Choice>,
    pub endpoints: Vec<EndpointRow>,
    pub new_endpoint: Filled,
}

pub async fn view(admin: &Admin, names: &Names, feedback: &Feedback) -> Result<Integrations, PageError> {
    let keys = admin.store.api_keys().await?;
    let (endpoints, _) = admin.store.webhook_endpoints(&ALL).await?;
    Ok(Integrations {
        keys: keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.clone(),
                name: k.name.clone(),
                prefix: format!("{}…", k.token_prefix),
                access: match &k.channel_id {
                    Some(channel) if k.origins.is_empty() => format!("publishable, {}", names.channel(channel)),
                    Some(channel) => format!(
                        "publishable, {}, from pages of {}",
                        names.channel(channel),
                        k.origins.join(", ")
                    ),
                    None => k.scopes.join(", "),
                },
                created: show::when(k.created_at),
            })
            .collect(),
        scopes: Scope::for_secret_keys().map(Scope::as_str).collect(),
        channel_choices: names
            .channels
            .iter()
            .map(|c| Choice::new(&c.id, &c.draft.name, None))
            .collect(),
        endpoints: endpoints
            .iter()
            .map(|e| EndpointRow {
                id: e.id.clone(),
                url: e.draft.url.clone(),
                events: e.draft.events.join(", "),
                paused: e.draft.status == EndpointStatus::Paused,
                created: show::when(e.created_at),
            })
            .collect(),
        new_endpoint: Filled::new(feedback, "webhook", || vec![("events".to_owned(), "*".to_owned())]),
    })
}

/// Makes a key and shows its token this once.
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
    // The sites whose pages use a publishable key, as typed: separated by commas or spaces.
    let origins: Vec<String> = match channel {
        Some(_) => field(&fields, "origins")
            .split([',', ' ', '\n'])
            .filter(|o| !o.trim().is_empty())
            .map(|o| o.trim().to_owned())
            .collect(),
        None => Vec::new(),
    };
    match admin
        .store
        .generate_api_key(&name, &scopes, channel.as_deref(), &origins)
        .await
    {
        Ok(made) => {
            tracing::info!(key_id = made.key.id, "an API key was made in the admin");
            let once = ShownOnce {
                token: Some(made.token),
                ..ShownOnce::default()
            };
            settings_page(&admin, &staff, Feedback::none(), once, None).await
        }
        Err(error) => refused(&admin, &staff, "key", error, fields).await,
    }
}

/// The key stops working at once; whatever used it gets 401 from now on.
async fn revoke_key(State(admin): State<Admin>, staff: Staff, Path(id): Path<String>) -> Result<Response, PageError> {
    staff.require(Area::ApiKeys, Access::Write)?;
    let outcome = admin.store.revoke_api_key(&id).await;
    if outcome.is_ok() {
        tracing::info!(key_id = id, "an API key was revoked in the admin");
    }
    answer(&admin, &staff, "keys", outcome, Vec::new(), "revoked").await
}

/// Event types as typed: separated by commas or spaces.
fn event_patterns(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Registers an endpoint and shows its signing secret this once.
async fn create_endpoint(
    State(admin): State<Admin>,
    staff: Staff,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::ApiKeys, Access::Write)?;
    let new = NewEndpoint {
        url: field(&fields, "url").to_owned(),
        events: event_patterns(field(&fields, "events")),
        secret: None,
        status: EndpointStatus::Active,
    };
    match admin.store.create_webhook_endpoint(new).await {
        Ok(made) => {
            tracing::info!(endpoint_id = made.id, "a webhook endpoint was registered in the admin");
            let once = ShownOnce {
                signing_secret: made.secret,
                ..ShownOnce::default()
            };
            settings_page(&admin, &staff, Feedback::none(), once, Some("webhook")).await
        }
        Err(error) => refused(&admin, &staff, "webhook", error, fields).await,
    }
}

/// Pauses or resumes an endpoint; a resumed one receives what happened meanwhile.
async fn set_status(admin: &Admin, staff: &Staff, id: &str, status: EndpointStatus) -> Result<Response, PageError> {
    staff.require(Area::ApiKeys, Access::Write)?;
    let endpoint = admin.store.webhook_endpoint(id).await?;
    let draft = omnihub_domain::webhooks::EndpointDraft {
        status,
        ..endpoint.draft
    };
    let outcome = admin.store.update_webhook_endpoint(id, draft, endpoint.version).await;
    answer(admin, staff, "webhooks", outcome.map(drop), Vec::new(), "webhook").await
}

async fn pause_endpoint(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    set_status(&admin, &staff, &id, EndpointStatus::Paused).await
}

async fn resume_endpoint(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    set_status(&admin, &staff, &id, EndpointStatus::Active).await
}

async fn delete_endpoint(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    staff.require(Area::ApiKeys, Access::Write)?;
    let outcome = admin.store.delete_webhook_endpoint(&id).await;
    answer(&admin, &staff, "webhooks", outcome, Vec::new(), "webhook_deleted").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_read_however_they_are_separated() {
        assert_eq!(
            event_patterns(" order.*, product.created\ninventory.level_changed "),
            ["order.*", "product.created", "inventory.level_changed"]
        );
        assert!(event_patterns(" , ").is_empty());
    }
}

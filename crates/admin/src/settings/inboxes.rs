//! Messaging inboxes: connecting a channel with its provider's credentials, which are sealed
//! and never shown again, and the webhook URL to register with the provider.

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use omnihub_domain::conversations::{InboxKind, NewInbox};
use omnihub_domain::users::{Access, Area};
use serde_json::{Map, Value};

use super::{answer, text_of};
use crate::Admin;
use crate::forms::{Fields, Filled, Reader, read};
use crate::names::{ALL, Names};
use crate::orders::Choice;
use crate::page::{Feedback, PageError};
use crate::session::Staff;

pub fn routes() -> Router<Admin> {
    Router::new().route("/admin/settings/inboxes", post(connect))
}

pub struct InboxRow {
    pub name: String,
    pub kind: String,
    pub sells_in: String,
    /// Where the channel delivers; the web chat's widget needs none.
    pub webhook_url: Option<String>,
}

/// One credential a provider needs, as a form field.
pub struct CredentialField {
    /// The input's name: one per kind, as kinds share field names.
    pub input: String,
    /// The field the API names in its messages (`credentials.bot_token`).
    pub field: String,
    pub label: String,
}

/// The credentials of one kind of inbox.
pub struct KindFields {
    pub kind: &'static str,
    pub label: String,
    pub fields: Vec<CredentialField>,
}

pub struct Inboxes {
    pub rows: Vec<InboxRow>,
    pub kinds: Vec<Choice>,
    pub credentials: Vec<KindFields>,
    pub sales_channels: Vec<Choice>,
    pub new_inbox: Filled,
}

fn credential_input(kind: InboxKind, field: &str) -> String {
    format!("credentials.{}.{field}", kind.as_str())
}

fn kind_fields(kind: InboxKind) -> KindFields {
    KindFields {
        kind: kind.as_str(),
        label: text_of(&kind),
        fields: kind
            .credential_fields()
            .iter()
            .map(|field| CredentialField {
                input: credential_input(kind, field),
                field: format!("credentials.{field}"),
                label: field.replace('_', " "),
            })
            .collect(),
    }
}

pub async fn view(admin: &Admin, names: &Names, feedback: &Feedback) -> Result<Inboxes, PageError> {
    let (inboxes, _) = admin.store.inboxes(&ALL).await?;
    Ok(Inboxes {
        rows: inboxes
            .iter()
            .map(|inbox| InboxRow {
                name: inbox.name.clone(),
                kind: text_of(&inbox.kind),
                sells_in: inbox
                    .sales_channel_id
                    .as_deref()
                    .map(|c| names.channel(c))
                    .unwrap_or_default(),
                webhook_url: inbox.webhook_url(&admin.public_url),
            })
            .collect(),
        kinds: InboxKind::ALL
            .iter()
            .map(|kind| Choice::new(kind.as_str(), text_of(kind), None))
            .collect(),
        credentials: InboxKind::ALL
            .into_iter()
            .map(kind_fields)
            .filter(|k| !k.fields.is_empty())
            .collect(),
        sales_channels: names
            .channels
            .iter()
            .map(|c| Choice::new(&c.id, &c.draft.name, None))
            .collect(),
        new_inbox: Filled::new(feedback, "inbox", Vec::new),
    })
}

/// The inbox as the API takes it; only the chosen kind's credentials are sent.
fn read_inbox(form: &mut Reader) -> Option<NewInbox> {
    let kind: InboxKind = form.choice("kind")?;
    let credentials: Map<String, Value> = kind
        .credential_fields()
        .iter()
        .map(|field| (field.to_string(), form.text(&credential_input(kind, field)).into()))
        .collect();
    Some(NewInbox {
        kind,
        name: form.text("name"),
        credentials: Value::Object(credentials),
        api_base_url: form.optional("api_base_url"),
        sales_channel_id: form.optional("sales_channel_id"),
        agent_ids: Vec::new(),
    })
}

async fn connect(State(admin): State<Admin>, staff: Staff, Form(fields): Form<Fields>) -> Result<Response, PageError> {
    staff.require(Area::Settings, Access::Write)?;
    // Credentials are never shown again, not even after a mistake.
    let values: Fields = fields
        .iter()
        .filter(|(name, _)| !name.starts_with("credentials."))
        .cloned()
        .collect();
    let outcome = match read(&fields, read_inbox) {
        Ok(new) => admin.store.create_inbox(new).await.map(drop),
        Err(invalid) => Err(invalid.into()),
    };
    answer(&admin, &staff, "inbox", outcome, values, "inbox").await
}

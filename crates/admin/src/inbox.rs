//! The inbox, read-only for now: conversations from every messaging channel, the thread of the
//! one chosen, and the customer's context beside it (identities, cart, orders, points).
//! Replying, notes, assignment and templates come with the inbox's own work on this page.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use omnihub_domain::conversations::{Conversation, Direction, Message, SenderKind};
use omnihub_domain::users::{Access, Area};
use omnihub_store::{ConversationFilter, OrderFilter, Page};
use serde::Deserialize;

use crate::customers::name_of;
use crate::forms::chosen;
use crate::names::Names;
use crate::orders::{Choice, status_class};
use crate::page::{Layout, PageError, render};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new().route("/admin/inbox", get(inbox))
}

#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    status: Option<String>,
    /// The conversation shown in the middle.
    c: Option<String>,
}

pub struct ConversationRow {
    pub id: String,
    pub channel: &'static str,
    pub customer: String,
    pub status: &'static str,
    pub last: String,
    pub selected: bool,
}

pub struct MessageView {
    pub from_customer: bool,
    pub who: &'static str,
    pub text: String,
    pub when: String,
    pub private: bool,
}

pub struct Context {
    pub customer_id: String,
    pub name: String,
    pub identities: Vec<String>,
    pub points: i64,
    pub cart: Option<String>,
    pub orders: Vec<(String, String, &'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    layout: Layout,
    statuses: Vec<Choice>,
    status: String,
    conversations: Vec<ConversationRow>,
    thread: Vec<MessageView>,
    context: Option<Context>,
}

fn message_view(message: &Message) -> MessageView {
    MessageView {
        from_customer: message.direction == Direction::In,
        who: match message.sender_kind {
            SenderKind::Customer => "Customer",
            SenderKind::Agent => "Agent",
            SenderKind::Bot => "Bot",
        },
        text: message
            .text
            .clone()
            .or_else(|| message.template.as_ref().map(|_| "(template message)".to_owned()))
            .unwrap_or_default(),
        when: show::when(message.created_at),
        private: message.private,
    }
}

async fn row(admin: &Admin, conversation: &Conversation, selected: Option<&str>) -> Result<ConversationRow, PageError> {
    let customer = admin.store.customer(&conversation.customer_id).await?;
    Ok(ConversationRow {
        id: conversation.id.clone(),
        channel: conversation.inbox_kind.as_str(),
        customer: name_of(&customer),
        status: conversation.status.as_str(),
        last: conversation.last_message_at.map(show::when).unwrap_or_default(),
        selected: selected == Some(conversation.id.as_str()),
    })
}

/// What the agent needs beside the thread, without asking the customer again.
async fn context(admin: &Admin, customer_id: &str, names: &Names) -> Result<Context, PageError> {
    let customer = admin.store.customer(customer_id).await?;
    let standing = admin.store.loyalty_standing(customer_id).await?;
    let cart = match admin.store.customer_cart(customer_id).await {
        Ok(cart) => Some(format!(
            "{} line(s), {} in {}",
            cart.lines.len(),
            show::money(&cart.totals.total),
            names.channel(&cart.channel_id)
        )),
        Err(omnihub_store::Error::NotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let filter = OrderFilter {
        customer_id: Some(customer_id.to_owned()),
        ..OrderFilter::default()
    };
    let (orders, _) = admin.store.orders(&filter, &Page { after: None, limit: 5 }).await?;
    Ok(Context {
        customer_id: customer_id.to_owned(),
        name: name_of(&customer),
        identities: customer
            .identities
            .iter()
            .map(|i| format!("{}: {}", i.kind.as_str(), i.value))
            .collect(),
        points: standing.balance,
        cart,
        orders: orders
            .iter()
            .map(|o| {
                (
                    o.id.clone(),
                    o.number.clone(),
                    show::status(o.status),
                    status_class(o.status),
                )
            })
            .collect(),
    })
}

async fn inbox(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<InboxQuery>,
) -> Result<Response, PageError> {
    staff.require(Area::Inbox, Access::Read)?;
    let status = chosen(&query.status).unwrap_or_else(|| "open".to_owned());
    let filter = ConversationFilter {
        status: Some(status.clone()).filter(|s| s != "all"),
        ..ConversationFilter::default()
    };
    let (found, _) = admin
        .store
        .conversations(&filter, &Page { after: None, limit: 50 })
        .await?;
    let selected = chosen(&query.c).or_else(|| found.first().map(|c| c.id.clone()));
    let mut conversations = Vec::with_capacity(found.len());
    for conversation in &found {
        conversations.push(row(&admin, conversation, selected.as_deref()).await?);
    }
    let names = Names::load(&admin.store).await?;
    let (thread, context) = match &selected {
        Some(id) => {
            let conversation = admin.store.conversation(id).await?;
            let messages = admin.store.conversation_messages(id).await?;
            let context = context(&admin, &conversation.customer_id, &names).await?;
            (messages.iter().map(message_view).collect(), Some(context))
        }
        None => (Vec::new(), None),
    };
    let page = InboxPage {
        layout: Layout::new(&staff, Area::Inbox, "Inbox").live("inbox"),
        statuses: ["open", "pending", "resolved", "all"]
            .into_iter()
            .map(|s| Choice::new(s, s, Some(status.as_str())))
            .collect(),
        status,
        conversations,
        thread,
        context,
    };
    Ok(render(&page))
}

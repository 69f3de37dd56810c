//! The inbox for agents: connected channels, conversations with the customer's commerce
//! context beside them, replies through each conversation's own channel, assignment and
//! canned replies.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use omnihub_domain::conversations::{
    CannedReply, CannedReplyDraft, Conversation, Inbox, Message, NewInbox, ReplyDraft,
};
use omnihub_domain::customers::Customer;
use omnihub_domain::orders::{Cart, Order};
use omnihub_store::{ConversationFilter, OrderFilter, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{if_match, patched, version_race};
use crate::AppState;
use crate::auth::{ConversationsRead, ConversationsWrite, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, Problem};
use crate::query::Query;

/// How many of the customer's latest orders are shown beside a conversation.
const CONTEXT_ORDERS: i64 = 5;
/// How many of the customer's conversations (on every channel) are shown beside one.
const CONTEXT_CONVERSATIONS: i64 = 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/inboxes", get(list_inboxes).post(create_inbox))
        .route("/inboxes/{id}", get(get_inbox).patch(patch_inbox))
        .route("/conversations", get(list_conversations))
        .route("/conversations/{id}", get(get_conversation).patch(patch_conversation))
        .route(
            "/conversations/{id}/messages",
            get(list_conversation_messages).post(reply_to_conversation),
        )
        .route("/canned-replies", get(list_canned_replies).post(create_canned_reply))
}

/// An inbox as shown, with the URL to register with the provider. Never its credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxView {
    #[serde(flatten)]
    pub inbox: Inbox,
    /// Where the channel must deliver its messages: the provider's webhook
    /// (`/hooks/{id}`), for an `api` inbox `/api/v1/inboxes/{id}/messages`; `null` for the
    /// web chat, whose widget talks to `/webchat/{id}/…`.
    pub webhook_url: Option<String>,
}

fn view(state: &AppState, inbox: Inbox) -> InboxView {
    InboxView {
        webhook_url: inbox.webhook_url(&state.config.public_url),
        inbox,
    }
}

/// Connect a messaging channel. `credentials` depend on `kind` (see the API contract); they
/// are sealed at rest and never shown again. The answer's `webhook_url` is what to register
/// with the provider (for an `api` inbox, where the custom channel posts its messages; `null`
/// for the web chat).
#[utoipa::path(post, path = "/api/v1/inboxes", tag = "conversations", request_body = NewInbox,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = InboxView), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_inbox(
    State(state): State<AppState>,
    _: Secret<ConversationsWrite>,
    Json(new): Json<NewInbox>,
) -> Result<Created<InboxView>, ApiError> {
    let inbox = state.store.create_inbox(new).await?;
    Ok(Created(view(&state, inbox)))
}

/// List inboxes.
#[utoipa::path(get, path = "/api/v1/inboxes", tag = "conversations", params(ListParams),
    responses((status = 200, body = List<InboxView>)))]
pub async fn list_inboxes(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<InboxView>>, ApiError> {
    let (inboxes, next) = state.store.inboxes(&params.page()?).await?;
    let views = inboxes.into_iter().map(|i| view(&state, i)).collect();
    Ok(Json(List::new((views, next))))
}

/// Read an inbox.
#[utoipa::path(get, path = "/api/v1/inboxes/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = InboxView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_inbox(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Path(id): Path<String>,
) -> Result<Json<InboxView>, ApiError> {
    let inbox = state.store.inbox(&id).await?;
    Ok(Json(view(&state, inbox)))
}

/// Change an inbox with a JSON Merge Patch: `name`, `agent_ids`, `sales_channel_id` (`null`
/// for none), and `credentials`, which replace the old ones whole (all of the kind's fields)
/// and are sealed anew. The kind stays. `If-Match` guards against a stale version.
#[utoipa::path(patch, path = "/api/v1/inboxes/{id}", tag = "conversations",
    request_body = omnihub_domain::conversations::InboxDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header, description = "The version the change is based on")),
    responses((status = 200, body = InboxView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_inbox(
    State(state): State<AppState>,
    _: Secret<ConversationsWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<InboxView>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.inbox(&id).await?;
    let draft = patched(&current.to_draft(), &patch)?;
    let version = asked.unwrap_or(current.version);
    let updated = state.store.update_inbox(&id, draft, version).await;
    Ok(Json(view(&state, updated.map_err(|e| version_race(e, asked))?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// `open`, `pending` or `resolved`.
    pub status: Option<String>,
    pub assignee_id: Option<String>,
    pub inbox_id: Option<String>,
    pub customer_id: Option<String>,
}

/// Conversations of every channel, newest first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ConversationParams, ListParams),
    responses((status = 200, body = List<Conversation>)))]
pub async fn list_conversations(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Query(filter): Query<ConversationParams>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Conversation>>, ApiError> {
    let filter = ConversationFilter {
        status: filter.status,
        assignee_id: filter.assignee_id,
        inbox_id: filter.inbox_id,
        customer_id: filter.customer_id,
        unassigned: false,
    };
    Ok(Json(List::new(
        state.store.conversations(&filter, &params.page()?).await?,
    )))
}

/// What an agent sees beside a conversation, so the customer never repeats themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerContext {
    /// The profile with identities on every channel.
    pub customer: Customer,
    /// The active cart, whatever channel started it.
    pub cart: Option<Cart>,
    /// The latest orders with their status and fulfilments, newest first.
    pub orders: Vec<Order>,
    /// The customer's conversations on every channel, this one included, newest first.
    pub conversations: Vec<Conversation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// The latest messages (up to 200), oldest first; `GET /conversations/{id}/messages`
    /// pages through the whole history.
    pub messages: Vec<Message>,
    pub context: CustomerContext,
}

/// Read a conversation with its messages and the customer's context: profile and identities,
/// active cart, latest orders and fulfilments, conversations on other channels.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_conversation(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = state.store.conversation(&id).await?;
    let messages = state.store.conversation_messages(&id).await?;
    let context = context(&state, &conversation.customer_id).await?;
    Ok(Json(ConversationView {
        conversation,
        messages,
        context,
    }))
}

async fn context(state: &AppState, customer_id: &str) -> Result<CustomerContext, ApiError> {
    let store = &state.store;
    let customer = store.customer(customer_id).await?;
    let cart = match store.customer_cart(customer_id).await {
        Ok(cart) => Some(store.priced_cart(cart).await?),
        Err(omnihub_store::Error::NotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let orders = OrderFilter {
        customer_id: Some(customer_id.to_owned()),
        ..OrderFilter::default()
    };
    let (orders, _) = store.orders(&orders, &first(CONTEXT_ORDERS)).await?;
    let conversations = ConversationFilter {
        customer_id: Some(customer_id.to_owned()),
        ..ConversationFilter::default()
    };
    let (conversations, _) = store
        .conversations(&conversations, &first(CONTEXT_CONVERSATIONS))
        .await?;
    Ok(CustomerContext {
        customer,
        cart,
        orders,
        conversations,
    })
}

fn first(limit: i64) -> Page {
    Page { after: None, limit }
}

/// Page through the conversation's whole history, oldest first, with the list convention
/// (`limit` 1–500, default 50; `cursor` = the previous page's `next_cursor`).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path), ListParams),
    responses((status = 200, body = List<Message>), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_conversation_messages(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<Message>>, ApiError> {
    let page = params.page()?;
    state.store.conversation(&id).await?;
    Ok(Json(List::new(
        state.store.conversation_message_page(&id, &page).await?,
    )))
}

/// Reply through the conversation's own channel: `{"text"}`, `{"template": {"name", "params"}}`
/// (WhatsApp), `{"canned": "short_code"}`, or a private `{"note"}`. Outside the channel's reply
/// window a text is 422 `window_closed` (a template is accepted). The answer is the message as
/// the provider left it: `sent`, or `failed` with the reason once retries ran out.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", request_body = ReplyDraft,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = Message), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn reply_to_conversation(
    State(state): State<AppState>,
    caller: Secret<ConversationsWrite>,
    Path(id): Path<String>,
    Json(draft): Json<ReplyDraft>,
) -> Result<Created<Message>, ApiError> {
    let reply = draft.validate()?;
    let sent = state
        .store
        .send_reply(&id, reply, caller.0.key_id(), state.courier.as_ref())
        .await?;
    Ok(Created(sent))
}

/// Change `status` (`open`, `pending`, `resolved`), `assignee_id` (`auto`: the inbox's next
/// agent in turn), `team` or `tags` with a JSON Merge Patch.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations",
    request_body = omnihub_domain::conversations::ConversationDraft,
    params(("id" = String, Path), ("If-Match" = Option<i64>, Header, description = "The version the change is based on")),
    responses((status = 200, body = Conversation), (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_conversation(
    State(state): State<AppState>,
    _: Secret<ConversationsWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<serde_json::Value>,
) -> Result<Json<Conversation>, ApiError> {
    let asked = if_match(&headers)?;
    let current = state.store.conversation(&id).await?;
    let draft = patched(&current.to_draft(), &patch)?;
    let version = asked.unwrap_or(current.version);
    let updated = state.store.update_conversation(&id, draft, version).await;
    Ok(Json(updated.map_err(|e| version_race(e, asked))?))
}

/// Add a canned reply: agents send it with `{"canned": "<short_code>"}`.
#[utoipa::path(post, path = "/api/v1/canned-replies", tag = "conversations", request_body = CannedReplyDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = CannedReply), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_canned_reply(
    State(state): State<AppState>,
    _: Secret<ConversationsWrite>,
    Json(draft): Json<CannedReplyDraft>,
) -> Result<Created<CannedReply>, ApiError> {
    Ok(Created(state.store.create_canned_reply(draft).await?))
}

/// List canned replies.
#[utoipa::path(get, path = "/api/v1/canned-replies", tag = "conversations", params(ListParams),
    responses((status = 200, body = List<CannedReply>)))]
pub async fn list_canned_replies(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<CannedReply>>, ApiError> {
    Ok(Json(List::new(state.store.canned_replies(&params.page()?).await?)))
}

//! Automatic answers: the merchant's frequent questions (`/faq-entries`), and the bot that
//! answers a customer's message by itself when it is sure of the answer — a frequent
//! question, or where the customer's latest order is. Once an agent replies or is assigned,
//! the bot stays quiet in that conversation.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use omnihub_domain::conversations::answers::{
    FaqEntry, FaqEntryDraft, Language, asks_for_order, confident_match, order_answer, order_lookup,
    order_lookup_failed, order_lookup_request, order_placed_with,
};
use omnihub_domain::conversations::{Conversation, InboxKind, check_reply, reply_window};
use omnihub_domain::customers::IdentityKind;
use omnihub_store::{OrderFilter, Page, StoredMessage};

use crate::AppState;
use crate::auth::{ConversationsRead, ConversationsWrite, Secret};
use crate::json::{Created, Json};
use crate::lists::{List, ListParams};
use crate::problem::{ApiError, Problem};
use crate::query::Query;

pub fn routes() -> Router<AppState> {
    Router::new().route("/faq-entries", get(list_faq_entries).post(create_faq_entry))
}

/// Add a frequent question with its answer. Each customer message is ranked against the
/// questions and keywords (BM25); a close enough match is answered by the bot through the
/// conversation's channel.
#[utoipa::path(post, path = "/api/v1/faq-entries", tag = "conversations", request_body = FaqEntryDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = FaqEntry), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_faq_entry(
    State(state): State<AppState>,
    _: Secret<ConversationsWrite>,
    Json(draft): Json<FaqEntryDraft>,
) -> Result<Created<FaqEntry>, ApiError> {
    Ok(Created(state.store.create_faq_entry(draft).await?))
}

/// List the frequent questions.
#[utoipa::path(get, path = "/api/v1/faq-entries", tag = "conversations", params(ListParams),
    responses((status = 200, body = List<FaqEntry>)))]
pub async fn list_faq_entries(
    State(state): State<AppState>,
    _: Secret<ConversationsRead>,
    Query(params): Query<ListParams>,
) -> Result<Json<List<FaqEntry>>, ApiError> {
    Ok(Json(List::new(state.store.faq_entries(&params.page()?).await?)))
}

/// Lets the bot answer each newly stored customer message, apart from the request that
/// brought it: providers wait for their webhook's answer and deliver again when it is slow,
/// and a reply to a provider may take seconds of retries.
pub(super) fn answer_in_background(state: &AppState, messages: &[StoredMessage]) {
    for stored in messages {
        let (state, stored) = (state.clone(), stored.clone());
        tokio::spawn(async move {
            if let Err(error) = answer(&state, &stored).await {
                tracing::warn!(conversation = %stored.conversation_id, error = %error, "automatic answer failed");
            }
        });
    }
}

async fn answer(state: &AppState, stored: &StoredMessage) -> Result<(), omnihub_store::Error> {
    let message = state.store.message(&stored.message_id).await?;
    let Some(text) = message.text else {
        return Ok(());
    };
    let target = match state.store.reply_target(&stored.conversation_id).await {
        Ok(target) => target,
        // An erased customer has no address: nothing to answer.
        Err(omnihub_store::Error::Conflict(_)) => return Ok(()),
        Err(error) => return Err(error),
    };
    let kind = target.inbox.kind;
    let Some((answer, hands_over)) = choose_answer(state, &text, kind, &target.conversation).await? else {
        return Ok(());
    };
    let window = reply_window(kind, target.conversation.last_customer_message_at, state.store.now());
    let Ok(sending) = check_reply(kind, window, false) else {
        return Ok(());
    };
    let recorded = state
        .store
        .record_bot_reply(&stored.conversation_id, &answer, hands_over)
        .await?;
    let Some(pending) = recorded else {
        return Ok(());
    };
    let delivery = state
        .courier
        .deliver(&target, &pending, sending, state.store.now())
        .await;
    let finished = state.store.finish_reply(&pending.id, delivery).await?;
    tracing::info!(conversation = %stored.conversation_id, message = %finished.id, status = ?finished.status,
                   "answered automatically");
    Ok(())
}

/// The customer's latest order when they ask where it is, else the frequent question that
/// matches confidently; `None` leaves the message to a person. On a channel that does not
/// know who writes (the web chat), an order is only told about to whoever gives its number
/// and the e-mail address it was placed with. With the answer: whether the bot leaves the
/// conversation to people after it.
async fn choose_answer(
    state: &AppState,
    text: &str,
    kind: InboxKind,
    conversation: &Conversation,
) -> Result<Option<(String, bool)>, omnihub_store::Error> {
    if !kind.knows_the_sender() {
        if let Some(answer) = looked_up_order_answer(state, text, conversation.claimed_email.as_deref()).await? {
            return Ok(Some(answer));
        }
    } else if let Some(language) = asks_for_order(text)
        && let Some(answer) = latest_order_answer(state, &conversation.customer_id, language).await?
    {
        return Ok(Some((answer, false)));
    }
    let entries = state.store.ranked_faq_entries().await?;
    Ok(confident_match(&entries, text)
        .and_then(|found| entries.get(found.index))
        .map(|entry| (entry.answer.clone(), false)))
}

/// Nothing when the customer has no order here: they may have ordered under another address,
/// which a person can find out.
async fn latest_order_answer(
    state: &AppState,
    customer_id: &str,
    language: Language,
) -> Result<Option<String>, omnihub_store::Error> {
    let filter = OrderFilter {
        customer_id: Some(customer_id.to_owned()),
        ..OrderFilter::default()
    };
    let latest = Page { after: None, limit: 1 };
    let (orders, _) = state.store.orders(&filter, &latest).await?;
    Ok(orders.first().map(|order| order_answer(order, language)))
}

/// The order the visitor names by number and e-mail address, like a shop's order-status
/// page: its status when both match, the same refusal whichever does not (after which the bot
/// leaves the chat to people: nobody goes on guessing with it), and a request for both when the
/// visitor asks about an order without them. `None` when the message is not about an order.
async fn looked_up_order_answer(
    state: &AppState,
    text: &str,
    claimed_email: Option<&str>,
) -> Result<Option<(String, bool)>, omnihub_store::Error> {
    let asked = asks_for_order(text);
    let language = asked.unwrap_or(Language::English);
    let lookup = order_lookup(text, claimed_email);
    let (Some(number), Some(email)) = (lookup.number, lookup.email) else {
        let about_an_order = asked.is_some() || lookup.number.is_some();
        return Ok(about_an_order.then(|| (order_lookup_request(language), false)));
    };
    let order = match state.store.order_by_number(&number.to_string()).await {
        Ok(order) => Some(order),
        Err(omnihub_store::Error::NotFound(_)) => None,
        Err(error) => return Err(error),
    };
    let Some(order) = order else {
        return Ok(Some((order_lookup_failed(language), true)));
    };
    let customer_emails = match &order.customer_id {
        Some(id) => state
            .store
            .customer(id)
            .await?
            .identities
            .into_iter()
            .filter(|i| i.kind == IdentityKind::Email)
            .map(|i| i.value)
            .collect(),
        None => Vec::new(),
    };
    Ok(Some(if order_placed_with(&order, &customer_emails, &email) {
        (order_answer(&order, language), false)
    } else {
        (order_lookup_failed(language), true)
    }))
}

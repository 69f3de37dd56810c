//! Where channels deliver messages: each provider's own webhook (`/hooks/{inbox_id}`, its
//! native payload, proven by its own signature scheme) and the open API channel
//! (`POST /api/v1/inboxes/{id}/messages`, proven by the inbox's secret or an API key).
//!
//! Both live outside the bearer-key API: providers hold no API keys. Signatures are checked
//! on the raw body, before anything is parsed or stored. Whatever a valid call carries that
//! is not understood is acknowledged (200), so that providers stop retrying it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use omnihub_domain::ErrorCode;
use omnihub_domain::access::Scope;
use omnihub_domain::conversations::inbound::{self, ApiMessage, Inbound};
use omnihub_domain::conversations::{Credentials, Inbox, InboxKind, email, signatures};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::webhooks;
use omnihub_store::{Received, StoredMessage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::json::Json;
use crate::problem::{ApiError, Problem};
use crate::query::Query;

pub fn hooks() -> Router<AppState> {
    Router::new()
        .route("/hooks/{inbox_id}", get(verify_hook).post(receive_hook))
        .route("/api/v1/inboxes/{id}/messages", post(post_channel_message))
}

/// The request body as sent: signatures are over these exact bytes.
pub struct RawBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    rejection.body_text(),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, rejection.body_text())
            }
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Meta's verification handshake (WhatsApp, Messenger, Instagram): with the inbox's
/// `verify_token`, the `hub.challenge` is echoed; otherwise 401 `invalid_signature`.
#[utoipa::path(get, path = "/hooks/{inbox_id}", tag = "conversations", security(),
    params(("inbox_id" = String, Path), Handshake),
    responses((status = 200, description = "the challenge", content_type = "text/plain"),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn verify_hook(
    State(state): State<AppState>,
    Path(inbox_id): Path<String>,
    Query(handshake): Query<Handshake>,
) -> Result<Response, ApiError> {
    let (_, credentials) = state.store.inbox_with_credentials(&inbox_id).await?;
    let named = signatures::verify_handshake(
        &credentials,
        handshake.mode.as_deref(),
        handshake.verify_token.as_deref(),
    );
    if !named {
        return Err(ApiError::invalid_signature());
    }
    let challenge = handshake.challenge.unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain")], challenge).into_response())
}

/// What a webhook call changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookAnswer {
    /// Messages stored now.
    pub received: usize,
    /// Messages stored before: the provider retried.
    pub duplicates: usize,
    /// Receipts that moved a message's status.
    pub status_changes: usize,
    /// Updates acknowledged without action.
    pub ignored: usize,
}

impl From<Received> for HookAnswer {
    fn from(received: Received) -> Self {
        HookAnswer {
            received: received.messages.len(),
            duplicates: received.duplicates,
            status_changes: received.status_changes,
            ignored: received.ignored,
        }
    }
}

/// A provider's webhook, in its native payload: Telegram updates
/// (`X-Telegram-Bot-Api-Secret-Token`), WhatsApp Cloud API, Messenger and Instagram
/// (`X-Hub-Signature-256`), Viber (`X-Viber-Content-Signature`), raw MIME from an e-mail
/// relay (`Authorization: Bearer <inbound_secret>`). A bad or missing signature is
/// 401 `invalid_signature` and stores nothing; a retried message is stored once.
#[utoipa::path(post, path = "/hooks/{inbox_id}", tag = "conversations", security(),
    params(("inbox_id" = String, Path)), request_body(content = Object, description = "the provider's payload"),
    responses((status = 200, body = HookAnswer), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn receive_hook(
    State(state): State<AppState>,
    Path(inbox_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<HookAnswer>, ApiError> {
    let (inbox, credentials) = state.store.inbox_with_credentials(&inbox_id).await?;
    let proof = headers
        .get(signatures::header(inbox.kind))
        .and_then(|v| v.to_str().ok());
    check_signature(&state, &inbox, &credentials, proof, &body)?;
    let items = if inbox.kind == InboxKind::Email {
        email_items(&state, &inbox, &body).await?
    } else {
        inbound::parse(inbox.kind, &body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, e.to_string()))?
    };
    log_ignored(&inbox, &items);
    let received = state.store.receive(&inbox, items).await?;
    super::answers::answer_in_background(&state, &received.messages);
    Ok(Json(received.into()))
}

/// A mail posted by the inbound relay. A reply to one of the inbox's mails joins that
/// mail's conversation (threaded by `In-Reply-To` / `References`); any other starts or
/// continues the sender's. A body that is no mail is acknowledged, so the relay stops.
async fn email_items(state: &AppState, inbox: &Inbox, raw: &[u8]) -> Result<Vec<Inbound>, ApiError> {
    let mut read = match email::parse(raw) {
        Ok(read) => read,
        Err(unreadable) => return Ok(vec![Inbound::Ignored(inbound::Ignored(format!("email: {unreadable}")))]),
    };
    if let Some(address) = state.store.email_thread_address(&inbox.id, &read.answers).await? {
        read.message.address = address;
    }
    Ok(vec![Inbound::Message(read.message)])
}

fn check_signature(
    state: &AppState,
    inbox: &Inbox,
    credentials: &Credentials,
    proof: Option<&str>,
    body: &[u8],
) -> Result<(), ApiError> {
    let now_unix = state.store.now().millis() / 1000;
    signatures::verify(credentials, proof, body, now_unix).map_err(|refused| {
        tracing::warn!(inbox = %inbox.id, provider = inbox.kind.as_str(), reason = %refused, "webhook refused");
        ApiError::invalid_signature()
    })
}

fn log_ignored(inbox: &Inbox, items: &[Inbound]) {
    for item in items {
        if let Inbound::Ignored(inbound::Ignored(what)) = item {
            tracing::debug!(inbox = %inbox.id, what = %what, "webhook update ignored");
        }
    }
}

/// Post a customer's message from a custom channel. Authenticated by the inbox's secret
/// (`Omnihub-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`) or by a secret
/// API key with `conversations:write`. A `message_id` sent again is stored once (200); so is a
/// signed call without one sent again (the same signature time and body).
#[utoipa::path(post, path = "/api/v1/inboxes/{id}/messages", tag = "conversations", request_body = ApiMessage,
    params(("id" = String, Path), ("Omnihub-Signature" = Option<String>, Header, description = "Signed with the inbox's secret")),
    responses((status = 201, body = StoredMessageView), (status = 200, body = StoredMessageView, description = "a message_id stored before"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn post_channel_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (inbox, credentials) = state.store.inbox_with_credentials(&id).await?;
    if inbox.kind != InboxKind::Api {
        return Err(ApiError::not_found("API channel inbox"));
    }
    let signed = authenticate_channel(&state, &inbox, &credentials, &headers, &body).await?;
    let posted: ApiMessage = crate::json::parse(&body)?;
    // Without a message_id of its own, a signed call is named by what its signature covers:
    // the same call replayed within the signature's tolerance is stored once.
    let fresh_id = signed
        .and_then(|header| webhooks::signed_call_id(&header, &body))
        .unwrap_or_else(|| id::new(Kind::Message));
    let message = posted.validate(&inbox.id, fresh_id, state.store.phone_region())?;
    let received = state.store.receive(&inbox, vec![Inbound::Message(message)]).await?;
    super::answers::answer_in_background(&state, &received.messages);
    Ok(match received.messages.into_iter().next() {
        Some(stored) => (StatusCode::CREATED, Json(StoredMessageView::from(stored))).into_response(),
        None => Json(StoredMessageView::duplicate()).into_response(),
    })
}

/// A bearer key with `conversations:write`, or else the inbox's own signature; answers the
/// signature header when that was the proof.
async fn authenticate_channel(
    state: &AppState,
    inbox: &Inbox,
    credentials: &Credentials,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer else {
        let proof = headers
            .get(signatures::header(InboxKind::Api))
            .and_then(|v| v.to_str().ok());
        check_signature(state, inbox, credentials, proof, body)?;
        return Ok(proof.map(str::to_owned));
    };
    match state.store.authenticate(token).await? {
        Some(principal) if principal.channel().is_none() && principal.allows(Scope::ConversationsWrite) => Ok(None),
        Some(_) => Err(ApiError::forbidden(format!(
            "this key lacks the scope {}",
            Scope::ConversationsWrite
        ))),
        None => Err(ApiError::unauthorized()),
    }
}

/// Where a custom channel's message landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredMessageView {
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
    pub customer_id: Option<String>,
    /// True when this `message_id` was stored before and nothing changed now.
    pub duplicate: bool,
}

impl StoredMessageView {
    fn duplicate() -> Self {
        StoredMessageView {
            message_id: None,
            conversation_id: None,
            customer_id: None,
            duplicate: true,
        }
    }
}

impl From<StoredMessage> for StoredMessageView {
    fn from(stored: StoredMessage) -> Self {
        StoredMessageView {
            message_id: Some(stored.message_id),
            conversation_id: Some(stored.conversation_id),
            customer_id: Some(stored.customer_id),
            duplicate: false,
        }
    }
}

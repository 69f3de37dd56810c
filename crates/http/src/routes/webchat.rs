//! The web chat of the merchant's own widget. A visitor's browser opens a session (public,
//! limited per address), writes with the session's token, and follows the replies of agents
//! and the bot as Server-Sent Events read from the event log. Replies never leave over HTTP:
//! the stream is their delivery.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::stream::{self, Stream};
use omnihub_domain::ErrorCode;
use omnihub_domain::access::PublicLimit;
use omnihub_domain::conversations::inbound::Inbound;
use omnihub_domain::conversations::webchat::{MAX_STREAMS_PER_VISITOR, VisitorMessage, names_an_order};
use omnihub_domain::conversations::{Inbox, InboxKind, SenderKind};
use omnihub_domain::events::{Event, EventType};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::network::ClientAddress;
use omnihub_store::WebchatSession;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::json::{Created, Json};
use crate::problem::{ApiError, Problem};
use crate::query::Query;
use crate::{AppState, limits};

/// Other server processes' replies are seen by polling this often.
const POLL: Duration = Duration::from_millis(250);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webchat/{inbox_id}/sessions", post(start_webchat_session))
        .route("/webchat/{inbox_id}/messages", post(post_visitor_message))
        .route("/webchat/{inbox_id}/stream", get(stream_visitor_replies))
        .layer(map_response(security_headers))
}

/// The chat's answers are data for the widget's script, never a page: nothing in them may run,
/// be framed or be sniffed into HTML, and no address leaves with them.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A new visitor of the web chat: `token` is shown once and authenticates the visitor's
/// messages and stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebchatSessionView {
    pub visitor_id: String,
    pub token: String,
}

impl From<WebchatSession> for WebchatSessionView {
    fn from(session: WebchatSession) -> Self {
        WebchatSessionView {
            visitor_id: session.visitor_id,
            token: session.token,
        }
    }
}

/// Open a web chat session for a visitor (public: the widget holds no key). Limited to
/// 20 sessions per client address and minute (429 `rate_limited`).
#[utoipa::path(post, path = "/webchat/{inbox_id}/sessions", tag = "conversations", security(),
    params(("inbox_id" = String, Path)),
    responses((status = 201, body = WebchatSessionView),
        (status = 403, body = Problem, description = "from the pages of a site no publishable key names", content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn start_webchat_session(
    State(state): State<AppState>,
    Path(inbox_id): Path<String>,
    client: Option<Extension<ClientAddress>>,
) -> Result<Created<WebchatSessionView>, ApiError> {
    let inbox = webchat_inbox(&state, &inbox_id).await?;
    let address = limits::client_of(client);
    limits::within(
        &state,
        PublicLimit::ChatSessions,
        &inbox.id,
        &address,
        "too many chat sessions from this address",
    )?;
    let session = state.store.start_webchat_session(&inbox.id).await?;
    Ok(Created(session.into()))
}

/// The live streams each visitor follows now, by inbox and visitor.
static STREAMS: LazyLock<Mutex<HashMap<(String, String), u32>>> = LazyLock::new(Default::default);

/// One of a visitor's live streams, given back when the stream ends (however it ends).
struct StreamSlot((String, String));

impl StreamSlot {
    fn take(inbox_id: &str, visitor_id: &str) -> Result<StreamSlot, ApiError> {
        let key = (inbox_id.to_owned(), visitor_id.to_owned());
        let mut streams = STREAMS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let open = streams.entry(key.clone()).or_default();
        if *open >= MAX_STREAMS_PER_VISITOR {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("at most {MAX_STREAMS_PER_VISITOR} live streams per visitor; close one first"),
            ));
        }
        *open += 1;
        Ok(StreamSlot(key))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = STREAMS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(open) = streams.get_mut(&self.0) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.0);
            }
        }
    }
}

async fn webchat_inbox(state: &AppState, inbox_id: &str) -> Result<Inbox, ApiError> {
    let inbox = state.store.inbox(inbox_id).await?;
    if inbox.kind != InboxKind::Webchat {
        return Err(ApiError::not_found("web chat inbox"));
    }
    Ok(inbox)
}

/// The visitor holding the token (`Authorization: Bearer`, or `?token=` for `EventSource`,
/// which cannot set headers); 401 `unauthorized` otherwise.
async fn visitor(
    state: &AppState,
    inbox: &Inbox,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<String, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = bearer.or(query).filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthorized());
    };
    state
        .store
        .webchat_visitor(&inbox.id, token)
        .await?
        .ok_or_else(ApiError::unauthorized)
}

/// Where a visitor's message landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitorMessageView {
    pub message_id: Option<String>,
    /// True when this `message_id` was stored before and nothing changed now.
    pub duplicate: bool,
}

/// A visitor writes (`Authorization: Bearer <token>`). A `name` is kept on the customer; an
/// `email` is only a claim: it is kept on the conversation (`claimed_email`) for an agent to
/// confirm and links the visitor to no customer.
#[utoipa::path(post, path = "/webchat/{inbox_id}/messages", tag = "conversations", security(),
    params(("inbox_id" = String, Path)), request_body = VisitorMessage,
    responses((status = 201, body = VisitorMessageView), (status = 200, body = VisitorMessageView, description = "a message_id stored before"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, description = "from the pages of a site no publishable key names", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, description = "30 messages a minute per visitor; 5 naming an order number an hour per client address", content_type = "application/problem+json")))]
pub async fn post_visitor_message(
    State(state): State<AppState>,
    Path(inbox_id): Path<String>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddress>>,
    Json(posted): Json<VisitorMessage>,
) -> Result<Response, ApiError> {
    let inbox = webchat_inbox(&state, &inbox_id).await?;
    let visitor = visitor(&state, &inbox, &headers, None).await?;
    limits::within(
        &state,
        PublicLimit::ChatMessages,
        &inbox.id,
        &visitor,
        "too many messages from this visitor",
    )?;
    if names_an_order(&posted) {
        let address = limits::client_of(client);
        limits::within(
            &state,
            PublicLimit::OrderLookups,
            &inbox.id,
            &address,
            "too many order lookups from this address",
        )?;
    }
    let message = posted.validate(&visitor, id::new(Kind::Message), state.store.phone_region())?;
    let received = state.store.receive(&inbox, vec![Inbound::Message(message)]).await?;
    super::answers::answer_in_background(&state, &received.messages);
    let view = |message_id: Option<String>| VisitorMessageView {
        duplicate: message_id.is_none(),
        message_id,
    };
    Ok(match received.messages.into_iter().next() {
        Some(stored) => (StatusCode::CREATED, Json(view(Some(stored.message_id)))).into_response(),
        None => Json(view(None)).into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VisitorStreamParams {
    /// The visitor's token, for browsers' `EventSource`, which cannot send headers.
    pub token: Option<String>,
}

/// A reply as the visitor's widget shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitorReply {
    pub message_id: String,
    pub text: Option<String>,
    /// `agent` or `bot`.
    pub sender_kind: SenderKind,
    pub sent_at: Option<omnihub_domain::Timestamp>,
}

/// Follow the replies to this visitor (agents' and the bot's) as Server-Sent Events of type
/// `message`; each event's `id` resumes the stream with `Last-Event-ID`. A visitor follows at
/// most 3 streams at once (429 `rate_limited`).
#[utoipa::path(get, path = "/webchat/{inbox_id}/stream", tag = "conversations", security(),
    params(("inbox_id" = String, Path), VisitorStreamParams, ("Last-Event-ID" = Option<i64>, Header)),
    responses((status = 200, description = "text/event-stream of VisitorReply", content_type = "text/event-stream"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, description = "3 live streams per visitor", content_type = "application/problem+json")))]
pub async fn stream_visitor_replies(
    State(state): State<AppState>,
    Path(inbox_id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<VisitorStreamParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let inbox = webchat_inbox(&state, &inbox_id).await?;
    let visitor_id = visitor(&state, &inbox, &headers, params.token.as_deref()).await?;
    let slot = StreamSlot::take(&inbox.id, &visitor_id)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let after = match resume {
        Some(seq) => seq,
        None => state.store.last_event_seq().await?,
    };
    let follow = VisitorFollow {
        wake: state.store.watch_log(),
        state,
        inbox_id: inbox.id,
        visitor_id,
        conversation_id: None,
        after,
        pending: Vec::new().into_iter(),
        _slot: slot,
    };
    let replies = stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|reply| (Ok(reply), follow))
    });
    Ok(Sse::new(replies).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The reader behind one visitor's stream: `message.sent` events of the inbox, kept when
/// they belong to the visitor's conversation.
struct VisitorFollow {
    state: AppState,
    inbox_id: String,
    visitor_id: String,
    /// Found once the visitor has written.
    conversation_id: Option<String>,
    after: i64,
    pending: std::vec::IntoIter<Event>,
    wake: tokio::sync::watch::Receiver<u64>,
    /// Held while the stream lives.
    _slot: StreamSlot,
}

impl VisitorFollow {
    /// The next reply to send, waiting for one; `None` ends the stream (shutdown).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(event) = self.pending.next() {
                self.after = event.seq;
                if let Some(reply) = self.reply(&event).await {
                    return Some(reply);
                }
            }
            if *self.state.shutdown.borrow() {
                return None;
            }
            let types = [EventType::MessageSent.as_str().to_owned()];
            match self.state.store.events_after(self.after, &types, 200).await {
                Ok(events) if !events.is_empty() => {
                    self.pending = events.into_iter();
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "visitor stream could not read the log"),
            }
            let mut shutdown = self.state.shutdown.clone();
            tokio::select! {
                _ = self.wake.changed() => {}
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// The event as the visitor sees it, when it is a reply to them.
    async fn reply(&mut self, event: &Event) -> Option<SseEvent> {
        if event.data["inbox_id"].as_str() != Some(self.inbox_id.as_str()) {
            return None;
        }
        if self.conversation_id.is_none() {
            let store = &self.state.store;
            self.conversation_id = store
                .webchat_conversation(&self.inbox_id, &self.visitor_id)
                .await
                .ok()?;
        }
        if event.data["conversation_id"].as_str() != self.conversation_id.as_deref() {
            return None;
        }
        let message = self
            .state
            .store
            .message(event.data["message_id"].as_str()?)
            .await
            .ok()?;
        let reply = VisitorReply {
            message_id: message.id,
            text: message.text,
            sender_kind: message.sender_kind,
            sent_at: message.sent_at,
        };
        let data = serde_json::to_string(&reply).ok()?;
        Some(
            SseEvent::default()
                .id(event.seq.to_string())
                .event("message")
                .data(data),
        )
    }
}

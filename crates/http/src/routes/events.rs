//! The event log, as pages and as a live Server-Sent Events stream.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use omnihub_domain::events::{Event, EventType};
use omnihub_store::KEYS_TRUSTED_FOR;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{EventsRead, Secret};
use crate::json::Json;
use crate::problem::ApiError;
use crate::query::Query;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list_events))
        .route("/events/stream", get(stream_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events with a larger `seq` (default 0: from the start).
    pub after: Option<i64>,
    /// The `next_cursor` of the previous page (the same as `after`; it wins over `after`).
    pub cursor: Option<String>,
    /// Comma-separated event types to keep (`order.placed,order.cancelled`); each one the hub
    /// writes.
    #[param(value_type = Option<Vec<EventType>>, style = Form, explode = false)]
    pub types: Option<String>,
    /// At most this many (1–500, default 50).
    pub limit: Option<i64>,
}

impl EventParams {
    /// Where reading starts: `cursor`, else `after`, else the start of the log.
    fn after(&self) -> Result<i64, ApiError> {
        match &self.cursor {
            Some(cursor) => seq(cursor)
                .ok_or_else(|| ApiError::invalid_field("cursor", "invalid", "is not a cursor this server gave")),
            None => Ok(self.after.unwrap_or(0)),
        }
    }

    /// The event types asked for, as they are written in the log.
    fn types(&self) -> Result<Vec<String>, ApiError> {
        self.types
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| match EventType::parse(t) {
                Some(kind) => Ok(kind.as_str().to_owned()),
                None => Err(ApiError::invalid_field(
                    "types",
                    "unknown",
                    format!("{t} is not an event type"),
                )),
            })
            .collect()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<Event>,
    /// Pass as `cursor` (it is the `seq` to pass as `after`) for the next page; null when there
    /// is nothing more yet.
    pub next_cursor: Option<String>,
}

/// Read the event log in order.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage)))]
pub async fn list_events(
    State(state): State<AppState>,
    _: Secret<EventsRead>,
    Query(params): Query<EventParams>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "out_of_range",
            "must be between 1 and 500",
        ));
    }
    let data = state
        .store
        .events_after(params.after()?, &params.types()?, limit)
        .await?;
    let next_cursor = if data.len() as i64 == limit {
        data.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Json(EventPage { data, next_cursor }))
}

/// Follow the event log live as Server-Sent Events: each event's `id` is its `seq` and its
/// `event` its type. Reconnect with `Last-Event-ID` (or `?after=`) to resume without gaps.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(EventParams, ("Last-Event-ID" = Option<i64>, Header)),
    responses((status = 200, description = "text/event-stream of events", content_type = "text/event-stream")))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Secret<EventsRead>,
    headers: HeaderMap,
    Query(params): Query<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Browsers send no Last-Event-ID rather than an empty one; an empty one is no seq.
    let after = match headers.get("last-event-id") {
        Some(resume) => resume.to_str().ok().and_then(seq).ok_or_else(|| {
            ApiError::invalid_field(
                "Last-Event-ID",
                "invalid",
                "must be the id (seq) of an event this stream sent",
            )
        })?,
        None => params.after()?,
    };
    let follow = Follow {
        state: state.clone(),
        after,
        types: params.types()?,
        pending: Vec::new().into_iter(),
        wake: state.store.watch_log(),
        key_id: caller.0.key_id().to_owned(),
        revocations: state.store.watch_revocations(),
        key_checked: Instant::now(),
    };
    let events = stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|event| (Ok(event), follow))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A `seq` as given back by a client (a cursor, a `Last-Event-ID`).
fn seq(text: &str) -> Option<i64> {
    text.trim().parse().ok().filter(|seq: &i64| *seq >= 0)
}

/// The reader behind one SSE connection.
struct Follow {
    state: AppState,
    after: i64,
    types: Vec<String>,
    pending: std::vec::IntoIter<Event>,
    wake: tokio::sync::watch::Receiver<u64>,
    /// The key the stream was opened with: revoking it ends the stream.
    key_id: String,
    revocations: tokio::sync::watch::Receiver<u64>,
    /// When the database last said the key is live.
    key_checked: Instant,
}

/// Other server processes' events are seen by polling this often.
const POLL: Duration = Duration::from_millis(250);

/// A stream asks the database whether its key is still live this often, so that a key revoked
/// on another server ends the stream within the time other servers trust a key (10 s).
const KEY_CHECK: Duration = Duration::from_secs(KEYS_TRUSTED_FOR.as_secs() / 2);

impl Follow {
    /// The next event to send, waiting for one; `None` ends the stream (shutdown, or the key
    /// was revoked).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if !self.key_is_live().await {
                return None;
            }
            if let Some(event) = self.pending.next() {
                self.after = event.seq;
                return Some(sse_event(&event));
            }
            if *self.state.shutdown.borrow() {
                return None;
            }
            match self.state.store.events_after(self.after, &self.types, 200).await {
                Ok(events) if !events.is_empty() => {
                    self.pending = events.into_iter();
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "event stream could not read the log"),
            }
            let mut shutdown = self.state.shutdown.clone();
            tokio::select! {
                _ = self.wake.changed() => {}
                _ = self.revocations.changed() => {}
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Whether the stream's key may still read: revoked here is seen at once, revoked on
    /// another server at the next check of the database.
    async fn key_is_live(&mut self) -> bool {
        if self.state.store.key_revoked_here(&self.key_id) {
            return false;
        }
        if self.key_checked.elapsed() < KEY_CHECK {
            return true;
        }
        match self.state.store.key_is_live(&self.key_id).await {
            Ok(live) => {
                self.key_checked = Instant::now();
                live
            }
            Err(error) => {
                tracing::warn!(%error, "event stream could not check its key");
                true
            }
        }
    }
}

fn sse_event(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event(event.kind.clone())
        .data(serde_json::to_string(event).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use omnihub_domain::ErrorCode;

    use super::*;

    fn asking_for(types: &str) -> EventParams {
        EventParams {
            after: None,
            cursor: None,
            types: Some(types.to_owned()),
            limit: None,
        }
    }

    #[test]
    fn only_event_types_the_hub_writes_may_be_asked_for() {
        let types = asking_for(" order.placed, cart.created,").types().unwrap();
        assert_eq!(types, ["order.placed", "cart.created"]);
        let refused = asking_for("order.placed,order.shipped").types().unwrap_err();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        assert_eq!(refused.errors[0].field, "types");
        assert_eq!(refused.errors[0].code, "unknown");
    }
}

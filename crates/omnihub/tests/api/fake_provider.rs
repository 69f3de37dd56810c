//! A messaging provider's API on 127.0.0.1 (Telegram, WhatsApp, Messenger, Viber …), for the
//! tests of replies: it records every request and answers as it is told.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// The customer who writes on WhatsApp.
pub const ANN_WA_ID: &str = "4915112345678";

/// A provider's API on 127.0.0.1: records every request, answers from a script and then with
/// its standing answer.
#[derive(Clone)]
pub struct Fake {
    pub base: String,
    state: Arc<FakeState>,
}

struct FakeState {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<(u16, Value)>>,
    standing: (u16, Value),
}

#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Fake {
    pub async fn start(standing: Value) -> Fake {
        Fake::scripted(&[], standing).await
    }

    pub async fn scripted(script: &[(u16, Value)], standing: Value) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = Arc::new(FakeState {
            seen: Mutex::default(),
            script: Mutex::new(script.iter().cloned().collect()),
            standing: (200, standing),
        });
        let app = Router::new().fallback(answer).with_state(state.clone());
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, state }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the provider was called")
    }
}

async fn answer(State(state): State<Arc<FakeState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    state.seen.lock().unwrap().push(Seen {
        target: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers,
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let (status, body) = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.standing.clone());
    (StatusCode::from_u16(status).unwrap(), axum::Json(body))
}

/// A WhatsApp Cloud API webhook carrying `value`, as Meta sends it.
pub fn whatsapp_value(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": value}]}]})
}

/// Ann's WhatsApp text message `wamid`.
pub fn whatsapp_text(wamid: &str, text: &str) -> Value {
    whatsapp_value(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Ann Lee"}, "wa_id": ANN_WA_ID}],
        "messages": [{"from": ANN_WA_ID, "id": wamid, "timestamp": "1790000000", "type": "text", "text": {"body": text}}]}))
}

/// WhatsApp's answer to a message it took as `wamid`.
pub fn whatsapp_accepted(wamid: &str) -> Value {
    json!({"messaging_product": "whatsapp", "contacts": [{"input": ANN_WA_ID, "wa_id": ANN_WA_ID}],
           "messages": [{"id": wamid}]})
}

//! Events: every state change appends one to the event log, in the same transaction.

use serde::Serialize;
use serde_json::Value;

use crate::Timestamp;

/// An event about to be appended to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `<resource>.<past-tense verb>`, e.g. `product.created`.
    pub kind: &'static str,
    /// The JSON document, written once, as it is stored.
    pub data: String,
}

impl NewEvent {
    pub fn new(kind: &'static str, data: impl Serialize) -> Self {
        NewEvent {
            kind,
            data: serde_json::to_string(&data).unwrap_or_else(|_| "null".into()),
        }
    }
}

/// An event as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Position in the log; strictly increasing.
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

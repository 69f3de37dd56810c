//! Events: every state change appends one to the event log, in the same transaction.

use serde::Serialize;
use serde_json::Value;

use crate::Timestamp;

string_enum! {
    /// The type of an event: `<resource>.<past-tense verb>`, e.g. `product.created`. Every
    /// type the hub writes to its log; webhook endpoints and readers of the log filter by them.
    pub enum EventType {
        ApiKeyRevoked = "api_key.revoked",
        AvailabilityChanged = "availability.changed",
        CannedReplyCreated = "canned_reply.created",
        CartCreated = "cart.created",
        CartUpdated = "cart.updated",
        ChannelCreated = "channel.created",
        ChannelUpdated = "channel.updated",
        ConversationAssigned = "conversation.assigned",
        ConversationCreated = "conversation.created",
        ConversationReopened = "conversation.reopened",
        ConversationResolved = "conversation.resolved",
        ConversationUpdated = "conversation.updated",
        CustomerCreated = "customer.created",
        CustomerErased = "customer.erased",
        CustomerIdentityAdded = "customer.identity_added",
        CustomerMergeSuggested = "customer.merge_suggested",
        CustomerMerged = "customer.merged",
        CustomerUpdated = "customer.updated",
        FaqEntryCreated = "faq_entry.created",
        FulfillmentCollected = "fulfillment.collected",
        FulfillmentCreated = "fulfillment.created",
        FulfillmentDelivered = "fulfillment.delivered",
        FulfillmentReadyForPickup = "fulfillment.ready_for_pickup",
        FulfillmentShipped = "fulfillment.shipped",
        InboxCreated = "inbox.created",
        InboxUpdated = "inbox.updated",
        InventoryLevelChanged = "inventory.level_changed",
        ListingUpdated = "listing.updated",
        LocationCreated = "location.created",
        LocationUpdated = "location.updated",
        LoyaltyPointsChanged = "loyalty.points_changed",
        MessageCreated = "message.created",
        MessageReceived = "message.received",
        MessageSent = "message.sent",
        MessageStatusChanged = "message.status_changed",
        OrderCancelled = "order.cancelled",
        OrderPaid = "order.paid",
        OrderPlaced = "order.placed",
        OrderStatusChanged = "order.status_changed",
        ProductCreated = "product.created",
        ProductUpdated = "product.updated",
        ReservationCreated = "reservation.created",
        ReservationExpired = "reservation.expired",
        ReservationReleased = "reservation.released",
        ReturnReceived = "return.received",
        UserCreated = "user.created",
        UserDeactivated = "user.deactivated",
        UserPasswordSet = "user.password_set",
        WebhookEndpointCreated = "webhook_endpoint.created",
        WebhookEndpointDeleted = "webhook_endpoint.deleted",
        WebhookEndpointReplayed = "webhook_endpoint.replayed",
        WebhookEndpointUpdated = "webhook_endpoint.updated",
    }
}

/// An event about to be appended to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    /// The JSON document, written once, as it is stored.
    pub data: String,
}

impl NewEvent {
    pub fn new(kind: EventType, data: impl Serialize) -> Self {
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
    /// The type as it was written. Kept as the stored string rather than parsed: a row of a
    /// type this version no longer writes (the log outlives versions) is still read and passed
    /// on as it is, never refused; it matches only the filters that take it (`*`, `resource.*`).
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = EventType))]
    pub kind: String,
    pub occurred_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips_through_its_own_string() {
        crate::string_enum::assert_spelled_once(EventType::ALL, EventType::as_str, EventType::parse);
        for kind in EventType::ALL {
            let (resource, verb) = kind.as_str().split_once('.').unwrap();
            let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(word(resource) && word(verb), "{kind} is <resource>.<verb>");
        }
    }

    #[test]
    fn a_new_event_keeps_its_type_and_writes_its_document_once() {
        let event = NewEvent::new(EventType::OrderPlaced, serde_json::json!({"number": "#1001"}));
        assert_eq!(event.kind.as_str(), "order.placed");
        assert_eq!(event.data, r##"{"number":"#1001"}"##);
    }
}

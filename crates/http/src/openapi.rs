//! The OpenAPI 3.1 document, generated from the route handlers and the domain types.

mod conventions;

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Omnihub API", description = "One catalog, inventory, order system, customer and inbox for every channel. \
        Conventions: bearer keys with scopes, problem+json errors with stable codes, Idempotency-Key on every POST, \
        version + If-Match, cursor pagination."),
    paths(
        create_channel, list_channels, get_channel, patch_channel,
        create_location, list_locations, get_location, patch_location,
        create_product, list_products, get_product, patch_product, put_listing, get_listing, price_parity,
        list_levels, adjust, transfer, list_movements, availability, reserve, get_reservation, release, replenishment,
        create_cart, get_cart, patch_cart, add_line, set_line, remove_line, checkout, customer_cart,
        take_order, list_orders, get_order, cancel_order, mark_order_paid, create_fulfillment, advance_fulfillment, return_items,
        create_customer, list_customers, get_customer, patch_customer, erase_customer, resolve_customer, merge_customer,
        customer_timeline, customer_loyalty, adjust_loyalty, export_customer,
        list_events, stream_events,
        create_webhook_endpoint, list_webhook_endpoints, get_webhook_endpoint, patch_webhook_endpoint,
        delete_webhook_endpoint, list_webhook_deliveries, replay_webhook_endpoint,
        revoke_key,
        create_inbox, list_inboxes, get_inbox, patch_inbox, list_conversations, get_conversation, list_conversation_messages, reply_to_conversation,
        patch_conversation,
        create_canned_reply, list_canned_replies, verify_hook, receive_hook, post_channel_message,
        create_faq_entry, list_faq_entries, start_webchat_session, post_visitor_message, stream_visitor_replies,
        healthz, readyz, metrics, openapi, docs,
    ),
    components(schemas(crate::problem::Problem, omnihub_domain::FieldError)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "catalog", description = "Sales channels, locations, products, listings, price parity"),
        (name = "inventory", description = "Levels, ledger, availability per channel, reservations, replenishment"),
        (name = "orders", description = "Carts, checkout, orders from every channel, fulfilment, returns"),
        (name = "customers", description = "Profiles, identities and resolution, merges, consents, timeline, loyalty, export and erasure"),
        (name = "events", description = "The event log"),
        (name = "keys", description = "API keys: revocation"),
        (name = "webhooks", description = "Endpoints that receive events, signed and retried; the delivery log; replay"),
        (name = "conversations", description = "Inboxes for every messaging channel, provider webhooks, conversations with \
            the customer's context, replies within reply windows, assignment, canned replies"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A secret key `sk_…` with scopes, or a publishable key `pk_…` of one sales channel",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let generated = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        serde_json::to_string_pretty(&conventions::apply(generated)).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use omnihub_domain::ErrorCode;
    use omnihub_domain::events::EventType;
    use serde_json::Value;

    #[test]
    fn event_types_and_problem_codes_are_listed_as_they_are_written() {
        let document: Value = serde_json::from_str(super::document()).unwrap();
        let schemas = &document["components"]["schemas"];
        let listed = |name: &str| -> Vec<String> {
            let values = schemas[name]["enum"].as_array().unwrap();
            values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        let written = |all: Vec<&str>| -> Vec<String> { all.into_iter().map(str::to_owned).collect() };
        assert_eq!(
            listed("EventType"),
            written(EventType::ALL.iter().map(|t| t.as_str()).collect())
        );
        assert_eq!(
            listed("ErrorCode"),
            written(ErrorCode::ALL.iter().map(|c| c.as_str()).collect())
        );
        assert_eq!(
            schemas["Event"]["properties"]["type"]["$ref"],
            "#/components/schemas/EventType"
        );
        assert_eq!(
            schemas["Delivery"]["properties"]["event_type"]["$ref"],
            "#/components/schemas/EventType"
        );
        assert_eq!(
            schemas["Problem"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
        let filter = &schemas["EventPattern"]["oneOf"];
        assert_eq!(filter[0]["$ref"], "#/components/schemas/EventType");
    }
}

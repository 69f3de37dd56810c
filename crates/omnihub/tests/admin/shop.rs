//! A real server with the demo shop (products, stock, orders and one account per role) on a
//! fresh database: a temporary SQLite file, or a new PostgreSQL database.

use std::sync::Arc;

use omnihub::demo::{self, Login};
use omnihub::{Application, Settings, bootstrap_owner_key, open_store};
use omnihub_domain::Timestamp;
use omnihub_domain::clock::ManualClock;
use omnihub_domain::conversations::signatures::hub_signature;
use omnihub_domain::conversations::{InboxKind, NewInbox};
use omnihub_domain::users::Role;
use omnihub_store::{Page, Store};
use serde_json::{Value, json};

use crate::fake_provider::whatsapp_text;
use crate::scratch::Scratch;

const OWNER_KEY: &str = "sk_test_admin_owner_0123456789";
/// What the shop's WhatsApp inbox shares with Meta: it signs the webhooks.
const WHATSAPP_APP_SECRET: &str = "meta-app-secret-0123456789";

pub struct Shop {
    pub base: String,
    pub clock: ManualClock,
    logins: Vec<Login>,
    app: Option<Application>,
    /// Last: the database goes once the server has stopped.
    _scratch: Scratch,
}

impl Shop {
    /// The demo shop on SQLite, or on PostgreSQL (`None`, skipped, when none is configured
    /// outside CI).
    pub async fn start(on_postgres: bool) -> Option<Shop> {
        let scratch = if on_postgres {
            Scratch::postgres("omnihub_admin").await?
        } else {
            Scratch::folder("omnihub-admin-test")
        };
        let settings = scratch.settings(base_settings());
        // Noon UTC: the demo's orders and the test's are all "today".
        let clock = ManualClock::at(Timestamp(
            1_790_000_000_000 - 1_790_000_000_000 % 86_400_000 + 43_200_000,
        ));
        let store = open_store(&settings, Arc::new(clock.clone()))
            .await
            .expect("database opens");
        bootstrap_owner_key(&store, Some(OWNER_KEY)).await.expect("owner key");
        let made = demo::seed(&store).await.expect("demo shop").expect("an empty database");
        let app = Application::start(&settings, store).await.expect("server starts");
        Some(Shop {
            base: format!("http://{}", app.address),
            clock,
            logins: made.logins,
            app: Some(app),
            _scratch: scratch,
        })
    }

    pub fn store(&self) -> &Store {
        &self.app.as_ref().expect("running").store
    }

    /// The demo account of a role: its e-mail address and password.
    pub fn login(&self, role: Role) -> (&str, &str) {
        let login = self
            .logins
            .iter()
            .find(|l| l.role == role)
            .expect("a demo account per role");
        (&login.email, &login.password)
    }

    async fn id_named(&self, name: &str) -> String {
        let all = Page {
            after: None,
            limit: 500,
        };
        let (channels, _) = self.store().channels(&all).await.expect("channels");
        let (locations, _) = self.store().locations(&all).await.expect("locations");
        channels
            .into_iter()
            .find(|c| c.draft.name == name)
            .map(|c| c.id)
            .or_else(|| locations.into_iter().find(|l| l.draft.name == name).map(|l| l.id))
            .expect("a demo channel or location of that name")
    }

    /// A new app order for pick-up at the Berlin store, sent through the API as an app would;
    /// answers the order.
    pub async fn order_from_the_app(&self, external_id: &str) -> Value {
        let body = json!({
            "channel_id": self.id_named("Mobile app").await,
            "external_id": external_id,
            "customer": {"identities": [{"kind": "email", "value": "new.customer@example.com"}]},
            "lines": [{"sku": "OH-105-S", "quantity": 1, "unit_price": {"amount": 13900, "currency": "EUR"}}],
            "fulfillment": {"method": "pickup", "location_id": self.id_named("Berlin Mitte Store").await}
        });
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/orders", self.base))
            .bearer_auth(OWNER_KEY)
            .json(&body)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status().as_u16(), 201, "the order is taken in");
        response.json().await.expect("an order")
    }

    /// A WhatsApp inbox whose replies go to the provider API at `api_base_url`; answers its id.
    pub async fn whatsapp_inbox(&self, api_base_url: &str) -> String {
        let credentials = json!({"access_token": "EAAG-token", "phone_number_id": "106540352242922",
                                 "app_secret": WHATSAPP_APP_SECRET, "verify_token": "wa-verify-0123456789"});
        let new = NewInbox {
            kind: InboxKind::Whatsapp,
            name: "Shop WhatsApp".to_owned(),
            credentials,
            api_base_url: Some(api_base_url.to_owned()),
            sales_channel_id: None,
            agent_ids: Vec::new(),
        };
        self.store().create_inbox(new).await.expect("an inbox").id
    }

    /// Ann's WhatsApp message `text`, delivered to the inbox's webhook as Meta sends it, signed.
    pub async fn whatsapp_message(&self, inbox_id: &str, wamid: &str, text: &str) {
        let payload = whatsapp_text(wamid, text);
        let body = payload.to_string();
        let response = reqwest::Client::new()
            .post(format!("{}/hooks/{inbox_id}", self.base))
            .header("content-type", "application/json")
            .header(
                "X-Hub-Signature-256",
                hub_signature(WHATSAPP_APP_SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .expect("the webhook answers");
        assert_eq!(response.status().as_u16(), 200, "WhatsApp's message is taken");
    }

    /// The inbox's one conversation.
    pub async fn conversation_in(&self, inbox_id: &str) -> omnihub_domain::conversations::Conversation {
        let filter = omnihub_store::ConversationFilter {
            inbox_id: Some(inbox_id.to_owned()),
            ..Default::default()
        };
        let page = Page { after: None, limit: 2 };
        let (mut found, _) = self.store().conversations(&filter, &page).await.expect("conversations");
        assert_eq!(found.len(), 1, "one conversation in the inbox");
        found.remove(0)
    }
}

fn base_settings() -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        db_max_connections: Some(8),
        // The fake providers and receivers listen on 127.0.0.1.
        allow_private_destinations: Some(true),
        ..Settings::default()
    }
}

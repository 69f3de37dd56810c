//! Settings set the shop up without the API: sales channels, locations, messaging inboxes,
//! API keys, webhook endpoints and people's passwords. Each action changes what it should, a
//! role that may not gets 403 and changes nothing, and the API's messages come back next to
//! the fields.

use omnihub_domain::catalog::Parity;
use omnihub_domain::conversations::Credentials;
use omnihub_domain::users::Role;
use omnihub_domain::webhooks::EndpointStatus;
use omnihub_store::Page as StorePage;

use crate::client::Browser;
use crate::on_both_backends;
use crate::shop::Shop;

on_both_backends!(
    managers_open_and_change_channels_and_locations,
    inboxes_are_connected_and_their_credentials_never_shown,
    a_revoked_key_is_refused_by_the_api_at_once,
    owners_register_pause_and_delete_webhook_endpoints,
    owners_set_other_peoples_passwords,
);

const ALL: StorePage = StorePage {
    after: None,
    limit: 500,
};

async fn signed_in(shop: &Shop, role: Role) -> Browser {
    let mut browser = Browser::new(&shop.base);
    let (email, password) = shop.login(role);
    assert_eq!(browser.log_in(email, password).await.status, 303);
    browser
}

const SETTINGS: &str = "/admin/settings";

fn leipzig<'a>(name: &'a str, country: &'a str, lat: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("kind", "store"),
        ("address.line1", "Markt 1"),
        ("address.postal_code", "04109"),
        ("address.city", "Leipzig"),
        ("address.country", country),
        ("geo.lat", lat),
        ("geo.lon", "12.37"),
        ("pickup", "on"),
        ("priority", "3"),
    ]
}

async fn managers_open_and_change_channels_and_locations(shop: Shop) {
    let mut manager = signed_in(&shop, Role::Manager).await;
    let store = shop.store();
    let locations_before = store.locations(&ALL).await.expect("locations").0.len();

    let bad = manager
        .submit(
            SETTINGS,
            "/admin/settings/locations",
            &leipzig("Leipzig Store", "Germany", "51.34"),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.has("id=\"location-address.country-error\"") && bad.has("ISO 3166-1 alpha-2"));
    assert!(bad.has("value=\"Leipzig Store\""), "what was typed stays");
    let half = manager
        .submit(
            SETTINGS,
            "/admin/settings/locations",
            &leipzig("Leipzig Store", "DE", ""),
        )
        .await;
    assert!(half.has("give both latitude and longitude"));
    assert_eq!(
        store.locations(&ALL).await.expect("locations").0.len(),
        locations_before
    );

    let made = manager
        .submit(
            SETTINGS,
            "/admin/settings/locations",
            &leipzig("Leipzig Store", "DE", "51.34"),
        )
        .await;
    assert_eq!(made.location.as_deref(), Some("/admin/settings?done=location"));
    let (locations, _) = store.locations(&ALL).await.expect("locations");
    let leipzig_store = locations
        .iter()
        .find(|l| l.draft.name == "Leipzig Store")
        .expect("made");
    assert!(
        leipzig_store.draft.pickup && !leipzig_store.draft.ship_from,
        "{leipzig_store:?}"
    );
    assert_eq!(leipzig_store.draft.geo.map(|g| g.lat), Some(51.34));
    assert_eq!(leipzig_store.draft.priority, 3);

    let mut renamed = leipzig("Leipzig Markt", "DE", "51.34");
    renamed.push(("ship_from", "on"));
    let changed = manager
        .submit(
            SETTINGS,
            &format!("/admin/settings/locations/{}", leipzig_store.id),
            &renamed,
        )
        .await;
    assert_eq!(changed.status, 303);
    let now = store.location(&leipzig_store.id).await.expect("location");
    assert_eq!(now.draft.name, "Leipzig Markt");
    assert!(now.draft.ship_from);

    let wholesale = [
        ("name", "Wholesale"),
        ("kind", "marketplace"),
        ("currency", "EUR"),
        ("location_ids", leipzig_store.id.as_str()),
        ("stock_buffer.units", "1"),
        ("stock_buffer.percent", "150"),
        ("price_policy.parity", "allow_override"),
        ("price_policy.max_deviation_percent", "15"),
    ];
    let bad = manager.submit(SETTINGS, "/admin/settings/channels", &wholesale).await;
    assert_eq!(bad.status, 422);
    assert!(bad.has("id=\"channel-stock_buffer.percent-error\"") && bad.has("must be between 0 and 100"));
    let mut good = wholesale.to_vec();
    good[5] = ("stock_buffer.percent", "");
    let opened = manager.submit(SETTINGS, "/admin/settings/channels", &good).await;
    assert_eq!(opened.location.as_deref(), Some("/admin/settings?done=channel"));
    let (channels, _) = store.channels(&ALL).await.expect("channels");
    let channel = channels.iter().find(|c| c.draft.name == "Wholesale").expect("opened");
    assert_eq!(channel.draft.location_ids, std::slice::from_ref(&leipzig_store.id));
    assert_eq!(channel.draft.stock_buffer.units, Some(1));
    assert_eq!(channel.draft.price_policy.parity, Parity::AllowOverride);
    assert_eq!(channel.draft.price_policy.max_deviation_percent, Some(15));

    good[0] = ("name", "Wholesale B2B");
    good[4] = ("stock_buffer.units", "4");
    let version = channel.version.to_string();
    good.push(("version", &version));
    let path = format!("/admin/settings/channels/{}", channel.id);
    assert_eq!(manager.submit(SETTINGS, &path, &good).await.status, 303);
    let changed = store.channel(&channel.id).await.expect("channel");
    assert_eq!(
        (changed.draft.name.as_str(), changed.draft.stock_buffer.units),
        ("Wholesale B2B", Some(4))
    );
    let stale = manager.submit(SETTINGS, &path, &good).await;
    assert_eq!(stale.status, 422, "an edit drawn before another change is refused");
    assert!(stale.has("someone changed this meanwhile"));

    // Agents and store staff do not set the shop up.
    for (role, home) in [(Role::Agent, "/admin/inbox"), (Role::StoreStaff, "/admin/desk")] {
        let mut other = signed_in(&shop, role).await;
        let refused = other.submit(home, "/admin/settings/channels", &good).await;
        assert_eq!(refused.status, 403, "{role:?}");
        let refused = other
            .submit(
                home,
                &format!("/admin/settings/locations/{}", leipzig_store.id),
                &renamed,
            )
            .await;
        assert_eq!(refused.status, 403, "{role:?}");
    }
    assert_eq!(store.channels(&ALL).await.expect("channels").0.len(), channels.len());
}

async fn inboxes_are_connected_and_their_credentials_never_shown(shop: Shop) {
    let mut manager = signed_in(&shop, Role::Manager).await;
    let telegram = |secret: &'static str| {
        [
            ("kind", "telegram"),
            ("name", "Telegram bot"),
            ("credentials.telegram.bot_token", "123456:bot-token-typed-here"),
            ("credentials.telegram.secret_token", secret),
            // Another kind's fields are left out of what is sent.
            ("credentials.viber.auth_token", "not-sent"),
        ]
    };
    let bad = manager
        .submit(SETTINGS, "/admin/settings/inboxes", &telegram("not ok!"))
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.has("id=\"inbox-credentials.secret_token-error\"") && bad.has("Telegram takes 1 to 256"));
    assert!(!bad.has("bot-token-typed-here"), "credentials are never shown again");
    assert!(bad.has("value=\"Telegram bot\""));
    let (none, _) = shop.store().inboxes(&ALL).await.expect("inboxes");
    assert!(none.is_empty());

    let connected = manager
        .submit(SETTINGS, "/admin/settings/inboxes", &telegram("hook-secret_0123456789"))
        .await;
    assert_eq!(connected.location.as_deref(), Some("/admin/settings?done=inbox"));
    let (inboxes, _) = shop.store().inboxes(&ALL).await.expect("inboxes");
    let (inbox, credentials) = shop
        .store()
        .inbox_with_credentials(&inboxes[0].id)
        .await
        .expect("sealed");
    assert_eq!(inbox.name, "Telegram bot");
    assert!(matches!(credentials, Credentials::Telegram(c) if c.bot_token == "123456:bot-token-typed-here"));
    let page = manager.get("/admin/settings?done=inbox").await;
    assert!(
        page.has(&format!("{}/hooks/{}", shop.base, inbox.id)),
        "the webhook URL to register"
    );
    assert!(page.has("Register its webhook URL") && !page.has("bot-token-typed-here"));

    let mut agent = signed_in(&shop, Role::Agent).await;
    let refused = agent
        .submit("/admin/orders", "/admin/settings/inboxes", &telegram("x"))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(shop.store().inboxes(&ALL).await.expect("inboxes").0.len(), 1);
}

async fn a_revoked_key_is_refused_by_the_api_at_once(shop: Shop) {
    let scopes = ["orders:read".to_owned()];
    let erp = shop
        .store()
        .generate_api_key("ERP", &scopes, None, &[])
        .await
        .expect("key");
    let shelf = shop
        .store()
        .generate_api_key("Shelf", &scopes, None, &[])
        .await
        .expect("key");
    let orders = |token: &str| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/orders", shop.base))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(orders(&erp.token).await.expect("answer").status().as_u16(), 200);

    let mut manager = signed_in(&shop, Role::Manager).await;
    let path = format!("/admin/settings/keys/{}/revoke", erp.key.id);
    assert_eq!(manager.submit(SETTINGS, &path, &[]).await.status, 403);
    assert_eq!(orders(&erp.token).await.expect("answer").status().as_u16(), 200);

    let mut owner = signed_in(&shop, Role::Owner).await;
    let revoked = owner.submit(SETTINGS, &path, &[]).await;
    assert_eq!(revoked.location.as_deref(), Some("/admin/settings?done=revoked"));
    assert_eq!(
        orders(&erp.token).await.expect("answer").status().as_u16(),
        401,
        "at once"
    );
    assert_eq!(orders(&shelf.token).await.expect("answer").status().as_u16(), 200);
    let page = owner.get("/admin/settings?done=revoked").await;
    assert!(page.has("API key revoked") && page.has("Shelf") && !page.has(">ERP<"));
    assert_eq!(owner.submit(SETTINGS, &path, &[]).await.status, 404, "gone already");
}

async fn owners_register_pause_and_delete_webhook_endpoints(shop: Shop) {
    let mut owner = signed_in(&shop, Role::Owner).await;
    let bad = owner
        .submit(
            SETTINGS,
            "/admin/settings/webhooks",
            &[("url", "ftp://erp.example.com"), ("events", "Order Placed")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.has("id=\"webhook-url-error\"") && bad.has("must be an absolute http"));
    assert!(bad.has("id=\"webhook-events-error\""));
    let fields = [
        ("url", "https://erp.example.com/omnihub"),
        ("events", "order.*, product.created"),
    ];
    let made = owner.submit(SETTINGS, "/admin/settings/webhooks", &fields).await;
    assert_eq!(made.status, 200);
    let marker = "id=\"new-signing-secret\">";
    let start = made.body.find(marker).expect("the secret, once") + marker.len();
    let secret: String = made.body[start..].chars().take_while(|c| *c != '<').collect();
    assert!(secret.starts_with("whsec_"));
    let (endpoints, _) = shop.store().webhook_endpoints(&ALL).await.expect("endpoints");
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.draft.events, ["order.*", "product.created"]);
    assert!(!owner.get(SETTINGS).await.has(&secret), "shown only once");

    let base = format!("/admin/settings/webhooks/{}", endpoint.id);
    let mut manager = signed_in(&shop, Role::Manager).await;
    for action in ["pause", "delete"] {
        let refused = manager.submit(SETTINGS, &format!("{base}/{action}"), &[]).await;
        assert_eq!(refused.status, 403, "{action}");
    }
    let refused = manager.submit(SETTINGS, "/admin/settings/webhooks", &fields).await;
    assert_eq!(refused.status, 403);
    assert_eq!(status(&shop, &endpoint.id).await, EndpointStatus::Active);
    assert_eq!(
        shop.store().webhook_endpoints(&ALL).await.expect("endpoints").0.len(),
        1
    );

    let paused = owner.submit(SETTINGS, &format!("{base}/pause"), &[]).await;
    assert_eq!(paused.location.as_deref(), Some("/admin/settings?done=webhook"));
    assert_eq!(status(&shop, &endpoint.id).await, EndpointStatus::Paused);
    assert!(owner.get(SETTINGS).await.has("Resume"));
    owner.submit(SETTINGS, &format!("{base}/resume"), &[]).await;
    assert_eq!(status(&shop, &endpoint.id).await, EndpointStatus::Active);
    let deleted = owner.submit(SETTINGS, &format!("{base}/delete"), &[]).await;
    assert_eq!(
        deleted.location.as_deref(),
        Some("/admin/settings?done=webhook_deleted")
    );
    assert!(
        shop.store()
            .webhook_endpoints(&ALL)
            .await
            .expect("endpoints")
            .0
            .is_empty()
    );
}

async fn status(shop: &Shop, id: &str) -> EndpointStatus {
    shop.store().webhook_endpoint(id).await.expect("endpoint").draft.status
}

async fn owners_set_other_peoples_passwords(shop: Shop) {
    let mut agent = signed_in(&shop, Role::Agent).await;
    let (agent_email, old_password) = shop.login(Role::Agent);
    let users = shop.store().users().await.expect("users");
    let id_of = |email: &str| users.iter().find(|u| u.email == email).expect("account").id.clone();
    let agent_id = id_of(agent_email);
    let path = format!("/admin/settings/users/{agent_id}/password");

    let mut manager = signed_in(&shop, Role::Manager).await;
    let refused = manager
        .submit(SETTINGS, &path, &[("password", "managers may not")])
        .await;
    assert_eq!(refused.status, 403);

    let mut owner = signed_in(&shop, Role::Owner).await;
    let short = owner.submit(SETTINGS, &path, &[("password", "short")]).await;
    assert_eq!(short.status, 422);
    assert!(short.has(&format!("id=\"password:{agent_id}-password-error\"")) && short.has("at least 10 characters"));
    assert_eq!(agent.get("/admin/orders").await.status, 200, "nothing changed");

    let set = owner
        .submit(SETTINGS, &path, &[("password", "a brand new passphrase")])
        .await;
    assert_eq!(set.location.as_deref(), Some("/admin/settings?done=password"));
    assert_eq!(agent.get("/admin/orders").await.status, 303, "signed out everywhere");
    assert_eq!(
        Browser::new(&shop.base).log_in(agent_email, old_password).await.status,
        401
    );
    assert_eq!(
        Browser::new(&shop.base)
            .log_in(agent_email, "a brand new passphrase")
            .await
            .status,
        303
    );

    let own = format!("/admin/settings/users/{}/password", id_of(shop.login(Role::Owner).0));
    let refused = owner
        .submit(SETTINGS, &own, &[("password", "my own new password")])
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.has("not your own"));
}

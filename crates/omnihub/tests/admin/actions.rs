//! The actions of the admin app change the store, and the API's validation messages come back
//! next to the fields.

use std::time::Duration;

use futures_util::StreamExt;
use omnihub_domain::catalog::Address;
use omnihub_domain::orders::{CartDetails, CartLineDraft, CheckoutBy, PaymentStatus, ShippingAddress, Status};
use omnihub_domain::users::Role;
use omnihub_store::{LevelFilter, Page as StorePage};

use crate::client::Browser;
use crate::on_both_backends;
use crate::shop::Shop;

on_both_backends!(
    a_manager_adjusts_and_transfers_stock,
    an_order_is_fulfilled_shipped_delivered_and_returned,
    store_staff_hand_over_and_take_returns_at_their_desk,
    pickup_orders_carry_a_code_that_the_desk_reads,
    store_staff_find_other_stores_orders_only_with_the_buyers_email,
    a_manager_marks_a_storefronts_order_paid,
    owners_open_accounts_make_keys_and_set_buffers,
    customers_are_merged,
    open_pages_hear_of_new_orders,
);

async fn signed_in(shop: &Shop, role: Role) -> Browser {
    let mut browser = Browser::new(&shop.base);
    let (email, password) = shop.login(role);
    assert_eq!(browser.log_in(email, password).await.status, 303);
    browser
}

async fn location_id(shop: &Shop, name: &str) -> String {
    let (locations, _) = shop
        .store()
        .locations(&StorePage { after: None, limit: 50 })
        .await
        .expect("locations");
    locations
        .into_iter()
        .find(|l| l.draft.name == name)
        .expect("location")
        .id
}

async fn on_hand(shop: &Shop, sku: &str, location: &str) -> i64 {
    let filter = LevelFilter {
        sku: Some(sku.into()),
        location_id: Some(location.into()),
    };
    let (levels, _) = shop
        .store()
        .levels(&filter, &StorePage { after: None, limit: 1 })
        .await
        .expect("levels");
    levels.first().map_or(0, |l| l.on_hand)
}

async fn a_manager_adjusts_and_transfers_stock(shop: Shop) {
    let mut manager = signed_in(&shop, Role::Manager).await;
    let warehouse = location_id(&shop, "Central Warehouse").await;
    let berlin = location_id(&shop, "Berlin Mitte Store").await;
    let before = on_hand(&shop, "OH-113-BLACK", &warehouse).await;
    let page = "/admin/inventory?sku=OH-113-BLACK";
    let done = manager
        .submit(
            page,
            "/admin/inventory/adjust",
            &[
                ("sku", "OH-113-BLACK"),
                ("location_id", &warehouse),
                ("delta", "10"),
                ("reason", "receipt"),
                ("reference", "delivery note 4711"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location.as_deref(),
        Some("/admin/inventory?sku=OH-113-BLACK&done=adjusted")
    );
    assert_eq!(on_hand(&shop, "OH-113-BLACK", &warehouse).await, before + 10);
    let shown = manager.get(done.location.as_deref().expect("back")).await;
    assert!(shown.has("Stock adjusted.") && shown.has("delivery note 4711") && shown.has("+10"));

    // The API's own rules, next to the field.
    let too_many = manager
        .submit(
            page,
            "/admin/inventory/adjust",
            &[
                ("sku", "OH-113-BLACK"),
                ("location_id", &warehouse),
                ("delta", "-100000"),
                ("reason", "damage"),
            ],
        )
        .await;
    assert_eq!(too_many.status, 422);
    assert!(
        too_many.has("id=\"adjust-delta-error\""),
        "the message sits at the field"
    );
    assert!(too_many.has("on_hand may not go below"), "{}", too_many.body);
    assert!(too_many.has("value=\"-100000\""), "what was typed stays");
    let not_a_number = manager
        .submit(
            page,
            "/admin/inventory/adjust",
            &[
                ("sku", "OH-113-BLACK"),
                ("location_id", &warehouse),
                ("delta", "ten"),
                ("reason", "receipt"),
            ],
        )
        .await;
    assert_eq!(not_a_number.status, 422);
    assert!(not_a_number.has("must be a whole number"));
    let unknown = manager
        .submit(
            page,
            "/admin/inventory/adjust",
            &[
                ("sku", "NOPE-1"),
                ("location_id", &warehouse),
                ("delta", "1"),
                ("reason", "receipt"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert!(unknown.has("id=\"adjust-sku-error\""));

    let moved = manager
        .submit(
            page,
            "/admin/inventory/transfer",
            &[
                ("sku", "OH-113-BLACK"),
                ("from_location_id", &warehouse),
                ("to_location_id", &berlin),
                ("quantity", "3"),
            ],
        )
        .await;
    assert_eq!(moved.status, 303);
    assert_eq!(on_hand(&shop, "OH-113-BLACK", &warehouse).await, before + 7);
    let short = manager
        .submit(
            page,
            "/admin/inventory/transfer",
            &[
                ("sku", "OH-113-BLACK"),
                ("from_location_id", &berlin),
                ("to_location_id", &warehouse),
                ("quantity", "500"),
            ],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(short.has("are not free to move at the source"));
    assert!(
        shop.store().check_inventory().await.expect("check").is_empty(),
        "the ledger explains every level"
    );
}

async fn an_order_is_fulfilled_shipped_delivered_and_returned(shop: Shop) {
    let mut manager = signed_in(&shop, Role::Manager).await;
    let order = shop.store().order_by_number("#1002").await.expect("the web order");
    let page = format!("/admin/orders/{}", order.id);
    let location = order.lines[0].allocations[0].location_id.clone();
    let view = manager.get(&page).await;
    assert!(view.has("Create shipment"), "{}", view.body);
    let qty_fields: Vec<(String, String)> = order
        .lines
        .iter()
        .filter(|l| l.allocations.iter().any(|a| a.location_id == location))
        .map(|l| {
            (
                format!("qty:{}", l.sku),
                l.allocations
                    .iter()
                    .filter(|a| a.location_id == location)
                    .map(|a| a.quantity)
                    .sum::<i64>()
                    .to_string(),
            )
        })
        .collect();
    let mut fields: Vec<(&str, &str)> = vec![("location_id", location.as_str())];
    fields.extend(qty_fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let made = manager.submit(&page, &format!("{page}/fulfillments"), &fields).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let fulfilment = shop.store().order(&order.id).await.expect("order").fulfillments[0]
        .id
        .clone();

    let ship = format!("{page}/fulfillments/{fulfilment}/ship");
    let untracked = manager.submit(&page, &ship, &[]).await;
    assert_eq!(untracked.status, 422);
    assert!(untracked.has("a shipment needs its carrier and tracking number"));
    let shipped = manager
        .submit(
            &page,
            &ship,
            &[("carrier", "DHL"), ("tracking_number", "00340434161094042557")],
        )
        .await;
    assert_eq!(shipped.status, 303);
    let again = manager
        .submit(&page, &ship, &[("carrier", "DHL"), ("tracking_number", "1")])
        .await;
    assert_eq!(again.status, 422, "a shipped fulfilment cannot ship again");
    assert!(again.has("cannot ship"));
    let delivered = manager
        .submit(&page, &format!("{page}/fulfillments/{fulfilment}/deliver"), &[])
        .await;
    assert_eq!(delivered.status, 303);
    let now = shop.store().order(&order.id).await.expect("order");
    let sent: i64 = now.fulfillments.iter().flat_map(|f| &f.lines).map(|l| l.quantity).sum();
    let ordered: i64 = now.lines.iter().map(|l| l.quantity).sum();
    assert_eq!(
        now.status,
        if sent == ordered {
            Status::Completed
        } else {
            Status::PartiallyFulfilled
        }
    );
    let view = manager.get(&page).await;
    assert!(view.has("DHL 00340434161094042557") && view.has("Fulfillment delivered"));

    // Returned at a store, though it was bought online.
    let berlin = location_id(&shop, "Berlin Mitte Store").await;
    let sku = now.fulfillments[0].lines[0].sku.clone();
    let field = format!("qty:{sku}");
    let too_many = manager
        .submit(
            &page,
            &format!("{page}/returns"),
            &[(field.as_str(), "99"), ("location_id", &berlin), ("restock", "on")],
        )
        .await;
    assert_eq!(too_many.status, 422);
    assert!(too_many.has("can be returned"));
    let before = on_hand(&shop, &sku, &berlin).await;
    let taken = manager
        .submit(
            &page,
            &format!("{page}/returns"),
            &[
                (field.as_str(), "1"),
                ("location_id", &berlin),
                ("restock", "on"),
                ("reason", "too small"),
            ],
        )
        .await;
    assert_eq!(taken.status, 303);
    assert_eq!(
        on_hand(&shop, &sku, &berlin).await,
        before + 1,
        "back on sale in Berlin"
    );
    assert!(manager.get(&page).await.has("too small"));

    // An order that has not left can be cancelled; its stock is free again.
    let marketplace = shop.store().order_by_number("#1004").await.expect("marketplace order");
    let cancelled = manager
        .submit(&page, &format!("/admin/orders/{}/cancel", marketplace.id), &[])
        .await;
    assert_eq!(cancelled.status, 303);
    assert_eq!(
        shop.store().order(&marketplace.id).await.expect("order").status,
        Status::Cancelled
    );
    let twice = manager
        .submit(&page, &format!("/admin/orders/{}/cancel", marketplace.id), &[])
        .await;
    assert_eq!(twice.status, 422);
    assert!(twice.has("cannot be cancelled"));
}

async fn store_staff_hand_over_and_take_returns_at_their_desk(shop: Shop) {
    let mut staff = signed_in(&shop, Role::StoreStaff).await;
    let ready = shop.store().order_by_number("#1001").await.expect("the ready pick-up");
    let fulfilment = ready.fulfillments[0].id.clone();
    let collect = format!("/admin/desk/{}/{fulfilment}/collect", ready.id);
    let handed = staff
        .submit("/admin/desk?number=1001", &collect, &[("number", "#1001")])
        .await;
    assert_eq!(handed.status, 303);
    assert_eq!(
        handed.location.as_deref(),
        Some("/admin/desk?number=%231001&done=collected")
    );
    let after = shop.store().order(&ready.id).await.expect("order");
    assert_eq!(after.status, Status::Completed);
    let desk = staff.get(handed.location.as_deref().expect("back")).await;
    assert!(desk.has("Handed over to the customer.") && desk.has("Waiting here (1)"));
    assert!(desk.has("Take a return here"), "the collected order can come back here");

    // Collected, it may come back at this desk, whatever the channel.
    let returned = staff
        .submit(
            "/admin/desk?number=1001",
            &format!("/admin/desk/{}/return", ready.id),
            &[
                ("qty:OH-103-S", "1"),
                ("restock", "on"),
                ("reason", "changed mind"),
                ("location", "loc_somewhere_else"),
            ],
        )
        .await;
    assert_eq!(returned.status, 303);
    let back = shop.store().order(&ready.id).await.expect("order");
    assert_eq!(back.status, Status::Returned);
    let berlin = location_id(&shop, "Berlin Mitte Store").await;
    assert_eq!(back.returns[0].location_id, berlin, "always the staff's own store");

    // Only what waits at this desk's own store is handed over here.
    let waiting = shop.store().order_by_number("#1003").await.expect("order");
    let refused = staff
        .submit(
            "/admin/desk",
            &format!("/admin/desk/{}/ful_elsewhere/collect", waiting.id),
            &[],
        )
        .await;
    assert_eq!(refused.status, 403);
}

async fn store_staff_find_other_stores_orders_only_with_the_buyers_email(shop: Shop) {
    let mut staff = signed_in(&shop, Role::StoreStaff).await;
    // #1004 was bought on the marketplace and ships from the warehouse: not Berlin's business.
    let elsewhere = shop.store().order_by_number("#1004").await.expect("order");
    let by_number = staff.get("/admin/desk?number=1004").await;
    assert!(
        by_number.has("There is no order") && !by_number.has("tom.becker"),
        "{}",
        by_number.body
    );
    let wrong = staff.get("/admin/desk?number=1004&email=eve%40example.com").await;
    assert!(wrong.has("There is no order"));
    let proven = staff
        .get("/admin/desk?number=1004&email=Tom.Becker%40example.com")
        .await;
    assert!(proven.has("Order found"), "{}", proven.body);
    // Berlin's own pick-up is found by its number alone.
    assert!(staff.get("/admin/desk?number=1003").await.has("Order found"));

    let return_path = format!("/admin/desk/{}/return", elsewhere.id);
    let refused = staff
        .submit(
            "/admin/desk",
            &return_path,
            &[("qty:OH-113-BLACK", "1"), ("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        shop.store()
            .order(&elsewhere.id)
            .await
            .expect("order")
            .returns
            .is_empty()
    );

    // A manager finds every order by its number.
    let mut manager = signed_in(&shop, Role::Manager).await;
    assert!(manager.get("/admin/desk?number=1004").await.has("Order found"));
}

async fn a_manager_marks_a_storefronts_order_paid(shop: Shop) {
    let store = shop.store();
    let (channels, _) = store
        .channels(&StorePage { after: None, limit: 50 })
        .await
        .expect("channels");
    let web = channels.iter().find(|c| c.draft.name == "Web shop").expect("web");
    let cart = store.create_cart(&web.id, None).await.expect("cart");
    let line = CartLineDraft {
        sku: "OH-101-M".into(),
        quantity: 1,
    };
    let cart = store.add_cart_line(&cart, line).await.expect("line");
    let address = Address {
        line1: "Torstr. 1".into(),
        line2: None,
        city: "Berlin".into(),
        postal_code: "10119".into(),
        region: None,
        country: "DE".into(),
    };
    let details = CartDetails {
        email: Some("walk.in@example.com".into()),
        shipping_address: Some(ShippingAddress {
            name: Some("Walk In".into()),
            address,
            geo: None,
        }),
        ..cart.details.clone()
    };
    let cart = store.update_cart(&cart, details, cart.version).await.expect("details");
    let order = store.checkout(&cart, CheckoutBy::Storefront).await.expect("order");

    let mut manager = signed_in(&shop, Role::Manager).await;
    let page = format!("/admin/orders/{}", order.id);
    let waiting = manager.get(&page).await;
    assert!(
        waiting.has("Waiting for payment") && waiting.has("Mark as paid"),
        "{}",
        waiting.body
    );
    let paid = manager
        .submit(&page, &format!("/admin/orders/{}/mark-paid", order.id), &[])
        .await;
    assert_eq!(paid.status, 303);
    let after = store.order(&order.id).await.expect("order");
    assert_eq!(after.payment_status, Some(PaymentStatus::Paid));
    let shown = manager.get(paid.location.as_deref().expect("back")).await;
    assert!(shown.has("Order marked paid.") && !shown.has("Mark as paid"));
}

async fn pickup_orders_carry_a_code_that_the_desk_reads(shop: Shop) {
    let ready = shop.store().order_by_number("#1001").await.expect("the ready pick-up");
    let mut manager = signed_in(&shop, Role::Manager).await;
    let page = manager.get(&format!("/admin/orders/{}", ready.id)).await;
    assert!(page.has(r#"<section class="panel pickup-code""#), "{}", page.body);
    assert!(page.has(r#"<svg role="img" aria-label="Pick-up code of order #1001""#));
    // The code holds the number as printed; read by a camera or a hand scanner, it finds the order.
    let mut staff = signed_in(&shop, Role::StoreStaff).await;
    let desk = staff.get("/admin/desk?number=%231001").await;
    assert!(desk.has("Order found") && desk.has("data-scan"), "{}", desk.body);
}

async fn owners_open_accounts_make_keys_and_set_buffers(shop: Shop) {
    let mut owner = signed_in(&shop, Role::Owner).await;
    let hamburg = location_id(&shop, "Hamburg Store").await;
    let short = owner
        .submit(
            "/admin/settings",
            "/admin/settings/users",
            &[
                ("name", "Hanna"),
                ("email", "hanna@example.com"),
                ("role", "store_staff"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(short.has("id=\"user-password-error\"") && short.has("at least 10 characters"));
    assert!(short.has("id=\"user-location_id-error\"") && short.has("store staff belong to a store"));
    assert!(short.has("value=\"hanna@example.com\""), "what was typed stays");
    let opened = owner
        .submit(
            "/admin/settings",
            "/admin/settings/users",
            &[
                ("name", "Hanna Hamburg"),
                ("email", "Hanna@Example.com"),
                ("role", "store_staff"),
                ("location_id", &hamburg),
                ("password", "hamburg harbour 2026"),
            ],
        )
        .await;
    assert_eq!(opened.status, 303);
    let taken = owner
        .submit(
            "/admin/settings",
            "/admin/settings/users",
            &[
                ("name", "Copy"),
                ("email", "hanna@example.com"),
                ("role", "agent"),
                ("password", "another long password"),
            ],
        )
        .await;
    assert!(taken.has("another account has this e-mail address"));
    let mut hanna = Browser::new(&shop.base);
    let welcome = hanna.log_in("hanna@example.com", "hamburg harbour 2026").await;
    assert_eq!(welcome.location.as_deref(), Some("/admin/desk"));
    assert!(hanna.get("/admin/desk").await.has("Hamburg Store"));

    let users = shop.store().users().await.expect("users");
    let id = users
        .iter()
        .find(|u| u.email == "hanna@example.com")
        .expect("hanna")
        .id
        .clone();
    let closed = owner
        .submit(
            "/admin/settings",
            &format!("/admin/settings/users/{id}/deactivate"),
            &[],
        )
        .await;
    assert_eq!(closed.status, 303);
    assert_eq!(hanna.get("/admin/desk").await.status, 303, "signed out at once");

    let made = owner
        .submit(
            "/admin/settings",
            "/admin/settings/keys",
            &[
                ("name", "ERP"),
                ("kind", "secret"),
                ("scope", "orders:read"),
                ("scope", "inventory:read"),
            ],
        )
        .await;
    assert_eq!(made.status, 200);
    assert!(made.has("shown only this once"));
    let start = made.body.find("id=\"new-token\">").expect("the token") + "id=\"new-token\">".len();
    let token: String = made.body[start..].chars().take_while(|c| *c != '<').collect();
    let orders = reqwest::Client::new()
        .get(format!("{}/api/v1/orders", shop.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(orders.status().as_u16(), 200, "the new key works");
    let listed = owner.get("/admin/settings").await;
    assert!(listed.has("ERP") && listed.has("orders:read, inventory:read") && !listed.has(&token));

    let (channels, _) = shop
        .store()
        .channels(&StorePage { after: None, limit: 50 })
        .await
        .expect("channels");
    let web = channels.iter().find(|c| c.draft.name == "Web shop").expect("web");
    let buffer = |units: &'static str, percent: &'static str| {
        let mut fields = vec![
            ("name", web.draft.name.as_str()),
            ("kind", "web"),
            ("currency", web.draft.currency.as_str()),
            ("stock_buffer.units", units),
            ("stock_buffer.percent", percent),
            ("price_policy.parity", "strict"),
        ];
        fields.extend(web.draft.location_ids.iter().map(|l| ("location_ids", l.as_str())));
        fields
    };
    let path = format!("/admin/settings/channels/{}", web.id);
    let bad = owner.submit("/admin/settings", &path, &buffer("2", "150")).await;
    assert_eq!(bad.status, 422);
    assert!(bad.has("must be between 0 and 100"));
    let saved = owner.submit("/admin/settings", &path, &buffer("2", "")).await;
    assert_eq!(saved.status, 303);
    assert_eq!(
        shop.store()
            .channel(&web.id)
            .await
            .expect("web")
            .draft
            .stock_buffer
            .units,
        Some(2)
    );
}

async fn customers_are_merged(shop: Shop) {
    let mut manager = signed_in(&shop, Role::Manager).await;
    let a = shop
        .store()
        .order_by_number("#1002")
        .await
        .expect("order")
        .customer_id
        .expect("customer");
    let b = shop
        .store()
        .order_by_number("#1003")
        .await
        .expect("order")
        .customer_id
        .expect("customer");
    let page = format!("/admin/customers/{a}");
    let wrong = manager
        .submit(&page, &format!("{page}/merge"), &[("customer_id", "cus_nobody")])
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.has("id=\"merge-customer_id-error\""));
    let merged = manager
        .submit(&page, &format!("{page}/merge"), &[("customer_id", &b)])
        .await;
    assert_eq!(merged.status, 303);
    let shown = manager.get(merged.location.as_deref().expect("back")).await;
    assert!(shown.has("Customers merged.") && shown.has("lea.fischer@example.com") && shown.has("#1003"));
    assert_eq!(
        shop.store()
            .customer(&b)
            .await
            .expect("absorbed")
            .merged_into
            .as_deref(),
        Some(a.as_str())
    );
    let absorbed = manager.get(&format!("/admin/customers/{b}")).await;
    assert!(absorbed.has("was merged into"));
}

async fn open_pages_hear_of_new_orders(shop: Shop) {
    let staff = signed_in(&shop, Role::StoreStaff).await;
    let session = staff.cookie("omnihub_session").expect("session").to_owned();
    let response = reqwest::Client::new()
        .get(format!("{}/admin/live", shop.base))
        .header("cookie", format!("omnihub_session={session}"))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();
    let order = shop.order_from_the_app("live-1").await;
    let mut seen = String::new();
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
            if seen.contains("event: orders") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "the desk hears of the new order: {seen}");
    assert!(
        !seen.contains(order["id"].as_str().expect("id")),
        "a signal carries no data"
    );
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/admin/live", shop.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status().as_u16(), 303, "no stream without a session");
}

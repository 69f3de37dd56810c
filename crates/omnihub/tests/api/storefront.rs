//! What a storefront's public key, in every shopper's hands, can and cannot do: guess another
//! shopper's cart, hold stock with orders nobody pays for, learn who holds a typed e-mail.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{self, as_key, id, publishable_key};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    cart_ids_cannot_be_derived_from_each_other,
    an_unpaid_storefront_order_lapses_and_frees_its_stock,
    a_paid_storefront_order_stays_and_may_be_handed_over,
    one_email_has_few_unpaid_orders_even_in_parallel,
    one_shopper_never_gets_anothers_stored_answer,
    one_address_checks_out_a_bounded_number_of_orders,
);

struct Shop {
    warehouse: String,
    web: String,
    pk: String,
}

/// A warehouse with 20 of `A` (10.00 EUR) published in a web channel, and its public key.
async fn shop(app: &TestApp) -> Shop {
    let warehouse = id(&fixtures::location(app, "Warehouse", "warehouse").await).to_owned();
    let web = id(&fixtures::channel(app, "Web", "web", &[&warehouse]).await).to_owned();
    let product = id(&fixtures::product(app, "A", &["A"], 1000).await).to_owned();
    let listing = json!({"published": true});
    json(
        app.put(&format!("/products/{product}/listings/{web}"), &listing).await,
        200,
    )
    .await;
    let receipt = json!({"sku": "A", "location_id": warehouse, "delta": 20, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &receipt).await, 200).await;
    let pk = publishable_key(app, &web).await;
    Shop { warehouse, web, pk }
}

/// A shopper's cart of `quantity` of `A`, to ship to `email`, filled through the public key.
async fn storefront_cart(app: &TestApp, shop: &Shop, email: &str, quantity: i64) -> String {
    let cart = json(
        as_key(app, &shop.pk, Method::POST, "/carts", Some(&json!({}))).await,
        201,
    )
    .await;
    let path = format!("/carts/{}", id(&cart));
    let line = json!({"sku": "A", "quantity": quantity});
    json(
        as_key(app, &shop.pk, Method::POST, &format!("{path}/lines"), Some(&line)).await,
        200,
    )
    .await;
    let details = json!({"email": email, "shipping_address":
        {"name": "Vic Lee", "line1": "Torstr. 1", "city": "Berlin", "postal_code": "10119", "country": "DE"}});
    json(as_key(app, &shop.pk, Method::PATCH, &path, Some(&details)).await, 200).await;
    path
}

async fn storefront_checkout(app: &TestApp, shop: &Shop, cart: &str) -> reqwest::Response {
    as_key(
        app,
        &shop.pk,
        Method::POST,
        &format!("{cart}/checkout"),
        Some(&json!({})),
    )
    .await
}

async fn available(app: &TestApp, shop: &Shop) -> i64 {
    let page = json(
        app.get(&format!("/availability?channel_id={}&skus=A", shop.web)).await,
        200,
    )
    .await;
    page["data"][0]["available"].as_i64().expect("a number")
}

async fn cart_ids_cannot_be_derived_from_each_other(app: TestApp) {
    let shop = shop(&app).await;
    let empty = json!({});
    let made = join_all((0..40).map(|_| as_key(&app, &shop.pk, Method::POST, "/carts", Some(&empty)))).await;
    let mut random_parts = Vec::new();
    for response in made {
        let cart = json(response, 201).await;
        let ulid = id(&cart).strip_prefix("crt_").expect("a cart id").to_uppercase();
        let ulid = ulid::Ulid::from_string(&ulid).expect("a ULID");
        random_parts.push((ulid.timestamp_ms(), ulid.random()));
    }
    for (i, a) in random_parts.iter().enumerate() {
        for b in &random_parts[i + 1..] {
            // A counter's neighbours differ by one, whether made in one millisecond or not;
            // 80 random bits apart by far more than 2^48 but once in 2^31 pairs.
            assert!(a.1.abs_diff(b.1) > 1 << 48, "{a:?} and {b:?} are neighbours");
        }
    }
}

async fn an_unpaid_storefront_order_lapses_and_frees_its_stock(app: TestApp) {
    let shop = shop(&app).await;
    let known = json!({"name": "Vic", "identities": [{"kind": "email", "value": "vic@example.com"}]});
    let customer = json(app.post("/customers", &known).await, 201).await;

    let cart = storefront_cart(&app, &shop, "vic@example.com", 2).await;
    let order = json(storefront_checkout(&app, &shop, &cart).await, 201).await;
    assert_eq!(order["payment_status"], "pending");
    assert!(order["hold_expires_at"].is_string());
    // Whoever typed the e-mail learns nothing of the customer behind it.
    assert!(order.get("customer_id").is_none_or(Value::is_null), "{order}");
    let path = format!("/orders/{}", id(&order));
    let seen = json(app.get(&path).await, 200).await;
    assert_eq!(seen["customer_id"], customer["id"]);
    assert_eq!(available(&app, &shop).await, 18);

    // Nothing leaves before the payment.
    let parcel = json!({"location_id": shop.warehouse, "kind": "shipment", "lines": [{"sku": "A", "quantity": 2}]});
    let order = json(app.post(&format!("{path}/fulfillments"), &parcel).await, 201).await;
    let fulfillment = order["fulfillments"][0]["id"].as_str().expect("a fulfilment");
    let ship = json!({"carrier": "DHL", "tracking_number": "1"});
    problem(
        app.post(&format!("{path}/fulfillments/{fulfillment}/ship"), &ship)
            .await,
        409,
        "conflict",
    )
    .await;

    // Not yet due: nothing lapses.
    app.clock.advance_seconds(59 * 60);
    assert_eq!(app.store().expire_reservations().await.expect("expiry"), 0);
    app.clock.advance_seconds(2 * 60);
    app.store().expire_reservations().await.expect("expiry");
    let lapsed = json(app.get(&path).await, 200).await;
    assert_eq!(lapsed["status"], "cancelled");
    assert_eq!(lapsed["fulfillments"][0]["status"], "cancelled");
    assert_eq!(available(&app, &shop).await, 20);
    problem(
        app.post(&format!("{path}/mark-paid"), &json!({})).await,
        409,
        "conflict",
    )
    .await;
    assert!(app.store().check_inventory().await.expect("check").is_empty());
}

async fn a_paid_storefront_order_stays_and_may_be_handed_over(app: TestApp) {
    let shop = shop(&app).await;
    let cart = storefront_cart(&app, &shop, "ann@example.com", 1).await;
    let order = json(storefront_checkout(&app, &shop, &cart).await, 201).await;
    let path = format!("/orders/{}", id(&order));

    // The storefront cannot say it was paid; the shop's backend can, once.
    problem(
        as_key(
            &app,
            &shop.pk,
            Method::POST,
            &format!("{path}/mark-paid"),
            Some(&json!({})),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let paid = json(app.post(&format!("{path}/mark-paid"), &json!({})).await, 200).await;
    assert_eq!(paid["payment_status"], "paid");
    assert!(paid.get("hold_expires_at").is_none(), "{paid}");
    assert_eq!(paid["version"], order["version"].as_i64().expect("a version") + 1);
    problem(
        app.post(&format!("{path}/mark-paid"), &json!({})).await,
        409,
        "conflict",
    )
    .await;
    let events = json(app.get("/events?types=order.paid").await, 200).await;
    assert_eq!(events["data"][0]["data"]["id"], order["id"]);

    app.clock.advance_seconds(2 * 3600);
    app.store().expire_reservations().await.expect("expiry");
    let parcel = json!({"location_id": shop.warehouse, "kind": "shipment", "lines": [{"sku": "A", "quantity": 1}]});
    let order = json(app.post(&format!("{path}/fulfillments"), &parcel).await, 201).await;
    assert_eq!(order["status"], "allocated");
    let fulfillment = order["fulfillments"][0]["id"].as_str().expect("a fulfilment");
    let ship = json!({"carrier": "DHL", "tracking_number": "1"});
    let shipped = json(
        app.post(&format!("{path}/fulfillments/{fulfillment}/ship"), &ship)
            .await,
        200,
    )
    .await;
    assert_eq!(shipped["status"], "shipped");

    // The shop's backend checks out with its secret key: it answers for the payment itself.
    let cart = storefront_cart(&app, &shop, "ann@example.com", 1).await;
    let backend = json(app.post(&format!("{cart}/checkout"), &json!({})).await, 201).await;
    assert!(backend.get("payment_status").is_none(), "{backend}");
    assert!(backend.get("hold_expires_at").is_none(), "{backend}");
    let marked = app
        .post(&format!("/orders/{}/mark-paid", id(&backend)), &json!({}))
        .await;
    problem(marked, 409, "conflict").await;
}

async fn one_email_has_few_unpaid_orders_even_in_parallel(app: TestApp) {
    let shop = shop(&app).await;
    // Every storefront order counts toward its buyer's e-mail: one without is refused.
    let nameless = storefront_cart(&app, &shop, "mallory@example.com", 1).await;
    json(
        as_key(&app, &shop.pk, Method::PATCH, &nameless, Some(&json!({"email": null}))).await,
        200,
    )
    .await;
    let refused = problem(
        storefront_checkout(&app, &shop, &nameless).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "email");

    let mut carts = Vec::new();
    for _ in 0..8 {
        carts.push(storefront_cart(&app, &shop, "Mallory@Example.com", 1).await);
    }
    let answers = join_all(carts.iter().map(|cart| storefront_checkout(&app, &shop, cart))).await;
    let mut placed = Vec::new();
    for answer in answers {
        match answer.status().as_u16() {
            201 => placed.push(json(answer, 201).await),
            _ => {
                problem(answer, 429, "rate_limited").await;
            }
        }
    }
    assert_eq!(placed.len(), 3, "three unpaid orders per e-mail");
    assert_eq!(available(&app, &shop).await, 17, "the refused ones hold nothing");

    // Paying one makes room for one more; another e-mail has its own three.
    let first = format!("/orders/{}", id(&placed[0]));
    json(app.post(&format!("{first}/mark-paid"), &json!({})).await, 200).await;
    let again = storefront_cart(&app, &shop, "mallory@example.com", 1).await;
    json(storefront_checkout(&app, &shop, &again).await, 201).await;
    let refused = storefront_cart(&app, &shop, "mallory@example.com", 1).await;
    problem(storefront_checkout(&app, &shop, &refused).await, 429, "rate_limited").await;
    let other = storefront_cart(&app, &shop, "eve@example.com", 1).await;
    json(storefront_checkout(&app, &shop, &other).await, 201).await;

    // Cancelling one makes room too.
    let second = format!("/orders/{}/cancel", id(&placed[1]));
    json(app.post(&second, &json!({})).await, 200).await;
    json(storefront_checkout(&app, &shop, &refused).await, 201).await;
}

async fn one_shopper_never_gets_anothers_stored_answer(app: TestApp) {
    let shop = shop(&app).await;
    // Two shoppers on two addresses, both holding the storefront's key.
    let from = |address: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .build()
            .expect("a client")
    };
    let (ann, eve) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let new_cart = |client: &reqwest::Client, key: &str| {
        client
            .post(format!("{}/api/v1/carts", app.base))
            .bearer_auth(key)
            .header("Idempotency-Key", "cart-1")
            .json(&json!({"channel_id": shop.web}))
            .send()
    };
    let first = json(new_cart(&ann, &shop.pk).await.expect("request"), 201).await;
    let again = new_cart(&ann, &shop.pk).await.expect("request");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json(again, 201).await["id"], first["id"]);

    let stranger = new_cart(&eve, &shop.pk).await.expect("request");
    assert!(stranger.headers().get("idempotent-replayed").is_none());
    assert_ne!(json(stranger, 201).await["id"], first["id"]);

    // A secret key is one system's, wherever its requests come from.
    let backend = json(new_cart(&ann, crate::helpers::OWNER_KEY).await.expect("request"), 201).await;
    let elsewhere = new_cart(&eve, crate::helpers::OWNER_KEY).await.expect("request");
    assert_eq!(json(elsewhere, 201).await["id"], backend["id"]);
}

async fn one_address_checks_out_a_bounded_number_of_orders(app: TestApp) {
    let shop = shop(&app).await;
    let receipt = json!({"sku": "A", "location_id": shop.warehouse, "delta": 10, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &receipt).await, 200).await;
    // Twenty buyers' e-mails from one address: each e-mail is within its own cap.
    for n in 0..20 {
        let cart = storefront_cart(&app, &shop, &format!("buyer{n}@example.com"), 1).await;
        json(storefront_checkout(&app, &shop, &cart).await, 201).await;
    }
    let cart = storefront_cart(&app, &shop, "buyer20@example.com", 1).await;
    problem(storefront_checkout(&app, &shop, &cart).await, 429, "rate_limited").await;
    assert_eq!(available(&app, &shop).await, 10, "the refused one holds nothing");

    // Another shopper's address is counted apart.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .expect("a client");
    let checkout = elsewhere
        .post(format!("{}/api/v1{cart}/checkout", app.base))
        .bearer_auth(&shop.pk)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    json(checkout, 201).await;

    // A new hour, a new allowance.
    app.clock.advance_seconds(3600);
    let later = storefront_cart(&app, &shop, "buyer21@example.com", 1).await;
    json(storefront_checkout(&app, &shop, &later).await, 201).await;
}

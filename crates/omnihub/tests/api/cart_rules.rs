//! Who may name a cart's customer and spend their points, what carts show, money limits, and
//! what cancelling and returning give back.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{self, as_key, id, publishable_key};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    a_publishable_key_cannot_spend_a_customers_points,
    amounts_beyond_the_largest_price_are_refused_not_wrapped,
    cancelling_or_returning_gives_redeemed_points_back,
    a_cancelled_order_is_on_the_customers_timeline,
    a_cart_shows_what_checkout_charges,
);

struct Shop {
    warehouse: String,
    web: String,
    /// The product of SKU `A`.
    product_a: String,
}

/// A warehouse with 20 of `A` (1000) and `B` (2500) published in a web channel.
async fn shop(app: &TestApp) -> Shop {
    let warehouse = id(&fixtures::location(app, "Warehouse", "warehouse").await).to_owned();
    let web = id(&fixtures::channel(app, "Web", "web", &[&warehouse]).await).to_owned();
    let mut product_a = String::new();
    for (sku, price) in [("A", 1000), ("B", 2500)] {
        let product = id(&fixtures::product(app, sku, &[sku], price).await).to_owned();
        let listing = json!({"published": true});
        json(
            app.put(&format!("/products/{product}/listings/{web}"), &listing).await,
            200,
        )
        .await;
        let receipt = json!({"sku": sku, "location_id": warehouse, "delta": 20, "reason": "receipt"});
        json(app.post("/inventory/adjustments", &receipt).await, 200).await;
        if sku == "A" {
            product_a = product;
        }
    }
    Shop {
        warehouse,
        web,
        product_a,
    }
}

/// A customer with `points` loyalty points.
async fn customer_with_points(app: &TestApp, email: &str, points: i64) -> String {
    let body = json!({"name": "Vic", "identities": [{"kind": "email", "value": email}]});
    let customer = id(&json(app.post("/customers", &body).await, 201).await).to_owned();
    let adjustment = json!({"points": points, "reason": "goodwill"});
    json(
        app.post(&format!("/customers/{customer}/loyalty/adjustments"), &adjustment)
            .await,
        201,
    )
    .await;
    customer
}

async fn balance(app: &TestApp, customer: &str) -> i64 {
    let loyalty = json(app.get(&format!("/customers/{customer}/loyalty")).await, 200).await;
    loyalty["balance"].as_i64().expect("a balance")
}

/// A cart in `channel` with `lines`, made with the owner key.
async fn cart_with(app: &TestApp, channel: &str, lines: &[(&str, i64)]) -> String {
    let cart = json(app.post("/carts", &json!({"channel_id": channel})).await, 201).await;
    let cart_id = id(&cart).to_owned();
    for (sku, quantity) in lines {
        let line = json!({"sku": sku, "quantity": quantity});
        json(app.post(&format!("/carts/{cart_id}/lines"), &line).await, 200).await;
    }
    cart_id
}

fn address() -> Value {
    json!({"name": "Vic Lee", "line1": "Torstr. 1", "city": "Berlin", "postal_code": "10119", "country": "DE"})
}

async fn a_publishable_key_cannot_spend_a_customers_points(app: TestApp) {
    let shop = shop(&app).await;
    let victim = customer_with_points(&app, "vic@example.com", 2000).await;
    let pk = publishable_key(&app, &shop.web).await;

    let named = json!({"channel_id": shop.web, "customer_id": victim});
    problem(
        as_key(&app, &pk, Method::POST, "/carts", Some(&named)).await,
        403,
        "forbidden",
    )
    .await;

    let cart = json(
        as_key(
            &app,
            &pk,
            Method::POST,
            "/carts",
            Some(&json!({"channel_id": shop.web})),
        )
        .await,
        201,
    )
    .await;
    let path = format!("/carts/{}", id(&cart));
    let line = json!({"sku": "B", "quantity": 1});
    json(
        as_key(&app, &pk, Method::POST, &format!("{path}/lines"), Some(&line)).await,
        200,
    )
    .await;
    let shipping = json!({"shipping_address": address()});
    json(as_key(&app, &pk, Method::PATCH, &path, Some(&shipping)).await, 200).await;
    let claim = json!({"customer_id": victim});
    problem(
        as_key(&app, &pk, Method::PATCH, &path, Some(&claim)).await,
        403,
        "forbidden",
    )
    .await;
    let spend = json!({"loyalty_points": 2000, "email": "vic@example.com"});
    problem(
        as_key(&app, &pk, Method::PATCH, &path, Some(&spend)).await,
        403,
        "forbidden",
    )
    .await;
    // Typing the customer's e-mail spends nothing of theirs either.
    let typed = json!({"email": "vic@example.com"});
    json(as_key(&app, &pk, Method::PATCH, &path, Some(&typed)).await, 200).await;
    let order = json(
        as_key(&app, &pk, Method::POST, &format!("{path}/checkout"), Some(&json!({}))).await,
        201,
    )
    .await;
    assert_eq!(order["loyalty_points_redeemed"], 0);
    assert_eq!(balance(&app, &victim).await, 2000, "nothing was spent");

    // The storefront's backend, with a secret key, names the signed-in customer and their points.
    let cart_id = cart_with(&app, &shop.web, &[("B", 1)]).await;
    let path = format!("/carts/{cart_id}");
    json(
        app.patch(&path, &json!({"customer_id": victim, "loyalty_points": 500}))
            .await,
        200,
    )
    .await;
    // The storefront may still change other details, and check the cart out.
    let shipping = json!({"email": "vic@example.com", "shipping_address": address()});
    json(as_key(&app, &pk, Method::PATCH, &path, Some(&shipping)).await, 200).await;
    let order = json(
        as_key(&app, &pk, Method::POST, &format!("{path}/checkout"), Some(&json!({}))).await,
        201,
    )
    .await;
    assert_eq!(order["loyalty_points_redeemed"], 500);
    assert_eq!(balance(&app, &victim).await, 1500);

    // Points set for the storefront's own customer are not turned onto another one by
    // dropping the customer and typing the other's e-mail.
    let buyer = customer_with_points(&app, "own@example.com", 500).await;
    let cart_id = cart_with(&app, &shop.web, &[("B", 1)]).await;
    let path = format!("/carts/{cart_id}");
    let own = json!({"customer_id": buyer, "loyalty_points": 500, "shipping_address": address()});
    json(app.patch(&path, &own).await, 200).await;
    let swap = json!({"customer_id": null, "email": "vic@example.com"});
    let refused = problem(
        as_key(&app, &pk, Method::PATCH, &path, Some(&swap)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["code"], "no_customer");
    assert_eq!(balance(&app, &victim).await, 1500, "nothing more was spent");
}

/// The `(field, code)` of each error of a problem.
fn errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn amounts_beyond_the_largest_price_are_refused_not_wrapped(app: TestApp) {
    let shop = shop(&app).await;
    let max = i64::MAX;
    let line = |sku: &str, amount: i64| json!({"sku": sku, "quantity": 1, "unit_price": {"amount": amount, "currency": "EUR"}});
    let intake = json!({
        "channel_id": shop.web, "external_id": "MP-1",
        "lines": [line("A", max), line("B", max)],
        "shipping_address": address(),
    });
    let refused = problem(app.post("/orders", &intake).await, 422, "validation_failed").await;
    assert_eq!(
        errors(&refused),
        [
            ("lines[0].unit_price.amount".to_owned(), "out_of_range".to_owned()),
            ("lines[1].unit_price.amount".to_owned(), "out_of_range".to_owned())
        ]
    );
    let orders = json(app.get("/orders").await, 200).await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 0, "nothing was taken in");

    let product =
        json!({"title": "Gold", "variants": [{"sku": "G", "title": "G", "price": {"amount": max, "currency": "EUR"}}]});
    let refused = problem(app.post("/products", &product).await, 422, "validation_failed").await;
    assert_eq!(
        errors(&refused),
        [("variants[0].price.amount".to_owned(), "out_of_range".to_owned())]
    );
    let variant = json(app.get(&format!("/products/{}", shop.product_a)).await, 200).await["variants"][0]["id"].clone();
    let listing = json!({"published": true, "variants": [{"variant_id": variant, "price_override": {"amount": max, "currency": "EUR"}}]});
    let path = format!("/products/{}/listings/{}", shop.product_a, shop.web);
    problem(app.put(&path, &listing).await, 422, "validation_failed").await;

    // The largest price is fine, and its totals add up.
    let largest = 100_000_000_000i64;
    let intake = json!({
        "channel_id": shop.web, "external_id": "MP-2",
        "lines": [line("A", largest), line("B", largest)],
        "shipping_address": address(),
    });
    let order = json(app.post("/orders", &intake).await, 201).await;
    assert_eq!(order["total"]["amount"], 2 * largest);
}

/// An order of one `A` (1000) and one `B` (2500) for `customer`, 700 of it paid with points.
async fn order_paid_with_points(app: &TestApp, shop: &Shop, customer: &str) -> Value {
    let cart_id = cart_with(app, &shop.web, &[("A", 1), ("B", 1)]).await;
    let details = json!({"customer_id": customer, "loyalty_points": 700, "shipping_address": address()});
    json(app.patch(&format!("/carts/{cart_id}"), &details).await, 200).await;
    let order = json(app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await, 201).await;
    assert_eq!(
        (order["discount"]["amount"].as_i64(), order["total"]["amount"].as_i64()),
        (Some(700), Some(2800))
    );
    order
}

/// The (points, reason) of a customer's ledger, newest first.
async fn ledger(app: &TestApp, customer: &str) -> Vec<(i64, String)> {
    let loyalty = json(app.get(&format!("/customers/{customer}/loyalty")).await, 200).await;
    loyalty["movements"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["points"].as_i64().unwrap(), m["reason"].as_str().unwrap().to_owned()))
        .collect()
}

async fn cancelling_or_returning_gives_redeemed_points_back(app: TestApp) {
    let shop = shop(&app).await;
    let customer = customer_with_points(&app, "vic@example.com", 2000).await;

    let order = order_paid_with_points(&app, &shop, &customer).await;
    assert_eq!(balance(&app, &customer).await, 1300);
    json(
        app.post(&format!("/orders/{}/cancel", id(&order)), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(
        balance(&app, &customer).await,
        2000,
        "the cancellation gave the points back"
    );
    assert_eq!(ledger(&app, &customer).await[0], (700, "order_cancelled".to_owned()));
    let timeline = json(app.get(&format!("/customers/{customer}/timeline")).await, 200).await;
    let given_back = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "loyalty.points_changed" && e["summary"]["reason"] == "order_cancelled");
    assert!(given_back.is_some(), "{timeline}");

    // Delivered, then returned in two goes: each return gives back the points' share of it.
    let order = order_paid_with_points(&app, &shop, &customer).await;
    let lines = json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]);
    let body = json!({"location_id": shop.warehouse, "kind": "shipment", "lines": lines});
    let path = format!("/orders/{}", id(&order));
    let order = json(app.post(&format!("{path}/fulfillments"), &body).await, 201).await;
    let fulfillment = order["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    let ship = json!({"carrier": "DHL", "tracking_number": "1"});
    json(
        app.post(&format!("{path}/fulfillments/{fulfillment}/ship"), &ship)
            .await,
        200,
    )
    .await;
    json(
        app.post(&format!("{path}/fulfillments/{fulfillment}/deliver"), &json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        balance(&app, &customer).await,
        1300 + 28,
        "28.00 paid in cash earned 28 points"
    );

    let back = json!({"lines": [{"sku": "B", "quantity": 1}], "location_id": shop.warehouse, "restock": true});
    let returned = json(app.post(&format!("{path}/returns"), &back).await, 201).await;
    // B is 2500 of 3500: 500 of the 700 points come back as points, 2000 as cash.
    assert_eq!(returned["returns"][0]["refund"]["amount"], 2000);
    assert_eq!(balance(&app, &customer).await, 1300 + 28 + 500 - 20);
    let back = json!({"lines": [{"sku": "A", "quantity": 1}], "location_id": shop.warehouse, "restock": true});
    let returned = json(app.post(&format!("{path}/returns"), &back).await, 201).await;
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["returns"][1]["refund"]["amount"], 800);
    assert_eq!(balance(&app, &customer).await, 2000, "everything came back");
    let reasons: Vec<String> = ledger(&app, &customer).await.into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons.iter().filter(|r| *r == "redemption_returned").count(), 2);
}

async fn a_cancelled_order_is_on_the_customers_timeline(app: TestApp) {
    let shop = shop(&app).await;
    let customer = customer_with_points(&app, "vic@example.com", 10).await;
    let cart_id = cart_with(&app, &shop.web, &[("A", 2)]).await;
    let details = json!({"customer_id": customer, "shipping_address": address()});
    json(app.patch(&format!("/carts/{cart_id}"), &details).await, 200).await;
    let order = json(app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await, 201).await;
    app.clock.advance_seconds(60);
    json(
        app.post(&format!("/orders/{}/cancel", id(&order)), &json!({})).await,
        200,
    )
    .await;
    let timeline = json(app.get(&format!("/customers/{customer}/timeline")).await, 200).await;
    let newest = &timeline["data"][0];
    assert_eq!(newest["type"], "order.cancelled", "{timeline}");
    assert_eq!(newest["reference"], id(&order));
    assert_eq!(newest["summary"]["number"], order["number"]);
    assert_eq!(newest["summary"]["total"]["amount"], 2000);
}

/// The (subtotal, discount, total) amounts of a cart or an order.
fn sums(of: &Value) -> (i64, i64, i64) {
    let amount = |field: &str| of[field]["amount"].as_i64().expect("an amount");
    (amount("subtotal"), amount("discount"), amount("total"))
}

async fn a_cart_shows_what_checkout_charges(app: TestApp) {
    let shop = shop(&app).await;
    let customer = customer_with_points(&app, "vic@example.com", 500).await;
    let cart_id = cart_with(&app, &shop.web, &[("A", 2)]).await;
    let path = format!("/carts/{cart_id}");

    let product = json(app.get(&format!("/products/{}", shop.product_a)).await, 200).await;
    let repriced = json!({"variants": [{"sku": "A", "title": "A", "price": {"amount": 3000, "currency": "EUR"}}]});
    let changed = app
        .request(Method::PATCH, &format!("/products/{}", shop.product_a))
        .header("If-Match", product["version"].to_string())
        .json(&repriced)
        .send()
        .await
        .unwrap();
    json(changed, 200).await;
    let cart = json(app.get(&path).await, 200).await;
    assert_eq!(cart["lines"][0]["unit_price"]["amount"], 3000);
    assert_eq!(sums(&cart), (6000, 0, 6000));

    let too_many = json!({"customer_id": customer, "loyalty_points": 501, "shipping_address": address()});
    let refused = problem(app.patch(&path, &too_many).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["field"], "loyalty_points", "{refused}");
    let details = json!({"customer_id": customer, "loyalty_points": 400, "shipping_address": address()});
    let cart = json(app.patch(&path, &details).await, 200).await;
    assert_eq!(sums(&cart), (6000, 400, 5600), "{cart}");
    let cart = json(app.get(&path).await, 200).await;
    assert_eq!(sums(&cart), (6000, 400, 5600));

    // Points spent elsewhere meanwhile: checkout names the cart's field too.
    let spent = json!({"points": -200, "reason": "correction"});
    json(
        app.post(&format!("/customers/{customer}/loyalty/adjustments"), &spent)
            .await,
        201,
    )
    .await;
    let refused = problem(
        app.post(&format!("{path}/checkout"), &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "loyalty_points", "{refused}");
    // Other details still change meanwhile; the points are settled before checkout.
    json(app.patch(&path, &json!({"email": "vic@example.com"})).await, 200).await;
    json(app.patch(&path, &json!({"loyalty_points": 300})).await, 200).await;
    let order = json(app.post(&format!("{path}/checkout"), &json!({})).await, 201).await;
    assert_eq!(sums(&order), (6000, 300, 5700));
}

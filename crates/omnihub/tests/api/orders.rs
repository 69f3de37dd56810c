//! One order system for every channel: carts, checkout, orders from elsewhere, fulfilment from
//! anywhere, returns anywhere.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem, types};
use crate::on_both_backends;

on_both_backends!(
    web_order_ships_from_two_locations,
    a_big_order_is_written_whole,
    lines_added_at_once_to_one_cart_all_land,
    a_cart_changed_behind_the_server_is_changed_from_its_latest_version,
    a_cart_e_mail_places_the_order_on_the_customer_who_has_it,
    app_order_is_picked_up_in_a_store,
    pickup_where_the_stock_is_not_names_stores_that_have_it,
    marketplace_orders_are_taken_in_once,
    a_pos_sale_takes_stock_from_its_store,
    reserve_in_store_lapses_and_gives_the_stock_back,
    an_online_order_is_returned_in_a_store,
    same_day_only_within_a_store_radius,
    the_cart_follows_the_customer,
    a_cart_is_only_for_a_customer_in_use,
    bad_orders_change_nothing,
    points_earned_online_are_redeemed_in_a_store,
    price_and_listing_changes_reach_the_next_cart_line_at_once,
);

struct Shop {
    warehouse: String,
    berlin: String,
    hamburg: String,
    web: String,
}

async fn location(
    app: &TestApp,
    name: &str,
    kind: &str,
    lat: f64,
    lon: f64,
    pickup: bool,
    radius: Option<f64>,
) -> String {
    let mut body = fixtures::location_body(name, kind);
    body["geo"] = json!({"lat": lat, "lon": lon});
    body["pickup"] = json!(pickup);
    if let Some(radius) = radius {
        body["same_day_radius_km"] = json!(radius);
    }
    id(&json(app.post("/locations", &body).await, 201).await).to_owned()
}

/// A warehouse in Erfurt, stores in Berlin and Hamburg; SKUs A, B, C at 1000, 2500, 400.
async fn shop(app: &TestApp) -> Shop {
    let warehouse = location(app, "Warehouse", "warehouse", 50.98, 11.03, false, None).await;
    let berlin = location(app, "Berlin", "store", 52.52, 13.40, true, Some(15.0)).await;
    let hamburg = location(app, "Hamburg", "store", 53.55, 9.99, true, Some(15.0)).await;
    let web = id(&fixtures::channel(app, "Web", "web", &[&warehouse, &berlin, &hamburg]).await).to_owned();
    for (sku, price) in [("A", 1000), ("B", 2500), ("C", 400)] {
        let product = fixtures::product(app, sku, &[sku], price).await;
        json(
            app.put(
                &format!("/products/{}/listings/{web}", id(&product)),
                &json!({"published": true}),
            )
            .await,
            200,
        )
        .await;
    }
    Shop {
        warehouse,
        berlin,
        hamburg,
        web,
    }
}

async fn receive(app: &TestApp, sku: &str, location: &str, quantity: i64) {
    let body = json!({"sku": sku, "location_id": location, "delta": quantity, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &body).await, 200).await;
}

async fn level(app: &TestApp, sku: &str, location: &str) -> (i64, i64) {
    let levels = json(
        app.get(&format!("/inventory/levels?sku={sku}&location_id={location}"))
            .await,
        200,
    )
    .await;
    let l = &levels["data"][0];
    (l["on_hand"].as_i64().unwrap_or(0), l["reserved"].as_i64().unwrap_or(0))
}

/// The (SKU, quantity) of each line of a cart or an order, in order.
fn skus_and_quantities(lines_of: &Value) -> Vec<(&str, i64)> {
    lines_of["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap(), l["quantity"].as_i64().unwrap()))
        .collect()
}

fn address(lat: f64, lon: f64) -> Value {
    json!({"name": "Kim Meyer", "line1": "Torstr. 1", "city": "Berlin", "postal_code": "10119", "country": "DE", "geo": {"lat": lat, "lon": lon}})
}

/// A cart in `channel` with these lines and details, ready to check out.
async fn cart(app: &TestApp, channel: &str, lines: &[(&str, i64)], details: Value) -> String {
    let cart = json(app.post("/carts", &json!({"channel_id": channel})).await, 201).await;
    let cart_id = id(&cart).to_owned();
    for (sku, quantity) in lines {
        json(
            app.post(
                &format!("/carts/{cart_id}/lines"),
                &json!({"sku": sku, "quantity": quantity}),
            )
            .await,
            200,
        )
        .await;
    }
    json(app.patch(&format!("/carts/{cart_id}"), &details).await, 200).await;
    cart_id
}

/// Checks the cart out; the order answered must be the order as it reads back.
async fn checkout(app: &TestApp, cart_id: &str) -> Value {
    let order = json(app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await, 201).await;
    let read = json(app.get(&format!("/orders/{}", id(&order))).await, 200).await;
    assert_eq!(order, read, "the placed order differs from the order read back");
    order
}

async fn step(app: &TestApp, order: &Value, fulfillment: &str, step: &str, body: Value) -> reqwest::Response {
    app.post(
        &format!("/orders/{}/fulfillments/{fulfillment}/{step}", id(order)),
        &body,
    )
    .await
}

async fn web_order_ships_from_two_locations(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 2).await;
    receive(&app, "B", &shop.berlin, 1).await;
    let details =
        json!({"email": "Kim@Example.com", "shipping_address": address(52.5, 13.4), "fulfillment": {"method": "ship"}});
    let cart_id = cart(&app, &shop.web, &[("A", 2), ("B", 1)], details).await;
    let order = checkout(&app, &cart_id).await;
    assert_eq!(order["number"], "#1001");
    for quoted in ["%231001", "1001"] {
        assert_eq!(json(app.get(&format!("/orders/{quoted}")).await, 200).await, order);
    }
    problem(app.get("/orders/%231002").await, 404, "not_found").await;
    assert_eq!(order["status"], "allocated");
    assert_eq!(order["email"], "kim@example.com");
    assert_eq!(
        (order["subtotal"]["amount"].as_i64(), order["total"]["amount"].as_i64()),
        (Some(4500), Some(4500))
    );
    assert_eq!(
        order["lines"][0]["allocations"],
        json!([{"location_id": shop.warehouse, "quantity": 2}])
    );
    assert_eq!(
        order["lines"][1]["allocations"],
        json!([{"location_id": shop.berlin, "quantity": 1}])
    );
    assert_eq!(level(&app, "A", &shop.warehouse).await, (2, 2));
    problem(
        app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await,
        409,
        "conflict",
    )
    .await;

    let from_warehouse =
        json!({"location_id": shop.warehouse, "kind": "shipment", "lines": [{"sku": "A", "quantity": 2}]});
    let order = json(
        app.post(&format!("/orders/{}/fulfillments", id(&order)), &from_warehouse)
            .await,
        201,
    )
    .await;
    let first = order["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    for (details, missing) in [
        (json!({}), "carrier"),
        (json!({"carrier": " ", "tracking_number": "00340434"}), "carrier"),
        (json!({"carrier": "DHL", "tracking_number": ""}), "tracking_number"),
    ] {
        let refused = problem(
            step(&app, &order, &first, "ship", details).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], missing);
    }
    let order = json(
        step(
            &app,
            &order,
            &first,
            "ship",
            json!({"carrier": "DHL", "tracking_number": "00340434"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(order["status"], "partially_fulfilled");
    assert_eq!(order["fulfillments"][0]["tracking_number"], "00340434");
    assert_eq!(level(&app, "A", &shop.warehouse).await, (0, 0));

    let too_many = json!({"location_id": shop.berlin, "kind": "shipment", "lines": [{"sku": "B", "quantity": 2}]});
    problem(
        app.post(&format!("/orders/{}/fulfillments", id(&order)), &too_many)
            .await,
        422,
        "validation_failed",
    )
    .await;
    let from_store = json!({"location_id": shop.berlin, "kind": "shipment", "lines": [{"sku": "B", "quantity": 1}]});
    let order = json(
        app.post(&format!("/orders/{}/fulfillments", id(&order)), &from_store)
            .await,
        201,
    )
    .await;
    let second = order["fulfillments"][1]["id"].as_str().unwrap().to_owned();
    let order = json(
        step(
            &app,
            &order,
            &second,
            "ship",
            json!({"carrier": "DPD", "tracking_number": "X1"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(order["status"], "shipped");
    problem(
        app.post(&format!("/orders/{}/cancel", id(&order)), &json!({})).await,
        409,
        "conflict",
    )
    .await;
    json(step(&app, &order, &first, "deliver", json!({})).await, 200).await;
    let order = json(step(&app, &order, &second, "deliver", json!({})).await, 200).await;
    assert_eq!(order["status"], "completed");
    problem(step(&app, &order, &second, "deliver", json!({})).await, 409, "conflict").await;

    let sales = json(app.get("/inventory/movements?sku=A").await, 200).await;
    let last = sales["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["reason"].as_str(),
            last["delta"].as_i64(),
            last["reference"].as_str()
        ),
        (Some("sale"), Some(-2), Some("#1001"))
    );
    let log = json(
        app.get("/events?types=order.placed,fulfillment.shipped,fulfillment.delivered")
            .await,
        200,
    )
    .await;
    assert_eq!(log["data"].as_array().unwrap().len(), 5);
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

async fn app_order_is_picked_up_in_a_store(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "C", &shop.berlin, 3).await;
    let mobile = id(&fixtures::channel(&app, "App", "mobile_app", &[&shop.warehouse, &shop.berlin]).await).to_owned();
    let product = json(app.get("/products?limit=10").await, 200).await["data"][2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(
        app.put(
            &format!("/products/{product}/listings/{mobile}"),
            &json!({"published": true}),
        )
        .await,
        200,
    )
    .await;
    let details = json!({"fulfillment": {"method": "pickup", "location_id": shop.berlin}});
    let cart_id = cart(&app, &mobile, &[("C", 2)], details).await;
    let order = checkout(&app, &cart_id).await;
    assert_eq!(
        order["fulfillment"],
        json!({"method": "pickup", "location_id": shop.berlin})
    );
    let pickup = order["fulfillments"][0].clone();
    assert_eq!(
        (pickup["kind"].as_str(), pickup["status"].as_str()),
        (Some("pickup"), Some("pending"))
    );
    let fid = pickup["id"].as_str().unwrap().to_owned();

    let order = json(step(&app, &order, &fid, "ready", json!({})).await, 200).await;
    assert_eq!(order["status"], "ready_for_pickup");
    assert_eq!(level(&app, "C", &shop.berlin).await, (3, 2));
    let order = json(step(&app, &order, &fid, "collect", json!({})).await, 200).await;
    assert_eq!(order["status"], "completed");
    assert_eq!(level(&app, "C", &shop.berlin).await, (1, 0));
    problem(step(&app, &order, &fid, "collect", json!({})).await, 409, "conflict").await;
    assert_eq!(
        level(&app, "C", &shop.berlin).await,
        (1, 0),
        "a second collect takes nothing"
    );
    let log = json(
        app.get("/events?types=fulfillment.ready_for_pickup,fulfillment.collected")
            .await,
        200,
    )
    .await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2);
}

async fn pickup_where_the_stock_is_not_names_stores_that_have_it(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.hamburg, 5).await;
    let details = json!({"fulfillment": {"method": "pickup", "location_id": shop.berlin}});
    let cart_id = cart(&app, &shop.web, &[("A", 2)], details).await;
    let refused = problem(
        app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await,
        409,
        "insufficient_stock",
    )
    .await;
    let errors = refused["errors"].as_array().unwrap();
    assert_eq!(errors[0]["field"], "lines[0].quantity");
    assert_eq!(errors[1]["code"], "available_at");
    assert!(
        errors[1]["message"].as_str().unwrap().starts_with(&shop.hamburg),
        "{errors:?}"
    );
    assert_eq!(level(&app, "A", &shop.hamburg).await, (5, 0), "nothing held");
    assert_eq!(
        json(app.get(&format!("/carts/{cart_id}")).await, 200).await["status"],
        "active"
    );

    // Nobody picks up at the warehouse, and the web shop does not sell from an outlet elsewhere:
    // the choice itself is refused and the cart keeps its store.
    let path = format!("/carts/{cart_id}");
    let before = json(app.get(&path).await, 200).await;
    let outlet = id(&fixtures::location(&app, "Outlet", "store").await).to_owned();
    for (at, code) in [(&shop.warehouse, "no_pickup"), (&outlet, "not_in_channel")] {
        let pickup = json!({"fulfillment": {"method": "pickup", "location_id": at}});
        let refused = problem(app.patch(&path, &pickup).await, 422, "validation_failed").await;
        assert_eq!(refused["errors"][0]["field"], "fulfillment.location_id");
        assert_eq!(refused["errors"][0]["code"], code);
    }
    assert_eq!(json(app.get(&path).await, 200).await, before);
    // A shipment is sourced at checkout: a location named with it is not checked.
    let shipped = json!({"fulfillment": {"method": "ship", "location_id": outlet}});
    json(app.patch(&path, &shipped).await, 200).await;
    let back = json!({"fulfillment": {"method": "pickup", "location_id": shop.berlin}});
    json(app.patch(&path, &back).await, 200).await;

    // A store that stops offering pickup after it was chosen: the cart's other details still
    // change, and its checkout is refused.
    let no_more = json!({"pickup": false});
    json(app.patch(&format!("/locations/{}", shop.berlin), &no_more).await, 200).await;
    let email = json!({"email": "buyer@example.com"});
    json(app.patch(&path, &email).await, 200).await;
    let refused = problem(
        app.post(&format!("{path}/checkout"), &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["code"], "no_pickup");
}

async fn marketplace_orders_are_taken_in_once(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "B", &shop.warehouse, 4).await;
    let market = id(&fixtures::channel(&app, "Marketplace", "marketplace", &[&shop.warehouse]).await).to_owned();
    let intake = json!({
        "channel_id": market, "external_id": "MP-2024-0001",
        "customer": {"name": "Kim", "identities": [{"kind": "email", "value": "kim@example.com"}]},
        "lines": [{"sku": "B", "quantity": 2, "unit_price": {"amount": 2700, "currency": "EUR"}}],
        "fulfillment": {"method": "ship"}, "shipping_address": address(52.5, 13.4)
    });
    let first = json(app.post("/orders", &intake).await, 201).await;
    assert_eq!(first["external_id"], "MP-2024-0001");
    assert_eq!(first["total"]["amount"], 5400);
    let again = json(app.post("/orders", &intake).await, 200).await;
    assert_eq!(again["id"], first["id"]);
    let orders = json(app.get(&format!("/orders?channel_id={market}")).await, 200).await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 1);
    assert_eq!(level(&app, "B", &shop.warehouse).await, (4, 2));

    let wrong_currency = json!({"channel_id": market, "external_id": "MP-2", "lines": [{"sku": "B", "quantity": 1, "unit_price": {"amount": 1, "currency": "USD"}}], "fulfillment": {"method": "ship"}, "shipping_address": address(52.5, 13.4)});
    problem(app.post("/orders", &wrong_currency).await, 422, "validation_failed").await;
}

async fn a_pos_sale_takes_stock_from_its_store(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "C", &shop.berlin, 5).await;
    receive(&app, "C", &shop.warehouse, 50).await;
    let pos = id(&fixtures::channel(&app, "POS Berlin", "pos", &[&shop.berlin]).await).to_owned();
    let sale = json!({"channel_id": pos, "external_id": "TILL-1-0042", "lines": [{"sku": "C", "quantity": 2, "unit_price": {"amount": 400, "currency": "EUR"}}]});
    let order = json(app.post("/orders", &sale).await, 201).await;
    assert_eq!(order["status"], "completed");
    assert_eq!(order["fulfillments"][0]["status"], "collected");
    assert_eq!(level(&app, "C", &shop.berlin).await, (3, 0));
    assert_eq!(level(&app, "C", &shop.warehouse).await, (50, 0));
    // The web shop, which sells from the store too, sees the store's stock go down at once.
    let web = json(
        app.get(&format!("/availability?channel_id={}&skus=C", shop.web)).await,
        200,
    )
    .await;
    assert_eq!(web["data"][0]["available"], 53);
}

async fn reserve_in_store_lapses_and_gives_the_stock_back(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "B", &shop.hamburg, 1).await;
    let details = json!({"fulfillment": {"method": "reserve_in_store", "location_id": shop.hamburg}});
    let cart_id = cart(&app, &shop.web, &[("B", 1)], details).await;
    let order = checkout(&app, &cart_id).await;
    assert!(order["hold_expires_at"].is_string());
    assert_eq!(level(&app, "B", &shop.hamburg).await, (1, 1));
    app.clock.advance_seconds(49 * 3600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = json(app.get(&format!("/orders/{}", id(&order))).await, 200).await;
        if now["status"] == "cancelled" {
            assert_eq!(now["fulfillments"][0]["status"], "cancelled");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the hold did not lapse");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(level(&app, "B", &shop.hamburg).await, (1, 0));
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

async fn an_online_order_is_returned_in_a_store(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 3).await;
    let details = json!({"shipping_address": address(52.5, 13.4)});
    let cart_id = cart(&app, &shop.web, &[("A", 3)], details).await;
    let order = checkout(&app, &cart_id).await;
    let body = json!({"location_id": shop.warehouse, "kind": "shipment", "lines": [{"sku": "A", "quantity": 3}]});
    let order = json(
        app.post(&format!("/orders/{}/fulfillments", id(&order)), &body).await,
        201,
    )
    .await;
    let fid = order["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    json(
        step(
            &app,
            &order,
            &fid,
            "ship",
            json!({"carrier": "DHL", "tracking_number": "1"}),
        )
        .await,
        200,
    )
    .await;
    json(step(&app, &order, &fid, "deliver", json!({})).await, 200).await;

    let path = format!("/orders/{}/returns", id(&order));
    let greedy = json!({"location_id": shop.berlin, "restock": true, "reason": "too big", "lines": [{"sku": "A", "quantity": 4}]});
    problem(app.post(&path, &greedy).await, 422, "validation_failed").await;
    let back = json!({"location_id": shop.berlin, "restock": true, "reason": "too big", "lines": [{"sku": "A", "quantity": 2}]});
    let order = json(app.post(&path, &back).await, 201).await;
    assert_eq!(
        order["returns"][0]["refund"],
        json!({"amount": 2000, "currency": "EUR"})
    );
    assert_eq!(order["status"], "completed");
    assert_eq!(
        level(&app, "A", &shop.berlin).await,
        (2, 0),
        "restocked in the store it came back to"
    );
    let damaged = json!({"location_id": shop.hamburg, "restock": false, "reason": "damaged", "lines": [{"sku": "A", "quantity": 1}]});
    let order = json(app.post(&path, &damaged).await, 201).await;
    assert_eq!(order["status"], "returned");
    assert_eq!(level(&app, "A", &shop.hamburg).await, (0, 0));
    problem(app.post(&path, &damaged).await, 409, "conflict").await;
    let log = json(app.get("/events?types=return.received").await, 200).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2);
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

async fn same_day_only_within_a_store_radius(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "C", &shop.berlin, 2).await;
    let near = json!({"shipping_address": address(52.50, 13.42), "fulfillment": {"method": "same_day"}});
    let cart_id = cart(&app, &shop.web, &[("C", 1)], near).await;
    let order = checkout(&app, &cart_id).await;
    assert_eq!(order["fulfillments"][0]["location_id"], shop.berlin);
    assert_eq!(order["fulfillments"][0]["kind"], "delivery");

    let far = json!({"shipping_address": address(48.13, 11.57), "fulfillment": {"method": "same_day"}});
    let cart_id = cart(&app, &shop.web, &[("C", 1)], far).await;
    let refused = problem(
        app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["code"], "out_of_radius");
    assert_eq!(level(&app, "C", &shop.berlin).await, (2, 1));
}

async fn the_cart_follows_the_customer(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 5).await;
    let kim = json!({"identities": [{"kind": "email", "value": "kim@example.com"}]});
    let kim = json(app.post("/customers", &kim).await, 201).await;
    let customer = id(&kim);
    let web_cart = json(
        app.post("/carts", &json!({"channel_id": shop.web, "customer_id": customer}))
            .await,
        201,
    )
    .await;
    json(
        app.post(
            &format!("/carts/{}/lines", id(&web_cart)),
            &json!({"sku": "A", "quantity": 1}),
        )
        .await,
        200,
    )
    .await;
    let found = json(app.get(&format!("/customers/{customer}/cart")).await, 200).await;
    assert_eq!(found["id"], web_cart["id"]);
    assert_eq!(found["lines"][0]["sku"], "A");
    assert_eq!(found["subtotal"]["amount"], 1000);
    // The agent continues the same cart.
    let line = found["lines"][0]["id"].as_str().unwrap();
    let more = app
        .request(Method::PATCH, &format!("/carts/{}/lines/{line}", id(&web_cart)))
        .json(&json!({"quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(more, 200).await["lines"][0]["quantity"], 3);
    let log = json(app.get("/events?types=cart.updated").await, 200).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2);
    problem(app.get("/customers/cus_nobody/cart").await, 404, "not_found").await;

    let key = app
        .store()
        .generate_api_key("storefront", &[], Some(&shop.web), &[])
        .await
        .unwrap()
        .token;
    let own = app
        .client
        .post(format!("{}/api/v1/carts", app.base))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(own, 201).await["channel_id"], shop.web);
    let orders = app
        .client
        .get(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    problem(orders, 403, "forbidden").await;
}

/// Order lines and allocations are written many rows per statement, in batches: a dozen lines
/// split over two locations each are all there, as answered and as read back.
async fn a_big_order_is_written_whole(app: TestApp) {
    let shop = shop(&app).await;
    let skus: Vec<String> = (1..=12).map(|n| format!("BIG-{n:02}")).collect();
    let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
    let product = fixtures::product(&app, "Big", &sku_refs, 100).await;
    let listing = format!("/products/{}/listings/{}", id(&product), shop.web);
    json(app.put(&listing, &json!({"published": true})).await, 200).await;
    for sku in &skus {
        receive(&app, sku, &shop.warehouse, 2).await;
        receive(&app, sku, &shop.berlin, 1).await;
    }
    let lines: Vec<(&str, i64)> = sku_refs.iter().map(|sku| (*sku, 3)).collect();
    let details = json!({"shipping_address": address(52.5, 13.4), "fulfillment": {"method": "ship"}});
    let order = checkout(&app, &cart(&app, &shop.web, &lines, details).await).await;
    let written: Vec<(&str, i64, usize)> = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let allocations = l["allocations"].as_array().unwrap();
            let units = allocations.iter().map(|a| a["quantity"].as_i64().unwrap()).sum();
            (l["sku"].as_str().unwrap(), units, allocations.len())
        })
        .collect();
    let wanted: Vec<(&str, i64, usize)> = sku_refs.iter().map(|sku| (*sku, 3, 2)).collect();
    assert_eq!(written, wanted);
    for sku in &skus {
        assert_eq!(level(&app, sku, &shop.warehouse).await, (2, 2));
        assert_eq!(level(&app, sku, &shop.berlin).await, (1, 1));
    }
}

/// A line added answers the cart as it reads back. Lines added at once to one cart all land:
/// an add that finds the cart changed since it read it reads it again, and one SKU's units add
/// up on one line.
async fn lines_added_at_once_to_one_cart_all_land(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 100).await;
    receive(&app, "B", &shop.warehouse, 100).await;
    let cart_id = id(&json(app.post("/carts", &json!({"channel_id": shop.web})).await, 201).await).to_owned();
    let (path, lines) = (format!("/carts/{cart_id}"), format!("/carts/{cart_id}/lines"));
    let added = json(app.post(&lines, &json!({"sku": "A", "quantity": 1})).await, 200).await;
    assert_eq!(added, json(app.get(&path).await, 200).await);
    let skus = ["A", "B"];
    let bodies: Vec<Value> = (0..8).map(|n| json!({"sku": skus[n % 2], "quantity": 1})).collect();
    for answer in futures_util::future::join_all(bodies.iter().map(|body| app.post(&lines, body))).await {
        json(answer, 200).await;
    }
    let cart = json(app.get(&path).await, 200).await;
    let held = skus_and_quantities(&cart);
    assert_eq!(held, [("A", 5), ("B", 4)]);
    assert_eq!(cart["version"], 10, "every add moved the version on once");
    assert_eq!(cart["subtotal"]["amount"], 5 * 1000 + 4 * 2500);
}

/// A checkout with only an e-mail lands on the customer who has that e-mail, however it is
/// written, and on a new customer when nobody has it.
async fn a_cart_e_mail_places_the_order_on_the_customer_who_has_it(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 5).await;
    let kim = json!({"identities": [{"kind": "email", "value": "kim@example.com"}]});
    let kim = id(&json(app.post("/customers", &kim).await, 201).await).to_owned();
    let mut buyers = Vec::new();
    for email in [
        " Kim@Example.COM ",
        "kim@example.com",
        "lea@example.com",
        "lea@example.com",
    ] {
        let details = json!({"email": email, "shipping_address": address(52.5, 13.4)});
        let cart_id = cart(&app, &shop.web, &[("A", 1)], details).await;
        let order = checkout(&app, &cart_id).await;
        buyers.push(order["customer_id"].as_str().expect("a buyer").to_owned());
    }
    assert_eq!(buyers[..2], [kim.clone(), kim.clone()]);
    assert_ne!(buyers[2], kim, "a new customer for a new e-mail");
    assert_eq!(buyers[3], buyers[2]);
    let lea = json(app.get(&format!("/customers/{}", buyers[2])).await, 200).await;
    assert_eq!(lea["identities"][0]["value"], "lea@example.com");
}

/// A server remembers the carts it wrote, to spare reading them back at every step; a cart
/// changed without it (a merge of its customer, another server on the same database) is still
/// changed, and checked out, as it is now.
async fn a_cart_changed_behind_the_server_is_changed_from_its_latest_version(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 10).await;
    receive(&app, "B", &shop.warehouse, 10).await;
    let customer = |email: &str| json!({"identities": [{"kind": "email", "value": email}]});
    let kept = id(&json(app.post("/customers", &customer("kept@example.com")).await, 201).await).to_owned();
    let merged = id(&json(app.post("/customers", &customer("merged@example.com")).await, 201).await).to_owned();
    let cart = json(
        app.post("/carts", &json!({"channel_id": shop.web, "customer_id": merged}))
            .await,
        201,
    )
    .await;
    let (path, lines) = (format!("/carts/{}", id(&cart)), format!("/carts/{}/lines", id(&cart)));
    json(app.post(&lines, &json!({"sku": "A", "quantity": 1})).await, 200).await;
    json(
        app.post(&format!("/customers/{kept}/merge"), &json!({"customer_id": merged}))
            .await,
        200,
    )
    .await;
    let moved = json(app.get(&path).await, 200).await;
    assert_eq!(
        (moved["customer_id"].as_str(), moved["version"].as_i64()),
        (Some(kept.as_str()), Some(3))
    );

    let patched = app
        .request(Method::PATCH, &path)
        .header("If-Match", "3")
        .json(&json!({"email": "Buyer@Example.com", "shipping_address": address(52.5, 13.4)}))
        .send()
        .await
        .unwrap();
    let patched = json(patched, 200).await;
    assert_eq!(patched["customer_id"], kept.as_str(), "the merge is kept: {patched}");
    assert_eq!(
        (patched["email"].as_str(), patched["version"].as_i64()),
        (Some("buyer@example.com"), Some(4))
    );
    assert_eq!(patched, json(app.get(&path).await, 200).await);
    let stale = app
        .request(Method::PATCH, &path)
        .header("If-Match", "3")
        .json(&json!({"email": "late@example.com"}))
        .send()
        .await
        .unwrap();
    problem(stale, 412, "version_mismatch").await;

    // Another server adds a line (on SQLite, where one file has one server, this one does).
    let elsewhere = app.another_node().await.unwrap_or(app.base.clone());
    let added = app
        .client
        .post(format!("{elsewhere}/api/v1{lines}"))
        .bearer_auth(crate::helpers::OWNER_KEY)
        .json(&json!({"sku": "B", "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(added, 200).await["version"], 5);
    let order = json(app.post(&format!("{path}/checkout"), &json!({})).await, 201).await;
    let ordered = skus_and_quantities(&order);
    assert_eq!(ordered, [("A", 1), ("B", 2)]);
    assert_eq!(
        (order["customer_id"].as_str(), order["email"].as_str()),
        (Some(kept.as_str()), Some("buyer@example.com"))
    );
    assert_eq!(json(app.get(&path).await, 200).await["status"], "checked_out");
    let again = app.post(&lines, &json!({"sku": "A", "quantity": 1})).await;
    problem(again, 409, "conflict").await;
}

/// Its order would land on the cart's customer: one unknown, merged away or erased is refused
/// when the cart is started and when it is changed, and the cart stays as it was.
async fn a_cart_is_only_for_a_customer_in_use(app: TestApp) {
    let shop = shop(&app).await;
    let customer = |email: &str| json!({"identities": [{"kind": "email", "value": email}]});
    let kept = id(&json(app.post("/customers", &customer("kept@example.com")).await, 201).await).to_owned();
    let merged = id(&json(app.post("/customers", &customer("merged@example.com")).await, 201).await).to_owned();
    let erased = id(&json(app.post("/customers", &customer("erased@example.com")).await, 201).await).to_owned();
    json(
        app.post(&format!("/customers/{kept}/merge"), &json!({"customer_id": merged}))
            .await,
        200,
    )
    .await;
    let gone = app.delete(&format!("/customers/{erased}")).await;
    assert_eq!(gone.status(), 204);

    let cart = json(app.post("/carts", &json!({"channel_id": shop.web})).await, 201).await;
    let path = format!("/carts/{}", id(&cart));
    for (customer_id, code) in [
        ("cus_nope", "not_found"),
        (merged.as_str(), "already_merged"),
        (erased.as_str(), "erased"),
    ] {
        let started = app
            .post("/carts", &json!({"channel_id": shop.web, "customer_id": customer_id}))
            .await;
        let refused = problem(started, 422, "validation_failed").await;
        assert_eq!(
            (
                refused["errors"][0]["field"].as_str(),
                refused["errors"][0]["code"].as_str()
            ),
            (Some("customer_id"), Some(code))
        );
        let changed = problem(
            app.patch(&path, &json!({"customer_id": customer_id})).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(changed["errors"][0]["code"], code);
    }
    assert_eq!(json(app.get(&path).await, 200).await, cart, "the cart is as it was");
    let log = json(app.get("/events?types=cart.created,cart.updated").await, 200).await;
    assert_eq!(
        log["data"].as_array().unwrap().len(),
        1,
        "only the one cart started: {log}"
    );

    let started = json(
        app.post("/carts", &json!({"channel_id": shop.web, "customer_id": kept}))
            .await,
        201,
    )
    .await;
    assert_eq!(started["customer_id"], kept);
    let changed = json(
        app.patch(&path, &json!({"customer_id": kept, "email": " Kim@Example.COM "}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        (changed["customer_id"].as_str(), changed["email"].as_str()),
        (Some(kept.as_str()), Some("kim@example.com"))
    );
    assert_eq!(json(app.get(&path).await, 200).await, changed, "answered as stored");
    let log = json(app.get("/events?types=cart.updated").await, 200).await;
    assert_eq!(log["data"][0]["data"], changed, "logged as answered");
}

async fn bad_orders_change_nothing(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 1).await;
    let cart = json(app.post("/carts", &json!({"channel_id": shop.web})).await, 201).await;
    let cart_id = id(&cart);
    problem(
        app.post(
            &format!("/carts/{cart_id}/lines"),
            &json!({"sku": "NOPE", "quantity": 1}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.post(&format!("/carts/{cart_id}/lines"), &json!({"sku": "A", "quantity": 0}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.post(&format!("/carts/{cart_id}/lines"), &json!({"sku": "A", "quantity": 2}))
            .await,
        409,
        "insufficient_stock",
    )
    .await;
    problem(
        app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    json(
        app.post(&format!("/carts/{cart_id}/lines"), &json!({"sku": "A", "quantity": 1}))
            .await,
        200,
    )
    .await;
    let no_address = problem(
        app.post(&format!("/carts/{cart_id}/checkout"), &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(no_address["errors"][0]["field"], "shipping_address");
    problem(
        app.patch(
            &format!("/carts/{cart_id}"),
            &json!({"fulfillment": {"method": "teleport"}}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.post("/carts", &json!({"channel_id": "chn_nope"})).await,
        422,
        "validation_failed",
    )
    .await;
    problem(app.get("/orders/ord_nope").await, 404, "not_found").await;
    problem(app.get("/orders?status=lost").await, 422, "validation_failed").await;
    assert_eq!(level(&app, "A", &shop.warehouse).await, (1, 0));
    assert_eq!(json(app.get("/orders").await, 200).await["data"], json!([]));

    json(
        app.patch(
            &format!("/carts/{cart_id}"),
            &json!({"shipping_address": address(52.5, 13.4)}),
        )
        .await,
        200,
    )
    .await;
    let order = checkout(&app, cart_id).await;
    let cancelled = json(
        app.post(&format!("/orders/{}/cancel", id(&order)), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        level(&app, "A", &shop.warehouse).await,
        (1, 0),
        "cancelling released the hold"
    );
    problem(
        app.post(&format!("/orders/{}/cancel", id(&order)), &json!({})).await,
        409,
        "conflict",
    )
    .await;
}

/// A shopper buys on the web with an e-mail, writes from a phone that becomes part of the same
/// profile, and redeems the points earned online at a store's till.
async fn points_earned_online_are_redeemed_in_a_store(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "B", &shop.warehouse, 4).await;
    receive(&app, "C", &shop.berlin, 4).await;
    let details = json!({"email": "jane@example.com", "shipping_address": address(52.5, 13.4)});
    let cart_id = cart(&app, &shop.web, &[("B", 2)], details).await;
    let order = checkout(&app, &cart_id).await;
    let customer = order["customer_id"]
        .as_str()
        .expect("the e-mail found its customer")
        .to_owned();
    let body = json!({"location_id": shop.warehouse, "kind": "shipment", "lines": [{"sku": "B", "quantity": 2}]});
    let order = json(
        app.post(&format!("/orders/{}/fulfillments", id(&order)), &body).await,
        201,
    )
    .await;
    let fid = order["fulfillments"][0]["id"].as_str().unwrap().to_owned();
    json(
        step(
            &app,
            &order,
            &fid,
            "ship",
            json!({"carrier": "DHL", "tracking_number": "7"}),
        )
        .await,
        200,
    )
    .await;
    json(step(&app, &order, &fid, "deliver", json!({})).await, 200).await;
    let loyalty = json(app.get(&format!("/customers/{customer}/loyalty")).await, 200).await;
    assert_eq!(
        loyalty["balance"], 50,
        "one point per euro of the 50.00 paid: {loyalty}"
    );

    // In the chat the shopper gives the e-mail from a WhatsApp number: one profile with both.
    let resolved = app
        .post("/customers/resolve", &json!({"identities": [{"kind": "whatsapp", "value": "4915112345678"}, {"kind": "email", "value": "JANE@example.com"}]}))
        .await;
    assert_eq!(json(resolved, 200).await["id"], customer);

    let pos = id(&fixtures::channel(&app, "POS Berlin", "pos", &[&shop.berlin]).await).to_owned();
    let sale = json!({
        "channel_id": pos, "external_id": "TILL-7", "loyalty_points": 30,
        "customer": {"identities": [{"kind": "phone", "value": "0151 12345678"}]},
        "lines": [{"sku": "C", "quantity": 1, "unit_price": {"amount": 400, "currency": "EUR"}}]
    });
    let sale = json(app.post("/orders", &sale).await, 201).await;
    assert_eq!(sale["customer_id"], customer);
    assert_eq!(
        (sale["discount"]["amount"].as_i64(), sale["total"]["amount"].as_i64()),
        (Some(30), Some(370))
    );
    let loyalty = json(app.get(&format!("/customers/{customer}/loyalty")).await, 200).await;
    assert_eq!(loyalty["balance"], 50 - 30 + 3);

    let too_many = json!({
        "channel_id": pos, "external_id": "TILL-8", "loyalty_points": 1000,
        "customer": {"identities": [{"kind": "phone", "value": "+49 151 1234 5678"}]},
        "lines": [{"sku": "C", "quantity": 1, "unit_price": {"amount": 400, "currency": "EUR"}}]
    });
    problem(app.post("/orders", &too_many).await, 422, "validation_failed").await;
    let timeline = json(app.get(&format!("/customers/{customer}/timeline")).await, 200).await;
    let kinds = types(&timeline);
    assert!(
        kinds.contains(&"order.placed") && kinds.contains(&"order.completed"),
        "{kinds:?}"
    );
    assert_eq!(
        level(&app, "C", &shop.berlin).await,
        (3, 0),
        "the refused sale took nothing"
    );
}

/// Carts price lines from remembered prices; a change must be seen by the very next line.
async fn price_and_listing_changes_reach_the_next_cart_line_at_once(app: TestApp) {
    let shop = shop(&app).await;
    receive(&app, "A", &shop.warehouse, 10).await;
    let add = |cart: String| {
        let app = &app;
        async move {
            app.post(&format!("/carts/{cart}/lines"), &json!({"sku": "A", "quantity": 1}))
                .await
        }
    };
    let cart_id = cart(&app, &shop.web, &[("A", 1)], json!({})).await;
    let cart_now = json(app.get(&format!("/carts/{cart_id}")).await, 200).await;
    assert_eq!(cart_now["lines"][0]["unit_price"]["amount"], 1000);

    let products = json(app.get("/products?limit=100").await, 200).await;
    let product = products["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["variants"][0]["sku"] == "A")
        .unwrap()
        .clone();
    let repriced = json!({"variants": [{"sku": "A", "title": "A", "price": {"amount": 1100, "currency": "EUR"}}]});
    let changed = app
        .request(Method::PATCH, &format!("/products/{}", id(&product)))
        .header("If-Match", product["version"].to_string())
        .json(&repriced)
        .send()
        .await
        .unwrap();
    json(changed, 200).await;
    let other = json(app.post("/carts", &json!({"channel_id": shop.web})).await, 201).await;
    let other = json(add(id(&other).to_owned()).await, 200).await;
    assert_eq!(other["lines"][0]["unit_price"]["amount"], 1100);

    json(
        app.put(
            &format!("/products/{}/listings/{}", id(&product), shop.web),
            &json!({"published": false}),
        )
        .await,
        200,
    )
    .await;
    let third = json(app.post("/carts", &json!({"channel_id": shop.web})).await, 201).await;
    let refused = problem(add(id(&third).to_owned()).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["code"], "not_sold_here");
}

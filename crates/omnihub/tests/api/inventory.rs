//! One inventory for every channel: levels, the ledger, availability, reservations — never
//! oversold.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem, types};
use crate::on_both_backends;

on_both_backends!(
    adjustments_write_the_ledger,
    bad_adjustments_change_nothing,
    channels_see_stock_less_reservations_and_buffer,
    reservations_are_all_or_nothing_and_fewest_splits,
    reservations_lapse_by_themselves,
    transfers_move_stock_atomically,
    availability_events_only_when_a_channel_changes,
    a_stampede_never_oversells,
    a_stampede_for_two_skus_at_once_leaks_no_stock,
    replenishment_puts_fast_movers_first,
    the_check_finds_a_level_that_does_not_add_up,
);

/// A shop: three locations, one SKU set, stock received.
struct Shop {
    warehouse: String,
    store_a: String,
    store_b: String,
}

async fn shop(app: &TestApp, skus: &[&str]) -> Shop {
    let warehouse = id(&fixtures::location(app, "Warehouse", "warehouse").await).to_owned();
    let store_a = id(&fixtures::location(app, "Store A", "store").await).to_owned();
    let store_b = id(&fixtures::location(app, "Store B", "store").await).to_owned();
    fixtures::product(app, "Goods", skus, 1000).await;
    Shop {
        warehouse,
        store_a,
        store_b,
    }
}

async fn receive(app: &TestApp, sku: &str, location: &str, quantity: i64) -> Value {
    let body = json!({"sku": sku, "location_id": location, "delta": quantity, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &body).await, 200).await
}

async fn level(app: &TestApp, sku: &str, location: &str) -> Value {
    let levels = json(
        app.get(&format!("/inventory/levels?sku={sku}&location_id={location}"))
            .await,
        200,
    )
    .await;
    levels["data"][0].clone()
}

async fn adjustments_write_the_ledger(app: TestApp) {
    let shop = shop(&app, &["A"]).await;
    let received = receive(&app, "A", &shop.warehouse, 10).await;
    assert_eq!(received["on_hand"], 10);
    assert_eq!(received["available"], 10);
    let sold = json!({"sku": "A", "location_id": shop.warehouse, "delta": -3, "reason": "sale", "reference": "till-7"});
    assert_eq!(
        json(app.post("/inventory/adjustments", &sold).await, 200).await["on_hand"],
        7
    );
    let counted = json!({"sku": "A", "location_id": shop.warehouse, "set_on_hand": 5, "reason": "count"});
    assert_eq!(
        json(app.post("/inventory/adjustments", &counted).await, 200).await["on_hand"],
        5
    );

    let ledger = json(
        app.get(&format!("/inventory/movements?sku=A&location_id={}", shop.warehouse))
            .await,
        200,
    )
    .await;
    let rows: Vec<(i64, &str, i64)> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["delta"].as_i64().unwrap(),
                m["reason"].as_str().unwrap(),
                m["on_hand_after"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(10, "receipt", 10), (-3, "sale", 7), (-2, "count", 5)]);
    assert_eq!(ledger["data"][1]["reference"], "till-7");
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

async fn bad_adjustments_change_nothing(app: TestApp) {
    let shop = shop(&app, &["A"]).await;
    receive(&app, "A", &shop.warehouse, 5).await;
    let reserve = json!({"channel_id": id(&fixtures::channel(&app, "Web", "web", &[&shop.warehouse]).await), "lines": [{"sku": "A", "quantity": 3}]});
    json(app.post("/reservations", &reserve).await, 201).await;
    for (body, field) in [
        (
            json!({"sku": "A", "location_id": shop.warehouse, "delta": 0, "reason": "receipt"}),
            "delta",
        ),
        (
            json!({"sku": "A", "location_id": shop.warehouse, "delta": 1, "set_on_hand": 1, "reason": "receipt"}),
            "",
        ),
        (
            json!({"sku": "NOPE", "location_id": shop.warehouse, "delta": 1, "reason": "receipt"}),
            "sku",
        ),
        (
            json!({"sku": "A", "location_id": "loc_nope", "delta": 1, "reason": "receipt"}),
            "location_id",
        ),
        (
            json!({"sku": "A", "location_id": shop.warehouse, "set_on_hand": 2, "reason": "count"}),
            "set_on_hand",
        ),
        (
            json!({"sku": "A", "location_id": shop.warehouse, "delta": -3, "reason": "damage"}),
            "delta",
        ),
        (
            json!({"sku": "A", "location_id": shop.warehouse, "delta": 1, "reason": "transfer_in"}),
            "reason",
        ),
        (
            json!({"sku": "A", "location_id": shop.warehouse, "delta": 1, "reason": "gift"}),
            "reason",
        ),
    ] {
        let answer = problem(
            app.post("/inventory/adjustments", &body).await,
            422,
            "validation_failed",
        )
        .await;
        if !field.is_empty() {
            assert_eq!(answer["errors"][0]["field"], field, "{body} → {answer}");
        }
    }
    let after = level(&app, "A", &shop.warehouse).await;
    assert_eq!(
        (after["on_hand"].as_i64(), after["reserved"].as_i64()),
        (Some(5), Some(3))
    );
    let ledger = json(app.get("/inventory/movements?sku=A").await, 200).await;
    assert_eq!(ledger["data"].as_array().unwrap().len(), 1);
}

async fn channels_see_stock_less_reservations_and_buffer(app: TestApp) {
    let shop = shop(&app, &["A", "B"]).await;
    receive(&app, "A", &shop.warehouse, 10).await;
    receive(&app, "A", &shop.store_a, 5).await;
    receive(&app, "A", &shop.store_b, 7).await;
    let market = json(
        app.post(
            "/channels",
            &json!({"name": "Marketplace", "kind": "marketplace", "currency": "EUR",
                    "location_ids": [shop.warehouse, shop.store_a], "stock_buffer": {"units": 1, "percent": 10}}),
        )
        .await,
        201,
    )
    .await;
    let answer = json(
        app.get(&format!("/availability?channel_id={}&skus=A,B", id(&market)))
            .await,
        200,
    )
    .await;
    // 15 units at its two locations, less 1 unit, less 10 % (1.5 → 2) = 12; store B is not its.
    assert_eq!(answer["data"][0]["available"], 12);
    assert_eq!(
        answer["data"][0]["locations"],
        json!([
            {"location_id": shop.warehouse, "available": 10, "pickup": false},
            {"location_id": shop.store_a, "available": 5, "pickup": true},
        ])
    );
    assert_eq!(answer["data"][1]["available"], 0);

    let web = fixtures::channel(&app, "Web", "web", &[&shop.warehouse, &shop.store_a, &shop.store_b]).await;
    json(
        app.post(
            "/reservations",
            &json!({"channel_id": id(&web), "lines": [{"sku": "A", "quantity": 4, "location_id": shop.store_b}]}),
        )
        .await,
        201,
    )
    .await;
    let web_view = json(
        app.get(&format!("/availability?channel_id={}&skus=A", id(&web))).await,
        200,
    )
    .await;
    assert_eq!(web_view["data"][0]["available"], 18);

    // The buffer holds back from reservations too: the marketplace cannot take 13.
    let greedy = json!({"channel_id": id(&market), "lines": [{"sku": "A", "quantity": 13}]});
    problem(app.post("/reservations", &greedy).await, 409, "insufficient_stock").await;

    let key = app
        .store()
        .generate_api_key("storefront", &[], Some(id(&web)), &[])
        .await
        .unwrap()
        .token;
    let own = app
        .client
        .get(format!("{}/api/v1/availability?skus=A", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(json(own, 200).await["data"][0]["available"], 18);
    let other = app
        .client
        .get(format!(
            "{}/api/v1/availability?skus=A&channel_id={}",
            app.base,
            id(&market)
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    problem(other, 403, "forbidden").await;
    problem(app.get("/availability?skus=A").await, 422, "validation_failed").await;
}

async fn reservations_are_all_or_nothing_and_fewest_splits(app: TestApp) {
    let shop = shop(&app, &["A", "B"]).await;
    receive(&app, "A", &shop.warehouse, 3).await;
    receive(&app, "A", &shop.store_a, 2).await;
    receive(&app, "B", &shop.store_a, 2).await;
    let web = fixtures::channel(&app, "Web", "web", &[&shop.warehouse, &shop.store_a, &shop.store_b]).await;
    let web_id = id(&web).to_owned();
    let (app, web_id) = (&app, &web_id);
    let reserve = |lines: Value| {
        let body = json!({"channel_id": web_id, "lines": lines, "ttl_seconds": 600});
        async move { app.post("/reservations", &body).await }
    };

    // Store A can serve both lines: one parcel rather than two.
    let both = json(
        reserve(json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}])).await,
        201,
    )
    .await;
    assert_eq!(both["status"], "active");
    assert_eq!(
        both["lines"][0]["allocations"],
        json!([{"location_id": shop.store_a, "quantity": 1}])
    );
    assert_eq!(
        both["lines"][1]["allocations"],
        json!([{"location_id": shop.store_a, "quantity": 1}])
    );

    // No single location has 4 of A: the line is split.
    let split = json(reserve(json!([{"sku": "A", "quantity": 4}])).await, 201).await;
    let allocated: i64 = split["lines"][0]["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(allocated, 4);

    // One short line: 409 naming it, and nothing of the other line is held.
    let before = level(app, "B", &shop.store_a).await;
    let short = problem(
        reserve(json!([{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 1}])).await,
        409,
        "insufficient_stock",
    )
    .await;
    assert_eq!(short["errors"][0]["field"], "lines[1].quantity");
    assert_eq!(level(app, "B", &shop.store_a).await, before);

    for (lines, code) in [
        (json!([{"sku": "A", "quantity": 0}]), 422),
        (json!([{"sku": "A", "quantity": -1}]), 422),
        (json!([{"sku": "NOPE", "quantity": 1}]), 422),
        (json!([]), 422),
    ] {
        assert_eq!(reserve(lines).await.status().as_u16(), code);
    }
    let elsewhere = fixtures::location(app, "Other", "store").await;
    let outside = reserve(json!([{"sku": "B", "quantity": 1, "location_id": id(&elsewhere)}])).await;
    assert_eq!(
        problem(outside, 422, "validation_failed").await["errors"][0]["code"],
        "not_in_channel"
    );

    let path = format!("/reservations/{}", id(&both));
    let released = json(app.delete(&path).await, 200).await;
    assert_eq!(released["status"], "released");
    assert_eq!(level(app, "B", &shop.store_a).await["reserved"], 0);
    problem(app.delete(&path).await, 409, "conflict").await;
    problem(app.get("/reservations/res_nope").await, 404, "not_found").await;
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

async fn reservations_lapse_by_themselves(app: TestApp) {
    let shop = shop(&app, &["A"]).await;
    receive(&app, "A", &shop.store_a, 2).await;
    let web = fixtures::channel(&app, "Web", "web", &[&shop.store_a]).await;
    let held = json(
        app.post(
            "/reservations",
            &json!({"channel_id": id(&web), "lines": [{"sku": "A", "quantity": 2}], "ttl_seconds": 60}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(level(&app, "A", &shop.store_a).await["available"], 0);
    app.clock.advance_seconds(61);
    let path = format!("/reservations/{}", id(&held));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while json(app.get(&path).await, 200).await["status"] != "expired" {
        assert!(tokio::time::Instant::now() < deadline, "the reservation did not lapse");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(level(&app, "A", &shop.store_a).await["available"], 2);
    let log = json(app.get("/events?types=reservation.expired").await, 200).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1);
}

async fn transfers_move_stock_atomically(app: TestApp) {
    let shop = shop(&app, &["A"]).await;
    receive(&app, "A", &shop.warehouse, 10).await;
    let moved = json(
        app.post(
            "/inventory/transfers",
            &json!({"sku": "A", "from_location_id": shop.warehouse, "to_location_id": shop.store_b, "quantity": 4}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (moved["from"]["on_hand"].as_i64(), moved["to"]["on_hand"].as_i64()),
        (Some(6), Some(4))
    );
    let too_many =
        json!({"sku": "A", "from_location_id": shop.warehouse, "to_location_id": shop.store_b, "quantity": 7});
    problem(
        app.post("/inventory/transfers", &too_many).await,
        409,
        "insufficient_stock",
    )
    .await;
    let same = json!({"sku": "A", "from_location_id": shop.warehouse, "to_location_id": shop.warehouse, "quantity": 1});
    problem(app.post("/inventory/transfers", &same).await, 422, "validation_failed").await;
    assert_eq!(level(&app, "A", &shop.warehouse).await["on_hand"], 6);
    assert_eq!(level(&app, "A", &shop.store_b).await["on_hand"], 4);
    let ledger = json(app.get("/inventory/movements?sku=A").await, 200).await;
    let reasons: Vec<&str> = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["receipt", "transfer_out", "transfer_in"]);
}

async fn availability_events_only_when_a_channel_changes(app: TestApp) {
    let shop = shop(&app, &["A"]).await;
    let web = fixtures::channel(&app, "Web", "web", &[&shop.warehouse]).await;
    // Neither of these changes: one sells from elsewhere, the other's buffer swallows 5 units.
    fixtures::channel(&app, "POS", "pos", &[&shop.store_a]).await;
    json(
        app.post("/channels", &json!({"name": "Hoarder", "kind": "marketplace", "currency": "EUR", "location_ids": [shop.warehouse], "stock_buffer": {"units": 100}})).await,
        201,
    )
    .await;
    let seen = json(app.get("/events").await, 200).await["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    receive(&app, "A", &shop.warehouse, 5).await;
    let log = json(app.get(&format!("/events?after={seen}")).await, 200).await;
    let events: Vec<(&str, Value)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["data"].clone()))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "inventory.level_changed");
    assert_eq!(events[0].1["on_hand"], 5);
    assert_eq!(events[1].0, "availability.changed");
    assert_eq!(
        events[1].1,
        json!({"channel_id": id(&web), "sku": "A", "available": 5, "previous": 0})
    );

    // Holding stock announces the same way.
    let seen = log["data"].as_array().unwrap().last().unwrap()["seq"].as_i64().unwrap();
    let reserve = json!({"channel_id": id(&web), "lines": [{"sku": "A", "quantity": 2}]});
    json(app.post("/reservations", &reserve).await, 201).await;
    let log = json(app.get(&format!("/events?after={seen}")).await, 200).await;
    assert_eq!(
        types(&log),
        ["inventory.level_changed", "availability.changed", "reservation.created"]
    );
    assert_eq!(
        log["data"][1]["data"],
        json!({"channel_id": id(&web), "sku": "A", "available": 3, "previous": 5})
    );
}

/// 500 buyers from five channels race for 100 units over three locations.
async fn a_stampede_never_oversells(app: TestApp) {
    let shop = shop(&app, &["HOT"]).await;
    receive(&app, "HOT", &shop.warehouse, 50).await;
    receive(&app, "HOT", &shop.store_a, 30).await;
    receive(&app, "HOT", &shop.store_b, 20).await;
    let all = [shop.warehouse.as_str(), shop.store_a.as_str(), shop.store_b.as_str()];
    let mut channels = Vec::new();
    for n in 0..5 {
        channels.push(id(&fixtures::channel(&app, &format!("Channel {n}"), "web", &all).await).to_owned());
    }
    let second = app.another_node().await;
    let mut buyers = Vec::new();
    for n in 0..500 {
        let base = if n % 2 == 0 {
            app.base.clone()
        } else {
            second.clone().unwrap_or(app.base.clone())
        };
        let request = app
            .client
            .post(format!("{base}/api/v1/reservations"))
            .bearer_auth(crate::helpers::OWNER_KEY)
            .json(&json!({"channel_id": channels[n % 5], "lines": [{"sku": "HOT", "quantity": 1}]}));
        buyers.push(tokio::spawn(async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }));
    }
    let (mut reserved, mut refused) = (0, 0);
    for buyer in buyers {
        let (status, body) = buyer.await.unwrap();
        match status {
            201 => reserved += 1,
            409 => {
                assert_eq!(body["code"], "insufficient_stock", "{body}");
                assert!(body["errors"][0]["message"].as_str().unwrap().contains("HOT"));
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((reserved, refused), (100, 400));
    let levels = json(app.get("/inventory/levels?sku=HOT").await, 200).await;
    for level in levels["data"].as_array().unwrap() {
        assert_eq!(level["reserved"], level["on_hand"], "every unit was sold: {level}");
    }
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

/// Every reservation takes two levels, and the second SKU runs out first; when another buyer
/// takes the second after the first was held, the first must be given back with the rest of
/// the write, never left reserved.
async fn a_stampede_for_two_skus_at_once_leaks_no_stock(app: TestApp) {
    let shop = shop(&app, &["LEFT", "RIGHT"]).await;
    receive(&app, "LEFT", &shop.warehouse, 30).await;
    receive(&app, "LEFT", &shop.store_a, 30).await;
    receive(&app, "RIGHT", &shop.store_b, 40).await;
    let all = [shop.warehouse.as_str(), shop.store_a.as_str(), shop.store_b.as_str()];
    let channel = id(&fixtures::channel(&app, "Web", "web", &all).await).to_owned();
    let second = app.another_node().await;
    let mut buyers = Vec::new();
    for n in 0..300 {
        let base = match (&second, n % 2) {
            (Some(second), 1) => second.clone(),
            _ => app.base.clone(),
        };
        let request = app
            .client
            .post(format!("{base}/api/v1/reservations"))
            .bearer_auth(crate::helpers::OWNER_KEY)
            .json(&json!({"channel_id": channel, "lines": [{"sku": "LEFT", "quantity": 1}, {"sku": "RIGHT", "quantity": 1}]}));
        buyers.push(tokio::spawn(async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }));
    }
    let mut reserved = 0;
    for buyer in buyers {
        let (status, body) = buyer.await.unwrap();
        match status {
            201 => reserved += 1,
            409 => assert_eq!(body["code"], "insufficient_stock", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(reserved, 40);
    for sku in ["LEFT", "RIGHT"] {
        let levels = json(app.get(&format!("/inventory/levels?sku={sku}")).await, 200).await;
        let held: i64 = levels["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["reserved"].as_i64().unwrap())
            .sum();
        assert_eq!(held, 40, "{sku}: {levels}");
    }
    assert!(app.store().check_inventory().await.unwrap().is_empty());
}

async fn replenishment_puts_fast_movers_first(app: TestApp) {
    let shop = shop(&app, &["SLOW", "FAST"]).await;
    receive(&app, "SLOW", &shop.store_a, 10).await;
    receive(&app, "FAST", &shop.store_a, 30).await;
    let sell = |sku: &str, n: i64| json!({"sku": sku, "location_id": shop.store_a, "delta": -n, "reason": "sale"});
    json(app.post("/inventory/adjustments", &sell("SLOW", 1)).await, 200).await;
    json(app.post("/inventory/adjustments", &sell("FAST", 28)).await, 200).await;
    let answer = json(
        app.get(&format!(
            "/inventory/replenishment?location_id={}&window_days=28&lead_time_days=7&safety_stock=2",
            shop.store_a
        ))
        .await,
        200,
    )
    .await;
    let rows = answer["data"].as_array().unwrap();
    assert_eq!(rows[0]["sku"], "FAST");
    assert_eq!(rows[0]["units_sold"], 28);
    assert_eq!(rows[0]["velocity_per_day_milli"], 1000);
    assert_eq!(rows[0]["reorder_point"], 9);
    assert!(rows[0]["suggested_quantity"].as_i64().unwrap() > 0);
    assert_eq!(rows[1]["sku"], "SLOW");
    problem(
        app.get("/inventory/replenishment?location_id=loc_nope").await,
        404,
        "not_found",
    )
    .await;
}

async fn the_check_finds_a_level_that_does_not_add_up(app: TestApp) {
    let shop = shop(&app, &["A"]).await;
    receive(&app, "A", &shop.store_a, 4).await;
    assert!(app.store().check_inventory().await.unwrap().is_empty());
    let mut tx = app.store().db().begin().await.unwrap();
    tx.execute(omnihub_store::db::sql(
        "UPDATE inventory_levels SET on_hand = 9 WHERE sku = 'A'",
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let found = app.store().check_inventory().await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].on_hand, found[0].ledger_sum), (9, 4));
}

use serde_json::json;

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    locations_and_channels_are_created_read_and_patched,
    a_channel_cannot_sell_from_an_unknown_location,
    products_keep_skus_unique_across_the_catalog,
    product_variants_change_by_merge_patch,
    a_variant_with_stock_or_reservations_is_not_removed,
    listings_follow_the_channel_price_policy,
    publishable_keys_read_their_own_channel_only,
);

async fn locations_and_channels_are_created_read_and_patched(app: TestApp) {
    let store = fixtures::location(&app, "Berlin Store", "store").await;
    assert_eq!(store["kind"], "store");
    assert_eq!(store["pickup"], true);
    assert_eq!(store["version"], 1);
    let read = json(app.get(&format!("/locations/{}", id(&store))).await, 200).await;
    assert_eq!(read, store);

    let channel = fixtures::channel(&app, "Web shop", "web", &[id(&store)]).await;
    assert_eq!(channel["location_ids"], json!([id(&store)]));
    assert_eq!(channel["price_policy"]["parity"], "strict");

    let patched = json(
        app.patch(
            &format!("/channels/{}", id(&channel)),
            &json!({"stock_buffer": {"percent": 10}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(patched["stock_buffer"], json!({"percent": 10}));
    assert_eq!(patched["name"], "Web shop");
    assert_eq!(patched["version"], 2);

    let listed = json(app.get("/channels").await, 200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["location_ids"], json!([id(&store)]));

    let bad = app
        .patch(
            &format!("/locations/{}", id(&store)),
            &json!({"geo": {"lat": 91.0, "lon": 0.0}}),
        )
        .await;
    let body = problem(bad, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "geo.lat");
    let unchanged = json(app.get(&format!("/locations/{}", id(&store))).await, 200).await;
    assert_eq!(unchanged["version"], 1);
}

async fn a_channel_cannot_sell_from_an_unknown_location(app: TestApp) {
    let body = json!({"name": "App", "kind": "mobile_app", "currency": "EUR", "location_ids": ["loc_nope"]});
    let answer = problem(app.post("/channels", &body).await, 422, "validation_failed").await;
    assert_eq!(answer["errors"][0]["field"], "location_ids[0]");
    let bad_kind = json!({"name": "App", "kind": "fax", "currency": "EUR"});
    problem(app.post("/channels", &bad_kind).await, 422, "validation_failed").await;
    let listed = json(app.get("/channels").await, 200).await;
    assert_eq!(listed["data"], json!([]));
}

async fn products_keep_skus_unique_across_the_catalog(app: TestApp) {
    let shirt = fixtures::product(&app, "Shirt", &["SHIRT-S", "SHIRT-M"], 2500).await;
    assert_eq!(shirt["variants"].as_array().unwrap().len(), 2);
    assert!(shirt["variants"][0]["id"].as_str().unwrap().starts_with("var_"));

    let clash = app
        .post("/products", &fixtures::product_body("Other", &["SHIRT-M"], 100))
        .await;
    problem(clash, 409, "conflict").await;
    let within = app
        .post("/products", &fixtures::product_body("Twice", &["X-1", "X-1"], 100))
        .await;
    problem(within, 422, "validation_failed").await;

    let listed = json(app.get("/products").await, 200).await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "nothing of the refused products was stored"
    );
    problem(app.get("/products/prd_unknown").await, 404, "not_found").await;
}

async fn product_variants_change_by_merge_patch(app: TestApp) {
    let shirt = fixtures::product(&app, "Shirt", &["SH-S", "SH-M"], 2500).await;
    let small = shirt["variants"][0].clone();
    let patch = json!({
        "title": "Merino Shirt",
        "variants": [
            {"id": small["id"], "sku": "SH-S", "title": "Small", "price": {"amount": 2700, "currency": "EUR"}},
            {"sku": "SH-L", "title": "Large", "price": {"amount": 2700, "currency": "EUR"}}
        ]
    });
    let changed = json(app.patch(&format!("/products/{}", id(&shirt)), &patch).await, 200).await;
    assert_eq!(changed["title"], "Merino Shirt");
    assert_eq!(changed["version"], 2);
    let skus: Vec<&str> = changed["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["SH-S", "SH-L"]);
    assert_eq!(changed["variants"][0]["id"], small["id"]);

    // The medium SKU is free again for another product.
    fixtures::product(&app, "Other", &["SH-M"], 100).await;
}

async fn listings_follow_the_channel_price_policy(app: TestApp) {
    let warehouse = fixtures::location(&app, "Warehouse", "warehouse").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&warehouse)]).await;
    let market = json(
        app.post(
            "/channels",
            &json!({"name": "Marketplace", "kind": "marketplace", "currency": "EUR", "location_ids": [id(&warehouse)],
                    "price_policy": {"parity": "allow_override", "max_deviation_percent": 10}}),
        )
        .await,
        201,
    )
    .await;
    let shirt = fixtures::product(&app, "Shirt", &["SH-1"], 2000).await;
    let variant = shirt["variants"][0]["id"].clone();
    let path = |channel: &serde_json::Value| format!("/products/{}/listings/{}", id(&shirt), id(channel));

    let strict = json!({"published": true, "variants": [{"variant_id": variant, "price_override": {"amount": 2100, "currency": "EUR"}}]});
    let refused = problem(app.put(&path(&web), &strict).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["code"], "price_policy");

    let too_far = json!({"published": true, "variants": [{"variant_id": variant, "price_override": {"amount": 2300, "currency": "EUR"}}]});
    problem(app.put(&path(&market), &too_far).await, 422, "validation_failed").await;
    let listing = json(app.put(&path(&market), &strict).await, 200).await;
    assert_eq!(listing["version"], 1);
    json(app.put(&path(&web), &json!({"published": true})).await, 200).await;

    let priced = json(
        app.get(&format!("/products/{}?channel_id={}", id(&shirt), id(&market)))
            .await,
        200,
    )
    .await;
    assert_eq!(priced["variants"][0]["channel_price"]["amount"], 2100);
    let base = json(
        app.get(&format!("/products/{}?channel_id={}", id(&shirt), id(&web)))
            .await,
        200,
    )
    .await;
    assert_eq!(base["variants"][0]["channel_price"]["amount"], 2000);

    let parity = json(app.get("/price-parity").await, 200).await;
    assert_eq!(parity["data"].as_array().unwrap().len(), 1);
    assert_eq!(parity["data"][0]["deviation_basis_points"], 500);
    assert_eq!(parity["data"][0]["within_policy"], true);

    // The report pages like every list, and tells one product's prices.
    let cap = fixtures::product(&app, "Cap", &["CAP-1"], 1000).await;
    let cap_price = json!({"published": true, "variants": [{"variant_id": cap["variants"][0]["id"], "price_override": {"amount": 1050, "currency": "EUR"}}]});
    json(
        app.put(&format!("/products/{}/listings/{}", id(&cap), id(&market)), &cap_price)
            .await,
        200,
    )
    .await;
    let first = json(app.get("/price-parity?limit=1").await, 200).await;
    assert_eq!(first["data"][0]["sku"], "SH-1");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json(app.get(&format!("/price-parity?limit=1&cursor={cursor}")).await, 200).await;
    assert_eq!(second["data"][0]["sku"], "CAP-1");
    assert_eq!(second["next_cursor"], serde_json::Value::Null);
    let caps = json(app.get(&format!("/price-parity?product_id={}", id(&cap))).await, 200).await;
    assert_eq!(caps["data"].as_array().unwrap().len(), 1);
    assert_eq!(caps["data"][0]["sku"], "CAP-1");

    let adjustment = json!({"sku": "SH-1", "location_id": id(&warehouse), "delta": 5, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &adjustment).await, 200).await;
    assert_eq!(price_in_a_cart(&app, &market, "SH-1").await, json!(2100));

    // Tightening the policy afterwards shows the listing outside it, and the channel charges
    // the base price again.
    let tighter = json!({"price_policy": {"parity": "allow_override", "max_deviation_percent": 2}});
    json(app.patch(&format!("/channels/{}", id(&market)), &tighter).await, 200).await;
    let parity = json(app.get("/price-parity").await, 200).await;
    assert_eq!(parity["data"][0]["within_policy"], false);
    let priced = json(
        app.get(&format!("/products/{}?channel_id={}", id(&shirt), id(&market)))
            .await,
        200,
    )
    .await;
    assert_eq!(priced["variants"][0]["channel_price"]["amount"], 2000);
    assert_eq!(price_in_a_cart(&app, &market, "SH-1").await, json!(2000));

    // A channel selling in another currency lists a product only with prices in its own.
    let us = json!({"name": "US shop", "kind": "web", "currency": "USD", "location_ids": [id(&warehouse)]});
    let us = json(app.post("/channels", &us).await, 201).await;
    let refused = problem(
        app.put(&path(&us), &json!({"published": true})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["code"], "price_required");
    let in_dollars = json!({"published": true, "variants": [{"variant_id": variant, "price_override": {"amount": 2300, "currency": "USD"}}]});
    json(app.put(&path(&us), &in_dollars).await, 200).await;
    let priced = json(
        app.get(&format!("/products/{}?channel_id={}", id(&shirt), id(&us)))
            .await,
        200,
    )
    .await;
    assert_eq!(
        priced["variants"][0]["channel_price"],
        json!({"amount": 2300, "currency": "USD"})
    );
    assert_eq!(price_in_a_cart(&app, &us, "SH-1").await, json!(2300));
}

/// The unit price a new cart in `channel` gives one unit of `sku`.
async fn price_in_a_cart(app: &TestApp, channel: &serde_json::Value, sku: &str) -> serde_json::Value {
    let cart = json(app.post("/carts", &json!({"channel_id": id(channel)})).await, 201).await;
    let line = json!({"sku": sku, "quantity": 1});
    let cart = json(app.post(&format!("/carts/{}/lines", id(&cart)), &line).await, 200).await;
    cart["lines"][0]["unit_price"]["amount"].clone()
}

async fn publishable_keys_read_their_own_channel_only(app: TestApp) {
    let warehouse = fixtures::location(&app, "Warehouse", "warehouse").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&warehouse)]).await;
    let app_channel = fixtures::channel(&app, "App", "mobile_app", &[id(&warehouse)]).await;
    let listed = fixtures::product(&app, "Listed", &["L-1"], 1000).await;
    fixtures::product(&app, "Hidden", &["H-1"], 1000).await;
    json(
        app.put(
            &format!("/products/{}/listings/{}", id(&listed), id(&web)),
            &json!({"published": true}),
        )
        .await,
        200,
    )
    .await;
    let key = app
        .store()
        .generate_api_key("storefront", &[], Some(id(&web)), &[])
        .await
        .unwrap()
        .token;
    assert!(key.starts_with("pk_"));

    let get = |path: String| {
        app.client
            .get(format!("{}/api/v1{path}", app.base))
            .bearer_auth(&key)
            .send()
    };
    let products = json(get("/products".into()).await.unwrap(), 200).await;
    let titles: Vec<&str> = products["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Listed"]);
    assert_eq!(products["data"][0]["variants"][0]["channel_price"]["amount"], 1000);

    problem(
        get(format!("/products?channel_id={}", id(&app_channel))).await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    problem(get("/channels".into()).await.unwrap(), 403, "forbidden").await;
    let write = app
        .client
        .post(format!("{}/api/v1/products", app.base))
        .bearer_auth(&key)
        .json(&fixtures::product_body("X", &["X"], 1))
        .send()
        .await
        .unwrap();
    problem(write, 403, "forbidden").await;
}

async fn a_variant_with_stock_or_reservations_is_not_removed(app: TestApp) {
    let warehouse = fixtures::location(&app, "Warehouse", "warehouse").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&warehouse)]).await;
    let product = fixtures::product(&app, "Mug", &["MUG-S", "MUG-L"], 900).await;
    let path = format!("/products/{}", id(&product));
    let small_only = json!({"variants": [product["variants"][0]]});
    let stock = |sku: &str, units: i64| json!({"sku": sku, "location_id": id(&warehouse), "set_on_hand": units, "reason": "count"});
    json(app.post("/inventory/adjustments", &stock("MUG-L", 4)).await, 200).await;

    let refused = problem(app.patch(&path, &small_only).await, 409, "conflict").await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("MUG-L") && detail.contains("on hand"), "{detail}");
    let unchanged = json(app.get(&path).await, 200).await;
    assert_eq!(unchanged["variants"].as_array().unwrap().len(), 2);
    assert_eq!(unchanged["version"], product["version"]);
    // Nor does a new SKU for the variant leave its stock behind.
    let mut renamed = product["variants"].clone();
    renamed[1]["sku"] = json!("MUG-XL");
    let refused = problem(app.patch(&path, &json!({"variants": renamed})).await, 409, "conflict").await;
    assert!(refused["detail"].as_str().unwrap().contains("MUG-L"), "{refused}");
    assert_eq!(json(app.get(&path).await, 200).await, unchanged);

    let reserve = json!({"channel_id": id(&web), "lines": [{"sku": "MUG-L", "quantity": 1}], "ttl_seconds": 600});
    let reservation = json(app.post("/reservations", &reserve).await, 201).await;
    json(app.post("/inventory/adjustments", &stock("MUG-L", 1)).await, 200).await;
    let refused = problem(app.patch(&path, &small_only).await, 409, "conflict").await;
    assert!(refused["detail"].as_str().unwrap().contains("MUG-L"), "{refused}");

    assert_eq!(
        app.delete(&format!("/reservations/{}", id(&reservation)))
            .await
            .status(),
        200
    );
    json(app.post("/inventory/adjustments", &stock("MUG-L", 0)).await, 200).await;
    let patched = json(app.patch(&path, &small_only).await, 200).await;
    assert_eq!(patched["variants"].as_array().unwrap().len(), 1);
    // A new product given that SKU starts with nothing.
    fixtures::product(&app, "Big mug", &["MUG-L"], 1200).await;
    let levels = json(app.get("/inventory/levels?sku=MUG-L").await, 200).await;
    let levels = levels["data"].as_array().cloned().unwrap_or_default();
    assert!(
        levels.iter().all(|l| l["on_hand"] == 0 && l["reserved"] == 0),
        "{levels:?}"
    );
}

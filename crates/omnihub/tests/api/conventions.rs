//! The conventions every route shares: auth, errors, idempotency, versions, pagination, limits.

use reqwest::Method;
use serde_json::json;

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    keys_and_scopes_are_checked,
    bad_bodies_get_their_codes_and_change_nothing,
    valid_json_of_wrong_types_is_a_validation_error,
    oversize_bodies_are_refused,
    idempotency_keys_replay_and_refuse_other_bodies,
    idempotency_keys_are_forgotten_after_a_day,
    stale_versions_are_refused,
    lists_page_with_cursors,
    operations_endpoints_answer,
);

async fn keys_and_scopes_are_checked(app: TestApp) {
    let url = format!("{}/api/v1/products", app.base);
    problem(app.client.get(&url).send().await.unwrap(), 401, "unauthorized").await;
    problem(
        app.client.get(&url).bearer_auth("sk_wrong").send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let reader = app.key_with(&["catalog:read"]).await;
    json(app.client.get(&url).bearer_auth(&reader).send().await.unwrap(), 200).await;
    let write = app
        .client
        .post(&url)
        .bearer_auth(&reader)
        .json(&fixtures::product_body("X", &["X-1"], 1))
        .send()
        .await
        .unwrap();
    problem(write, 403, "forbidden").await;
    let events = app
        .client
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    problem(events, 403, "forbidden").await;
}

async fn bad_bodies_get_their_codes_and_change_nothing(app: TestApp) {
    let send = |body: &'static str| {
        app.request(Method::POST, "/products")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    problem(send("{\"title\": ").await.unwrap(), 400, "malformed_json").await;
    problem(send("not json").await.unwrap(), 400, "malformed_json").await;
    let wrong_type = problem(send(r#"{"title": "T", "variants": [{"sku": "A", "title": "A", "price": {"amount": "ten", "currency": "EUR"}}]}"#).await.unwrap(), 422, "validation_failed").await;
    assert_eq!(wrong_type["errors"][0]["field"], "variants[0].price.amount");
    let unknown_field = problem(
        send(r#"{"title": "T", "variants": [], "colour": "red"}"#)
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert!(
        unknown_field["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    let negative = problem(
        app.post("/products", &fixtures::product_body("T", &["A"], -5)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(negative["errors"][0]["field"], "variants[0].price.amount");
    let products = json(app.get("/products").await, 200).await;
    assert_eq!(products["data"], json!([]));
    let events = json(app.get("/events").await, 200).await;
    assert_eq!(events["data"], json!([]), "no event for refused requests");
    problem(app.get("/nowhere").await, 404, "not_found").await;

    let not_taken = app.request(Method::DELETE, "/products/prd_x").send().await.unwrap();
    let allowed = not_taken.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allowed.contains("GET") && allowed.contains("PATCH"), "{allowed}");
    problem(not_taken, 405, "method_not_allowed").await;
}

async fn valid_json_of_wrong_types_is_a_validation_error(app: TestApp) {
    let field_of = |problem: &serde_json::Value| {
        assert!(
            !problem["detail"].as_str().unwrap_or_default().contains("line"),
            "no position in a text the client never sent: {problem}"
        );
        problem["errors"][0]["field"].as_str().unwrap_or_default().to_owned()
    };
    let inbox = problem(
        app.post("/inboxes", &json!({"kind": 5, "name": "Support"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(field_of(&inbox), "kind", "{inbox}");

    let endpoint = json!({"url": "https://example.com/hook", "events": ["*"]});
    let endpoint = json(app.post("/webhook-endpoints", &endpoint).await, 201).await;
    let path = format!("/webhook-endpoints/{}", id(&endpoint));
    let status = problem(app.patch(&path, &json!({"status": 5})).await, 422, "validation_failed").await;
    assert_eq!(field_of(&status), "status", "{status}");

    let location = fixtures::location(&app, "Store", "store").await;
    let channel = fixtures::channel(&app, "Web", "web", &[id(&location)]).await;
    let path = format!("/channels/{}", id(&channel));
    let kind = problem(app.patch(&path, &json!({"kind": 5})).await, 422, "validation_failed").await;
    assert_eq!(field_of(&kind), "kind", "{kind}");
    let kind = problem(
        app.patch(&path, &json!({"kind": "fax"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(field_of(&kind), "kind", "{kind}");
    let unchanged = json(app.get(&path).await, 200).await;
    assert_eq!(unchanged["kind"], "web");
}

async fn oversize_bodies_are_refused(app: TestApp) {
    // The test server accepts 64 KiB.
    let title = "x".repeat(70 * 1024);
    let body = fixtures::product_body(&title, &["BIG-1"], 1);
    problem(app.post("/products", &body).await, 413, "payload_too_large").await;
    let with_key = app
        .request(Method::POST, "/products")
        .header("idempotency-key", "big")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(with_key, 413, "payload_too_large").await;
    assert_eq!(json(app.get("/products").await, 200).await["data"], json!([]));
}

async fn idempotency_keys_replay_and_refuse_other_bodies(app: TestApp) {
    let body = fixtures::product_body("Shirt", &["SH-1"], 1000);
    let send = |body: serde_json::Value| {
        app.request(Method::POST, "/products")
            .header("idempotency-key", "create-shirt-1")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json(first, 201).await;
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(json(again, 201).await, first);
    let other = fixtures::product_body("Shirt", &["SH-2"], 1000);
    problem(send(other).await.unwrap(), 422, "idempotency_key_reused").await;
    let products = json(app.get("/products").await, 200).await;
    assert_eq!(products["data"].as_array().unwrap().len(), 1, "created exactly once");

    // A refused request is replayed as refused, too.
    let clash = || {
        app.request(Method::POST, "/products")
            .header("idempotency-key", "clash")
            .json(&body)
            .send()
    };
    problem(clash().await.unwrap(), 409, "conflict").await;
    let replayed = clash().await.unwrap();
    assert_eq!(replayed.headers().get("idempotent-replayed").unwrap(), "true");
    problem(replayed, 409, "conflict").await;
}

async fn idempotency_keys_are_forgotten_after_a_day(app: TestApp) {
    let send = |sku: &str| {
        let body = fixtures::product_body("Shirt", &[sku], 1000);
        app.request(Method::POST, "/products")
            .header("idempotency-key", "daily")
            .json(&body)
            .send()
    };
    json(send("DAY-1").await.unwrap(), 201).await;
    app.clock.advance_seconds(23 * 3600);
    problem(send("DAY-2").await.unwrap(), 422, "idempotency_key_reused").await;
    app.clock.advance_seconds(2 * 3600);
    json(send("DAY-2").await.unwrap(), 201).await;
}

async fn stale_versions_are_refused(app: TestApp) {
    let shirt = fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    let path = format!("/products/{}", id(&shirt));
    let renamed = app
        .request(Method::PATCH, &path)
        .header("if-match", "1")
        .json(&json!({"title": "New"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(renamed, 200).await["version"], 2);
    let stale = app
        .request(Method::PATCH, &path)
        .header("if-match", "1")
        .json(&json!({"title": "Lost"}))
        .send()
        .await
        .unwrap();
    let body = problem(stale, 412, "version_mismatch").await;
    assert!(body["detail"].as_str().unwrap().contains('2'));
    let garbage = app
        .request(Method::PATCH, &path)
        .header("if-match", "abc")
        .json(&json!({"title": "Lost"}))
        .send()
        .await
        .unwrap();
    problem(garbage, 422, "validation_failed").await;
    assert_eq!(json(app.get(&path).await, 200).await["title"], "New");
}

async fn lists_page_with_cursors(app: TestApp) {
    for n in 0..5 {
        fixtures::product(&app, &format!("P{n}"), &[&format!("P-{n}")], 100).await;
    }
    let first = json(app.get("/products?limit=2").await, 200).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let mut titles: Vec<String> = Vec::new();
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    titles.extend(
        first["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["title"].as_str().unwrap().to_owned()),
    );
    while let Some(next) = cursor {
        let page = json(app.get(&format!("/products?limit=2&cursor={next}")).await, 200).await;
        titles.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["title"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(titles, ["P0", "P1", "P2", "P3", "P4"]);
    problem(app.get("/products?limit=0").await, 422, "validation_failed").await;
    problem(app.get("/products?limit=501").await, 422, "validation_failed").await;
    problem(app.get("/products?cursor=%%%").await, 422, "validation_failed").await;
    // A parameter of the wrong type is named, as a body field would be.
    let wrong = problem(app.get("/products?limit=two").await, 422, "validation_failed").await;
    assert_eq!(wrong["errors"][0]["field"], "limit", "{wrong}");
    let wrong = problem(app.get("/events?after=abc").await, 422, "validation_failed").await;
    assert_eq!(wrong["errors"][0]["field"], "after", "{wrong}");
}

async fn operations_endpoints_answer(app: TestApp) {
    let health = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(json(health, 200).await["status"], "ok");
    let ready = app.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(json(ready, 200).await["status"], "ready");
    let answered = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(answered.headers().get("x-request-id").unwrap(), "trace-me-1");

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("omnihub_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"),
        "{metrics}"
    );

    let doc = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/api/v1/channels", "post"),
        ("/api/v1/channels/{id}", "patch"),
        ("/api/v1/locations", "get"),
        ("/api/v1/products/{id}", "get"),
        ("/api/v1/products/{id}/listings/{channel_id}", "put"),
        ("/api/v1/price-parity", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/events/stream", "get"),
        ("/api/v1/keys/{id}", "delete"),
        ("/api/v1/webhook-endpoints/{id}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
    let docs = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(docs.contains("/openapi.json") && !docs.contains("https://cdn"));
}

//! What hostile or broken clients send at the edge: NUL and control characters anywhere
//! (refused at validation, the same on both databases, never a 500).

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    a_nul_in_any_text_field_is_refused_naming_the_field,
    control_characters_in_single_line_fields_are_refused_and_line_breaks_kept_in_free_text,
    a_nul_in_a_path_or_a_query_is_refused_without_touching_the_database,
    a_providers_message_with_a_nul_is_kept_without_it,
    forwarded_clients_are_limited_apart_only_behind_trusted_proxies,
    invented_methods_and_paths_leave_the_metrics_labels_bounded,
    the_web_chat_answers_forbid_framing_and_sniffing,
    a_key_without_the_scope_learns_nothing_from_a_malformed_body,
    only_the_sites_of_a_publishable_key_may_use_it_from_their_pages,
    the_web_chat_answers_the_pages_of_the_shops_sites_only,
);

/// Every kind of body the fuzzer broke, with a NUL where a client may write text: each is 422
/// naming the field.
async fn a_nul_in_any_text_field_is_refused_naming_the_field(app: TestApp) {
    let warehouse = fixtures::location(&app, "Warehouse", "warehouse").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&warehouse)]).await;
    let product = fixtures::product(&app, "Scarf", &["SCARF-1"], 1900).await;
    let customer = json(app.post("/customers", &json!({"name": "Ann"})).await, 201).await;
    let mut location = fixtures::location_body("Store", "store");
    location["address"]["city"] = json!("Ber\u{0}lin");
    let table: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/channels".into(),
            json!({"name": "Web\u{0}", "kind": "web", "currency": "EUR"}),
            "name",
        ),
        (Method::POST, "/locations".into(), location, "address.city"),
        (Method::POST, "/customers".into(), json!({"name": "\u{0}"}), "name"),
        (
            Method::POST,
            "/customers".into(),
            json!({"identities": [{"kind": "email", "value": "ann@example.com\u{0}"}]}),
            "identities[0].value",
        ),
        (
            Method::POST,
            "/products".into(),
            fixtures::product_body("Hat", &["HAT\u{0}1"], 900),
            "variants[0].sku",
        ),
        (
            Method::PATCH,
            format!("/products/{}", id(&product)),
            json!({"description": "soft\u{0}"}),
            "description",
        ),
        (
            Method::PATCH,
            format!("/customers/{}", id(&customer)),
            json!({"tags": ["vip\u{0}"]}),
            "tags[0]",
        ),
        (
            Method::POST,
            "/faq-entries".into(),
            json!({"question": "Hours?", "answer": "9\u{0}"}),
            "answer",
        ),
        (
            Method::POST,
            "/canned-replies".into(),
            json!({"short_code": "h\u{0}", "text": "Hi"}),
            "short_code",
        ),
        (
            Method::POST,
            "/webhook-endpoints".into(),
            json!({"url": "https://erp.example/\u{0}", "events": ["*"]}),
            "url",
        ),
        (
            Method::POST,
            "/reservations".into(),
            json!({"channel_id": format!("{}\u{0}", id(&web)), "lines": [{"sku": "SCARF-1", "quantity": 1}], "ttl_seconds": 60}),
            "channel_id",
        ),
        (
            Method::POST,
            "/carts".into(),
            json!({"channel_id": id(&web), "email": "\u{0}"}),
            "email",
        ),
        (
            Method::POST,
            "/inventory/adjustments".into(),
            json!({"sku": "SCARF-1", "location_id": id(&warehouse), "delta": 1, "reason": "receipt", "reference": "\u{0}"}),
            "reference",
        ),
    ];
    for (method, path, body, field) in table {
        let answer = app.request(method.clone(), &path).json(&body).send().await.unwrap();
        let problem = problem(answer, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{method} {path}: {problem}");
        assert_eq!(problem["errors"][0]["code"], "invalid_character", "{method} {path}");
    }
    let products = json(app.get("/products").await, 200).await;
    assert_eq!(products["data"].as_array().unwrap().len(), 1, "nothing was stored");
    assert_eq!(products["data"][0]["description"], "");
}

async fn control_characters_in_single_line_fields_are_refused_and_line_breaks_kept_in_free_text(app: TestApp) {
    for (path, body, field) in [
        (
            "/channels",
            json!({"name": "Web\u{7}", "kind": "web", "currency": "EUR"}),
            "name",
        ),
        ("/customers", json!({"name": "Ann\nLee"}), "name"),
        (
            "/products",
            fixtures::product_body("Hat\u{1b}[2J", &["HAT-1"], 900),
            "title",
        ),
        (
            "/faq-entries",
            json!({"question": "Opening\rhours?", "answer": "9 to 6"}),
            "question",
        ),
        (
            "/inventory/adjustments",
            json!({"sku": "HAT-1", "location_id": "loc_1", "delta": 1, "reason": "receipt", "reference": "note\u{8}"}),
            "reference",
        ),
        (
            "/orders",
            json!({"channel_id": "chn_1", "external_id": "A\n1", "lines": [], "fulfillment": {"method": "ship"},
                "customer": {"identities": [{"kind": "email", "value": "ann@example.com"}]}}),
            "external_id",
        ),
    ] {
        let problem = problem(app.post(path, &body).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    let mut body = fixtures::product_body("Hat", &["HAT-1"], 900);
    body["description"] = json!("Warm.\n\tWool.");
    let product = json(app.post("/products", &body).await, 201).await;
    assert_eq!(product["description"], "Warm.\n\tWool.");
    let faq = json!({"question": "Opening hours?", "answer": "Mon–Fri 9–18\nSat 10–14"});
    json(app.post("/faq-entries", &faq).await, 201).await;
}

async fn a_nul_in_a_path_or_a_query_is_refused_without_touching_the_database(app: TestApp) {
    for path in [
        "/products/prd_%00",
        "/customers/%00",
        "/orders/%231001%00",
        "/channels/chn_%0A",
    ] {
        problem(app.get(path).await, 404, "not_found").await;
    }
    let patched = app.patch("/locations/loc_%00", &json!({"name": "x"})).await;
    problem(patched, 404, "not_found").await;
    for (query, field) in [
        ("/customers?q=%00", "q"),
        ("/products?cursor=%00", "cursor"),
        ("/inventory/levels?sku=A%00", "sku"),
        ("/availability?channel_id=chn_1&skus=%00", "skus"),
        ("/events?types=order.placed%00", "types"),
    ] {
        let problem = problem(app.get(query).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
    // The hooks and the web chat too, outside the keyed API.
    let hook = app
        .client
        .post(format!("{}/hooks/inb_%00", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(hook, 404, "not_found").await;
    let chat = app
        .client
        .post(format!("{}/webchat/inb_%00/sessions", app.base))
        .send()
        .await
        .unwrap();
    problem(chat, 404, "not_found").await;
}

async fn a_providers_message_with_a_nul_is_kept_without_it(app: TestApp) {
    let secret = "telegram-secret-0123456789";
    let body = json!({"kind": "telegram", "name": "Bot", "credentials": {"bot_token": "1:A", "secret_token": secret}});
    let inbox = json(app.post("/inboxes", &body).await, 201).await;
    let update = json!({"update_id": 1, "message": {"message_id": 7, "date": 1_790_000_000,
        "from": {"id": 42, "is_bot": false, "first_name": "A\u{0}nn"},
        "chat": {"id": 42, "type": "private"}, "text": "Hello\u{0} there"}});
    let answer = app
        .client
        .post(inbox["webhook_url"].as_str().unwrap())
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .body(update.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(answer, 200).await["received"],
        1,
        "kept, or the provider sends it again and again"
    );
    let conversations = json(app.get("/conversations").await, 200).await;
    let conversation = json(
        app.get(&format!("/conversations/{}", id(&conversations["data"][0])))
            .await,
        200,
    )
    .await;
    assert_eq!(conversation["messages"][0]["text"], "Hello\u{fffd} there");

    // The web chat's visitor is a client like any other: refused, naming the field.
    let webchat = json!({"kind": "webchat", "name": "Chat", "credentials": {}});
    let webchat = json(app.post("/inboxes", &webchat).await, 201).await;
    let chat = format!("{}/webchat/{}", app.base, id(&webchat));
    let session = json(app.client.post(format!("{chat}/sessions")).send().await.unwrap(), 201).await;
    let written = app
        .client
        .post(format!("{chat}/messages"))
        .bearer_auth(session["token"].as_str().unwrap())
        .json(&json!({"text": "hi", "name": "\u{0}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(written, 422, "validation_failed").await["errors"][0]["field"],
        "name"
    );
}

async fn open_session(app: &TestApp, inbox: &Value, forwarded_for: &str) -> u16 {
    let url = format!("{}/webchat/{}/sessions", app.base, id(inbox));
    let answer = app
        .client
        .post(url)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap();
    answer.status().as_u16()
}

/// Every client of a load balancer comes from its address: only when it is trusted does its
/// `X-Forwarded-For` tell the clients apart, and what a client writes there itself is ignored.
async fn forwarded_clients_are_limited_apart_only_behind_trusted_proxies(mut app: TestApp) {
    let inbox = json!({"kind": "webchat", "name": "Chat", "credentials": {}});
    let inbox = json(app.post("/inboxes", &inbox).await, 201).await;
    for _ in 0..20 {
        assert_eq!(open_session(&app, &inbox, "198.51.100.1").await, 201);
    }
    assert_eq!(
        open_session(&app, &inbox, "198.51.100.2").await,
        429,
        "a spoofed header escapes nothing"
    );

    app.restart_with(|settings| settings.trusted_proxies = Some("127.0.0.0/8".parse().unwrap()))
        .await;
    assert_eq!(
        open_session(&app, &inbox, "198.51.100.2").await,
        201,
        "another client behind the proxy"
    );
    for _ in 0..20 {
        assert_eq!(open_session(&app, &inbox, "6.6.6.6, 198.51.100.3").await, 201);
    }
    assert_eq!(
        open_session(&app, &inbox, "7.7.7.7, 198.51.100.3").await,
        429,
        "the proxy's entry counts"
    );
    assert_eq!(open_session(&app, &inbox, "198.51.100.4").await, 201);
}

async fn invented_methods_and_paths_leave_the_metrics_labels_bounded(app: TestApp) {
    let labels = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("omnihub_http_requests_total{"))
            .count()
    };
    let metrics_url = format!("{}/metrics", app.base);
    for i in 0..1000 {
        let method = Method::from_bytes(format!("X{i:04}{}", "M".repeat(i % 50)).as_bytes()).unwrap();
        let url = format!("{}/api/v1/nothing-{i}/{}", app.base, "p".repeat(i % 100));
        app.client.request(method, url).send().await.unwrap();
        app.client
            .get(format!("{}/nowhere-{i}", app.base))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    assert!(labels(&metrics) <= 10, "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(!metrics.contains("X0999"), "no invented method is a label");
    assert!(!metrics.contains("nothing-"), "no invented path is a label");
}

async fn the_web_chat_answers_forbid_framing_and_sniffing(app: TestApp) {
    let inbox = json!({"kind": "webchat", "name": "Chat", "credentials": {}});
    let inbox = json(app.post("/inboxes", &inbox).await, 201).await;
    let url = format!("{}/webchat/{}/sessions", app.base, id(&inbox));
    let answer = app.client.post(url).send().await.unwrap();
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "same-origin");
}

/// The scope is checked before the body is read: a key without it gets 403 however broken
/// its body, never a description of what the route would take.
async fn a_key_without_the_scope_learns_nothing_from_a_malformed_body(app: TestApp) {
    let reader = app.key_with(&["orders:read"]).await;
    for (method, path, body) in [
        (Method::POST, "/products", "{\"title\": "),
        (Method::POST, "/customers", r#"{"name": 5}"#),
        (Method::PATCH, "/channels/chn_1", "not json"),
        (Method::POST, "/carts", r#"{"channel_id": []}"#),
        (Method::POST, "/inventory/adjustments", r#"{"sku": "A\u0000"}"#),
        (Method::POST, "/webhook-endpoints", "{}"),
        (Method::POST, "/orders", r#"{"lines": "none"}"#),
    ] {
        let answer = app
            .client
            .request(method.clone(), format!("{}/api/v1{path}", app.base))
            .bearer_auth(&reader)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = problem(answer, 403, "forbidden").await;
        assert!(problem["errors"].is_null(), "{method} {path}: {problem}");
    }
}

const SHOP: &str = "https://shop.example";
const EVIL: &str = "https://evil.example";

/// A storefront's publishable key for the pages of `SHOP`, on a new web channel.
async fn storefront_key(app: &TestApp) -> String {
    let warehouse = fixtures::location(app, "Warehouse", "warehouse").await;
    let web = fixtures::channel(app, "Web", "web", &[id(&warehouse)]).await;
    let origins = [format!("{SHOP}/")];
    let made = app
        .store()
        .generate_api_key("storefront", &[], Some(id(&web)), &origins)
        .await
        .unwrap();
    assert_eq!(made.key.origins, [SHOP], "kept in its canonical form");
    made.token
}

fn header<'a>(answer: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    answer.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, format!("{}{path}", app.base))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

async fn only_the_sites_of_a_publishable_key_may_use_it_from_their_pages(app: TestApp) {
    let token = storefront_key(&app).await;
    let asked = preflight(&app, "/api/v1/products/prd_1", SHOP, "GET").await;
    assert_eq!(asked.status(), 204);
    assert_eq!(header(&asked, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(header(&asked, "access-control-allow-methods"), Some("GET"));
    assert!(
        header(&asked, "access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    let checkout = preflight(&app, "/api/v1/carts/crt_1/checkout", SHOP, "POST").await;
    assert_eq!(checkout.status(), 204);
    for (path, origin, method) in [
        ("/api/v1/products", EVIL, "GET"),
        ("/api/v1/products", SHOP, "POST"),
        ("/api/v1/customers", SHOP, "GET"),
    ] {
        let refused = preflight(&app, path, origin, method).await;
        assert_eq!(
            header(&refused, "access-control-allow-origin"),
            None,
            "{method} {path} from {origin}"
        );
        problem(refused, 403, "forbidden").await;
    }

    let products = format!("{}/api/v1/products", app.base);
    let from = |origin: Option<&str>, key: &str| {
        let request = app.client.get(&products).bearer_auth(key);
        match origin {
            Some(origin) => request.header("origin", origin),
            None => request,
        }
    };
    let shop = from(Some(SHOP), &token).send().await.unwrap();
    assert_eq!(header(&shop, "access-control-allow-origin"), Some(SHOP));
    assert!(
        header(&shop, "access-control-expose-headers")
            .unwrap()
            .contains("x-request-id")
    );
    json(shop, 200).await;
    let evil = from(Some(EVIL), &token).send().await.unwrap();
    assert_eq!(header(&evil, "access-control-allow-origin"), None);
    problem(evil, 403, "forbidden").await;
    let server = from(None, &token).send().await.unwrap();
    assert_eq!(header(&server, "access-control-allow-origin"), None);
    json(server, 200).await;
    // A secret key is never offered to a page: no browser reads its answers.
    let secret = from(Some(SHOP), crate::helpers::OWNER_KEY).send().await.unwrap();
    assert_eq!(header(&secret, "access-control-allow-origin"), None);

    let web = json(app.get("/channels").await, 200).await["data"][0].clone();
    let bad = ["https://shop.example/cart".to_owned()];
    let refused = app.store().generate_api_key("x", &[], Some(id(&web)), &bad).await;
    assert!(matches!(refused, Err(omnihub_store::Error::Invalid(_))), "{refused:?}");
    let secret_with_origins = app
        .store()
        .generate_api_key("x", &["admin".into()], None, &[SHOP.into()])
        .await;
    assert!(secret_with_origins.is_err(), "a secret key is for servers only");
}

async fn the_web_chat_answers_the_pages_of_the_shops_sites_only(app: TestApp) {
    storefront_key(&app).await;
    let inbox = json!({"kind": "webchat", "name": "Chat", "credentials": {}});
    let inbox = json(app.post("/inboxes", &inbox).await, 201).await;
    let chat = format!("/webchat/{}", id(&inbox));
    let asked = preflight(&app, &format!("{chat}/messages"), SHOP, "POST").await;
    assert_eq!(asked.status(), 204);
    assert_eq!(header(&asked, "access-control-allow-origin"), Some(SHOP));
    assert!(
        header(&asked, "access-control-allow-headers")
            .unwrap()
            .contains("content-type")
    );
    problem(
        preflight(&app, &format!("{chat}/messages"), EVIL, "POST").await,
        403,
        "forbidden",
    )
    .await;

    let open = |origin: &str| {
        app.client
            .post(format!("{}{chat}/sessions", app.base))
            .header("origin", origin)
            .send()
    };
    let opened = open(SHOP).await.unwrap();
    assert_eq!(header(&opened, "access-control-allow-origin"), Some(SHOP));
    json(opened, 201).await;
    problem(open(EVIL).await.unwrap(), 403, "forbidden").await;
    let own = app
        .client
        .post(format!("{}{chat}/sessions", app.base))
        .header("origin", &app.base);
    json(own.send().await.unwrap(), 201).await;
}

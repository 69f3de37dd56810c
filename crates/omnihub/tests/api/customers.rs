//! Customers: one profile across every channel — identities and resolution, merges,
//! consents, timeline, loyalty, export and erasure.

use omnihub_domain::customers::{Identity, IdentityKind, LoyaltyReason};
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::id;
use crate::helpers::{TestApp, json, problem, types};
use crate::on_both_backends;

on_both_backends!(
    phone_and_email_variants_find_one_customer,
    names_are_found_in_any_script_and_case,
    resolve_finds_attaches_creates_or_answers_404,
    one_identity_belongs_to_one_customer,
    identities_of_two_customers_suggest_a_merge_instead_of_merging,
    merge_moves_everything_and_is_recorded,
    bad_merges_are_refused_and_change_nothing,
    bad_identities_are_refused_and_change_nothing,
    profiles_change_by_merge_patch,
    loyalty_never_goes_below_zero,
    tiers_follow_twelve_months_of_spend,
    timeline_pages_newest_first,
    export_holds_everything,
    erasure_removes_personal_data_once,
    erasure_scrubs_the_customers_carts,
    scopes_guard_customers,
    customers_are_documented,
    other_domains_resolve_without_failing_on_two_customers,
);

fn identity(kind: &str, value: &str) -> Value {
    json!({"kind": kind, "value": value})
}

async fn create(app: &TestApp, body: Value) -> Value {
    json(app.post("/customers", &body).await, 201).await
}

async fn resolve(app: &TestApp, identities: Value, create: bool) -> reqwest::Response {
    app.post(
        "/customers/resolve",
        &json!({"identities": identities, "create": create}),
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> Value {
    json(app.get(path).await, 200).await
}

async fn adjust(app: &TestApp, customer: &Value, points: i64) -> reqwest::Response {
    app.post(
        &format!("/customers/{}/loyalty/adjustments", id(customer)),
        &json!({"points": points, "reason": "goodwill"}),
    )
    .await
}

/// The data of every logged event of `kind`, oldest first.
async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    let log = get(app, &format!("/events?types={kind}")).await;
    log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].clone())
        .collect()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

async fn phone_and_email_variants_find_one_customer(app: TestApp) {
    let jane = create(
        &app,
        json!({"name": "Jane Roe", "identities": [identity("phone", "+49 151 1234 5678"), identity("email", "Jane.Roe@Example.com")]}),
    )
    .await;
    assert_eq!(
        jane["identities"],
        json!([
            identity("email", "jane.roe@example.com"),
            identity("phone", "+4915112345678")
        ])
    );
    for (kind, written) in [
        ("phone", "0151 12345678"),
        ("phone", "004915112345678"),
        ("whatsapp", "4915112345678"),
        ("email", "  JANE.ROE@example.COM "),
    ] {
        let found = json(resolve(&app, json!([identity(kind, written)]), false).await, 200).await;
        assert_eq!(found["id"], jane["id"], "{kind} {written}");
        assert_eq!(found["version"], 1, "nothing new to attach");
    }
    for query in ["0151%2012345678", "JANE.ROE%40EXAMPLE.COM", "roe"] {
        let listed = get(&app, &format!("/customers?q={query}")).await;
        assert_eq!(ids(&listed["data"]), [id(&jane)], "{query}");
    }
    let other = get(&app, "/customers?q=0151%2099999999").await;
    assert_eq!(other["data"], json!([]));
    let count = get(&app, "/customers").await;
    assert_eq!(count["data"].as_array().unwrap().len(), 1);
}

async fn names_are_found_in_any_script_and_case(app: TestApp) {
    let kemal = json(app.post("/customers", &json!({"name": "Kemal Özdemir"})).await, 201).await;
    let anders = json(app.post("/customers", &json!({"name": "Anders Ångström"})).await, 201).await;
    json(app.post("/customers", &json!({"name": "Olga Петрова"})).await, 201).await;
    for (query, who) in [
        ("Özdemir", &kemal),
        ("özdemir", &kemal),
        ("ÖZDEMIR", &kemal),
        ("Ångström", &anders),
        ("ångström", &anders),
        ("ÅNGSTRÖM", &anders),
    ] {
        let url = reqwest::Url::parse_with_params("http://x/customers", [("q", query)]).unwrap();
        let listed = get(&app, &format!("/customers?{}", url.query().unwrap())).await;
        assert_eq!(ids(&listed["data"]), [id(who)], "{query}");
    }
    let url = reqwest::Url::parse_with_params("http://x/customers", [("q", "ПЕТРОВА")]).unwrap();
    let listed = get(&app, &format!("/customers?{}", url.query().unwrap())).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let patched = json(
        app.patch(&format!("/customers/{}", id(&kemal)), &json!({"name": "Kemal Çelik"}))
            .await,
        200,
    )
    .await;
    assert_eq!(patched["name"], "Kemal Çelik");
    let url = reqwest::Url::parse_with_params("http://x/customers", [("q", "çelik")]).unwrap();
    let listed = get(&app, &format!("/customers?{}", url.query().unwrap())).await;
    assert_eq!(ids(&listed["data"]), [id(&kemal)]);
}

async fn resolve_finds_attaches_creates_or_answers_404(app: TestApp) {
    let unknown = json!([identity("email", "new@example.com")]);
    problem(resolve(&app, unknown.clone(), false).await, 404, "not_found").await;
    assert_eq!(get(&app, "/customers").await["data"], json!([]), "404 creates nothing");

    let created = json(resolve(&app, unknown, true).await, 201).await;
    assert!(id(&created).starts_with("cus_"));
    let both = json!([identity("email", "NEW@example.com"), identity("telegram", "778899")]);
    let found = json(resolve(&app, both, false).await, 200).await;
    assert_eq!(found["id"], created["id"]);
    assert_eq!(found["identities"][1], identity("telegram", "778899"));
    assert_eq!(found["version"], 2);

    let added = events(&app, "customer.identity_added").await;
    assert_eq!(added, [json!({"customer_id": id(&created), "kind": "telegram"})]);
    assert_eq!(events(&app, "customer.created").await.len(), 1);
}

async fn one_identity_belongs_to_one_customer(app: TestApp) {
    let ann = create(&app, json!({"identities": [identity("email", "ann@example.com")]})).await;
    let bob = create(&app, json!({"identities": [identity("phone", "+4917012345678")]})).await;

    let clash = app
        .post(
            "/customers",
            &json!({"name": "Other", "identities": [identity("email", "ANN@example.com")]}),
        )
        .await;
    let body = problem(clash, 409, "conflict").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("email") && !detail.contains("ann@"), "{detail}");

    let taking = app
        .patch(
            &format!("/customers/{}", id(&bob)),
            &json!({"identities": [identity("phone", "+4917012345678"), identity("email", "ann@example.com")]}),
        )
        .await;
    problem(taking, 409, "conflict").await;
    let unchanged = get(&app, &format!("/customers/{}", id(&bob))).await;
    assert_eq!(
        (
            unchanged["version"].as_i64(),
            unchanged["identities"].as_array().unwrap().len()
        ),
        (Some(1), 1)
    );
    assert_eq!(get(&app, "/customers").await["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        events(&app, "customer.created").await.len(),
        2,
        "refused creations leave no event"
    );
    let same = json(
        resolve(&app, json!([identity("email", "ann@example.com")]), false).await,
        200,
    )
    .await;
    assert_eq!(same["id"], ann["id"]);
}

async fn identities_of_two_customers_suggest_a_merge_instead_of_merging(app: TestApp) {
    let web = create(&app, json!({"identities": [identity("email", "max@example.com")]})).await;
    let chat = create(&app, json!({"identities": [identity("whatsapp", "4915212345678")]})).await;
    let both = json!([
        identity("email", "max@example.com"),
        identity("phone", "0152 12345678"),
        identity("telegram", "55")
    ]);

    let answer = resolve(&app, both.clone(), true).await;
    let body = problem(answer, 409, "conflict").await;
    assert_eq!(
        body["candidates"],
        json!([
            {"customer_id": id(&web), "identity_kinds": ["email"]},
            {"customer_id": id(&chat), "identity_kinds": ["phone"]}
        ])
    );
    problem(resolve(&app, both, true).await, 409, "conflict").await;

    for customer in [&web, &chat] {
        let read = get(&app, &format!("/customers/{}", id(customer))).await;
        assert_eq!(read["identities"].as_array().unwrap().len(), 1, "nothing attached");
        assert_eq!(read["merged_into"], Value::Null, "not merged");
    }
    let export = get(&app, &format!("/customers/{}/export", id(&web))).await;
    let suggestions = export["merge_suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), 1, "kept once however often it is seen");
    let mut pair = vec![id(&web), id(&chat)];
    pair.sort();
    assert_eq!(suggestions[0]["customer_ids"], json!(pair));
    assert_eq!(
        events(&app, "customer.merge_suggested").await,
        [json!({"customer_ids": pair})]
    );
    assert_eq!(get(&app, "/customers").await["data"].as_array().unwrap().len(), 2);
}

async fn merge_moves_everything_and_is_recorded(app: TestApp) {
    let web = create(
        &app,
        json!({"name": "Mia", "tags": ["vip"], "identities": [identity("email", "mia@example.com")],
               "consents": [{"channel": "email", "status": "opted_in", "source": "checkout"}]}),
    )
    .await;
    let chat = create(
        &app,
        json!({"tags": ["chat"], "preferred_channel": "whatsapp", "identities": [identity("whatsapp", "4916012345678")],
               "consents": [{"channel": "email", "status": "opted_out", "source": "unsubscribe"},
                            {"channel": "whatsapp", "status": "opted_in", "source": "whatsapp_optin"}]}),
    )
    .await;
    json(adjust(&app, &web, 20).await, 201).await;
    json(adjust(&app, &chat, 50).await, 201).await;
    let store = crate::fixtures::location(&app, "Store", "store").await;
    let web_shop = crate::fixtures::channel(&app, "Web", "web", &[id(&store)]).await;
    let cart_body = json!({"channel_id": id(&web_shop), "customer_id": id(&chat)});
    let cart = json(app.post("/carts", &cart_body).await, 201).await;
    problem(
        resolve(
            &app,
            json!([
                identity("email", "mia@example.com"),
                identity("phone", "+4916012345678")
            ]),
            false,
        )
        .await,
        409,
        "conflict",
    )
    .await;

    let merge = json!({"customer_id": id(&chat)});
    let merged = json(app.post(&format!("/customers/{}/merge", id(&web)), &merge).await, 200).await;
    assert_eq!(
        merged["identities"],
        json!([
            identity("email", "mia@example.com"),
            identity("phone", "+4916012345678")
        ])
    );
    let consents: Vec<(&str, &str)> = merged["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["channel"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        consents,
        [("email", "opted_in"), ("whatsapp", "opted_in")],
        "the survivor's word wins"
    );
    assert_eq!(
        (merged["name"].clone(), merged["tags"].clone()),
        (json!("Mia"), json!(["vip", "chat"]))
    );
    assert_eq!(merged["preferred_channel"], "whatsapp");

    let loyalty = get(&app, &format!("/customers/{}/loyalty", id(&web))).await;
    assert_eq!(loyalty["balance"], 70);
    assert_eq!(loyalty["movements"]["data"].as_array().unwrap().len(), 2);

    let absorbed = get(&app, &format!("/customers/{}", id(&chat))).await;
    assert_eq!(absorbed["merged_into"], web["id"]);
    assert_eq!(
        (absorbed["identities"].clone(), absorbed["name"].clone()),
        (json!([]), Value::Null)
    );
    let by_phone = json(
        resolve(&app, json!([identity("phone", "01601 2345678")]), false).await,
        200,
    )
    .await;
    assert_eq!(by_phone["id"], web["id"]);
    let absorbed_loyalty = get(&app, &format!("/customers/{}/loyalty", id(&chat))).await;
    assert_eq!(absorbed_loyalty["balance"], 0);

    let export = get(&app, &format!("/customers/{}/export", id(&web))).await;
    let record = &export["merges"][0];
    assert_eq!(
        (record["survivor_id"].clone(), record["absorbed_id"].clone()),
        (web["id"].clone(), chat["id"].clone())
    );
    assert!(record["by"].as_str().unwrap().starts_with("key_"));
    assert_eq!(record["moved"]["identities"], 1);
    assert_eq!(record["moved"]["consents"], 1);
    assert_eq!(record["moved"]["loyalty_points"], 50);
    assert_eq!(record["moved"]["loyalty_movements"], 1);
    assert_eq!(record["moved"]["carts"], 1);
    let followed = get(&app, &format!("/customers/{}/cart", id(&web))).await;
    assert_eq!(
        followed["id"], cart["id"],
        "the cart follows the customer into the merge"
    );
    assert_eq!(
        export["merge_suggestions"],
        json!([]),
        "the merge settles the suggestion"
    );
    let timeline = get(&app, &format!("/customers/{}/timeline", id(&web))).await;
    let kinds = types(&timeline);
    assert_eq!(
        kinds.iter().filter(|k| **k == "customer.created").count(),
        2,
        "both journeys are one now"
    );
    assert_eq!(kinds[0], "customer.merged");

    let logged = events(&app, "customer.merged").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0]["customer_id"].clone(), logged[0]["absorbed_id"].clone()),
        (web["id"].clone(), chat["id"].clone())
    );
    assert_eq!(logged[0]["by"], record["by"], "who merged");
}

async fn bad_merges_are_refused_and_change_nothing(app: TestApp) {
    let a = create(&app, json!({"identities": [identity("email", "a@example.com")]})).await;
    let b = create(&app, json!({"identities": [identity("email", "b@example.com")]})).await;
    let c = create(&app, json!({"identities": [identity("email", "c@example.com")]})).await;
    let app = &app;
    let merge = |into: &Value, other: &str| {
        let path = format!("/customers/{}/merge", id(into));
        let body = json!({"customer_id": other});
        async move { app.post(&path, &body).await }
    };

    let itself = problem(merge(&a, id(&a)).await, 422, "validation_failed").await;
    assert_eq!(itself["errors"][0]["field"], "customer_id");
    let unknown = problem(merge(&a, "cus_nope").await, 422, "validation_failed").await;
    assert_eq!(unknown["errors"][0]["code"], "not_found");
    problem(
        app.post("/customers/cus_nope/merge", &json!({"customer_id": id(&a)}))
            .await,
        404,
        "not_found",
    )
    .await;

    json(merge(&a, id(&b)).await, 200).await;
    let again = problem(merge(&c, id(&b)).await, 422, "validation_failed").await;
    assert_eq!(again["errors"][0]["code"], "already_merged");
    let into_absorbed = problem(merge(&b, id(&c)).await, 422, "validation_failed").await;
    assert_eq!(into_absorbed["errors"][0]["code"], "already_merged");

    let erased = app.delete(&format!("/customers/{}", id(&c))).await;
    assert_eq!(erased.status(), 204);
    let with_erased = problem(merge(&a, id(&c)).await, 422, "validation_failed").await;
    assert_eq!(with_erased["errors"][0]["code"], "erased");

    let survivor = get(app, &format!("/customers/{}", id(&a))).await;
    assert_eq!(survivor["identities"].as_array().unwrap().len(), 2);
    assert_eq!(events(app, "customer.merged").await.len(), 1, "only the one good merge");
}

async fn bad_identities_are_refused_and_change_nothing(app: TestApp) {
    let unparseable = app
        .post(
            "/customers",
            &json!({"identities": [identity("phone", "call me maybe")]}),
        )
        .await;
    let body = problem(unparseable, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "identities[0].value");

    let fax = app
        .post(
            "/customers",
            &json!({"identities": [identity("email", "ok@example.com"), identity("fax", "123")]}),
        )
        .await;
    let body = problem(fax, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "identities[1].kind");

    let short = problem(
        resolve(&app, json!([identity("phone", "12")]), true).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(short["errors"][0]["field"], "identities[0].value");
    problem(resolve(&app, json!([]), true).await, 422, "validation_failed").await;
    let consent = json!({"consents": [{"channel": "loyalty_card", "status": "opted_in", "source": "pos"}]});
    problem(app.post("/customers", &consent).await, 422, "validation_failed").await;

    assert_eq!(get(&app, "/customers").await["data"], json!([]));
    assert_eq!(
        get(&app, "/events").await["data"],
        json!([]),
        "no event for refused requests"
    );
}

async fn profiles_change_by_merge_patch(app: TestApp) {
    let lea = create(
        &app,
        json!({"name": "Lea", "identities": [identity("email", "lea@example.com")],
               "consents": [{"channel": "email", "status": "opted_in", "source": "checkout"}]}),
    )
    .await;
    let path = format!("/customers/{}", id(&lea));
    let given_at = lea["consents"][0]["at"].clone();
    app.clock.advance_seconds(3600);

    let patch = json!({"name": "Lea Sommer", "tags": ["newsletter"], "preferred_channel": "email",
                       "identities": [identity("email", "lea@example.com"), identity("phone", "0171 2345678")]});
    let changed = json(app.patch(&path, &patch).await, 200).await;
    assert_eq!(
        (changed["name"].clone(), changed["version"].clone()),
        (json!("Lea Sommer"), json!(2))
    );
    assert_eq!(
        changed["consents"][0]["at"], given_at,
        "an untouched consent keeps its date"
    );
    assert_eq!(changed["identities"][1], identity("phone", "+491712345678"));

    let opt_out = json!({"consents": [{"channel": "email", "status": "opted_out", "source": "unsubscribe_link"}]});
    let stale = app
        .request(Method::PATCH, &path)
        .header("if-match", "1")
        .json(&opt_out)
        .send()
        .await
        .unwrap();
    problem(stale, 412, "version_mismatch").await;
    let fresh = app
        .request(Method::PATCH, &path)
        .header("if-match", "2")
        .json(&opt_out)
        .send()
        .await
        .unwrap();
    let opted_out = json(fresh, 200).await;
    assert_eq!(opted_out["consents"][0]["status"], "opted_out");
    assert_ne!(opted_out["consents"][0]["at"], given_at, "a new word is dated now");

    let dropped = json(
        app.patch(&path, &json!({"identities": [identity("phone", "+491712345678")]}))
            .await,
        200,
    )
    .await;
    assert_eq!(dropped["identities"].as_array().unwrap().len(), 1);
    json(
        resolve(&app, json!([identity("email", "lea@example.com")]), true).await,
        201,
    )
    .await;

    let updates = events(&app, "customer.updated").await;
    assert_eq!(updates.len(), 3);
    assert_eq!(
        updates[0],
        json!({"customer_id": id(&lea), "version": 2}),
        "no personal data in events"
    );
    problem(
        app.patch(&path, &json!({"tags": ["", "x"]})).await,
        422,
        "validation_failed",
    )
    .await;
}

async fn loyalty_never_goes_below_zero(app: TestApp) {
    let tom = create(&app, json!({"identities": [identity("loyalty_card", "TC-1001")]})).await;
    let earned = json(adjust(&app, &tom, 100).await, 201).await;
    assert_eq!(
        (earned["points"].clone(), earned["balance"].clone()),
        (json!(100), json!(100))
    );
    assert!(earned["id"].as_str().unwrap().starts_with("lpt_"));

    let too_much = problem(adjust(&app, &tom, -150).await, 422, "validation_failed").await;
    assert_eq!(too_much["errors"][0]["code"], "insufficient_points");
    problem(adjust(&app, &tom, 0).await, 422, "validation_failed").await;
    for reason in ["birthday", "order_completed", "order_cancelled"] {
        let not_manual = json!({"points": 5, "reason": reason});
        let refused = problem(
            app.post(&format!("/customers/{}/loyalty/adjustments", id(&tom)), &not_manual)
                .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], "reason", "{reason}");
    }
    let loyalty = get(&app, &format!("/customers/{}/loyalty", id(&tom))).await;
    assert_eq!(loyalty["balance"], 100);
    assert_eq!(
        loyalty["movements"]["data"].as_array().unwrap().len(),
        1,
        "nothing changed"
    );

    let spent = json(adjust(&app, &tom, -100).await, 201).await;
    assert_eq!(spent["balance"], 0);
    problem(adjust(&app, &tom, -1).await, 422, "validation_failed").await;
    problem(
        app.post(
            "/customers/cus_nope/loyalty/adjustments",
            &json!({"points": 1, "reason": "goodwill"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let changes = events(&app, "loyalty.points_changed").await;
    let balances: Vec<i64> = changes.iter().map(|e| e["balance"].as_i64().unwrap()).collect();
    assert_eq!(balances, [100, 0]);
}

async fn tiers_follow_twelve_months_of_spend(app: TestApp) {
    let kim = create(&app, json!({"identities": [identity("email", "kim@example.com")]})).await;
    let path = format!("/customers/{}/loyalty", id(&kim));
    assert_eq!(get(&app, &path).await["tier"]["name"], "Bronze");

    // Orders feed spend and points from their own transactions.
    let store = app.store();
    let mut tx = store.db().begin().await.unwrap();
    omnihub_store::record_spend_in(&mut tx, id(&kim), 60_000, Some("ord_1"), store.now())
        .await
        .unwrap();
    let movement = omnihub_store::add_loyalty_points_in(
        &mut tx,
        id(&kim),
        600,
        LoyaltyReason::OrderCompleted,
        Some("ord_1"),
        store.now(),
    )
    .await
    .unwrap();
    assert!(movement.is_some());
    let nothing =
        omnihub_store::add_loyalty_points_in(&mut tx, id(&kim), 0, LoyaltyReason::OrderCompleted, None, store.now())
            .await
            .unwrap();
    assert_eq!(nothing, None);
    tx.commit().await.unwrap();

    let loyalty = get(&app, &path).await;
    assert_eq!(
        (loyalty["tier"]["name"].clone(), loyalty["spend_12m_minor"].clone()),
        (json!("Silver"), json!(60_000))
    );
    assert_eq!(loyalty["movements"]["data"][0]["order_id"], "ord_1");
    assert_eq!(loyalty["balance"], 600);
    app.clock.advance_seconds(366 * 24 * 3600);
    let a_year_on = get(&app, &path).await;
    assert_eq!(
        (a_year_on["tier"]["name"].clone(), a_year_on["balance"].clone()),
        (json!("Bronze"), json!(600))
    );
}

async fn timeline_pages_newest_first(app: TestApp) {
    let eva = create(&app, json!({"identities": [identity("email", "eva@example.com")]})).await;
    for points in [10, 20, 30] {
        app.clock.advance_seconds(60);
        json(adjust(&app, &eva, points).await, 201).await;
    }
    let path = format!("/customers/{}/timeline", id(&eva));
    let first = get(&app, &format!("{path}?limit=2")).await;
    let points: Vec<i64> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"]["points"].as_i64().unwrap())
        .collect();
    assert_eq!(points, [30, 20]);
    assert_eq!(first["data"][0]["type"], "loyalty.points_changed");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(&app, &format!("{path}?limit=2&cursor={cursor}")).await;
    let kinds = types(&second);
    assert_eq!(kinds, ["loyalty.points_changed", "customer.created"]);
    assert_eq!(second["next_cursor"], Value::Null);
    let ledger = get(&app, &format!("/customers/{}/loyalty?limit=1", id(&eva))).await;
    assert_eq!(ledger["movements"]["data"][0]["points"], 30);
    assert!(ledger["movements"]["next_cursor"].is_string());
    problem(
        app.get(&format!("{path}?cursor=bm9wZQ")).await,
        422,
        "validation_failed",
    )
    .await;
    problem(app.get("/customers/cus_nope/timeline").await, 404, "not_found").await;
}

async fn export_holds_everything(app: TestApp) {
    let ole = create(
        &app,
        json!({"name": "Ole", "tags": ["pos"], "identities": [identity("email", "ole@example.com"), identity("loyalty_card", "77-12")],
               "consents": [{"channel": "viber", "status": "opted_in", "source": "pos"}]}),
    )
    .await;
    json(adjust(&app, &ole, 40).await, 201).await;
    let export = get(&app, &format!("/customers/{}/export", id(&ole))).await;
    assert_eq!(export["customer"]["name"], "Ole");
    assert_eq!(export["customer"]["tags"], json!(["pos"]));
    assert_eq!(export["customer"]["identities"][1], identity("loyalty_card", "7712"));
    assert_eq!(export["customer"]["consents"][0]["channel"], "viber");
    assert_eq!(export["loyalty_balance"], 40);
    assert_eq!(export["loyalty_movements"][0]["points"], 40);
    assert_eq!(export["timeline"].as_array().unwrap().len(), 2);
    assert_eq!(
        (export["merges"].clone(), export["merge_suggestions"].clone()),
        (json!([]), json!([]))
    );
    assert!(export["exported_at"].is_string());
    problem(app.get("/customers/cus_nope/export").await, 404, "not_found").await;
}

async fn erasure_removes_personal_data_once(app: TestApp) {
    let rai = create(
        &app,
        json!({"name": "Rai", "tags": ["vip"], "identities": [identity("email", "rai@example.com")],
               "consents": [{"channel": "email", "status": "opted_in", "source": "checkout"}]}),
    )
    .await;
    json(
        app.post(
            &format!("/customers/{}/loyalty/adjustments", id(&rai)),
            &json!({"points": 25, "reason": "goodwill", "reference": "rai@example.com complained"}),
        )
        .await,
        201,
    )
    .await;
    let path = format!("/customers/{}", id(&rai));
    let erased = app.delete(&path).await;
    assert_eq!(erased.status(), 204);

    let shell = get(&app, &path).await;
    assert_eq!((shell["name"].clone(), shell["tags"].clone()), (Value::Null, json!([])));
    assert_eq!(
        (shell["identities"].clone(), shell["consents"].clone()),
        (json!([]), json!([]))
    );
    assert!(shell["erased_at"].is_string());
    let export = get(&app, &format!("{path}/export")).await;
    assert_eq!(export["loyalty_balance"], 25, "totals stay");
    assert_eq!(export["timeline"], json!([]));
    assert!(!export.to_string().contains("rai@"), "{export}");
    let log = get(&app, "/events").await;
    assert!(
        !log.to_string().contains("rai@") && !log.to_string().contains("Rai"),
        "{log}"
    );
    problem(
        resolve(&app, json!([identity("email", "rai@example.com")]), false).await,
        404,
        "not_found",
    )
    .await;

    let twice = app.delete(&path).await;
    problem(twice, 409, "conflict").await;
    problem(app.patch(&path, &json!({"name": "Rai"})).await, 409, "conflict").await;
    problem(adjust(&app, &rai, 5).await, 409, "conflict").await;
    let unknown = app.delete("/customers/cus_nope").await;
    problem(unknown, 404, "not_found").await;
    assert_eq!(
        events(&app, "customer.erased").await,
        [json!({"customer_id": id(&rai)})]
    );
    assert_eq!(
        get(&app, "/customers").await["data"],
        json!([]),
        "lists leave erased customers out"
    );
}

async fn erasure_scrubs_the_customers_carts(app: TestApp) {
    let warehouse = crate::fixtures::location(&app, "Warehouse", "warehouse").await;
    let web = crate::fixtures::channel(&app, "Web", "web", &[id(&warehouse)]).await;
    let tea = crate::fixtures::product(&app, "Tea", &["TEA-1"], 500).await;
    let listing = format!("/products/{}/listings/{}", id(&tea), id(&web));
    json(app.put(&listing, &json!({"published": true})).await, 200).await;
    let stock = json!({"sku": "TEA-1", "location_id": id(&warehouse), "delta": 5, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &stock).await, 200).await;
    let lena = create(
        &app,
        json!({"name": "Lena", "identities": [identity("email", "lena@example.com")]}),
    )
    .await;
    let address =
        json!({"name": "Lena Berg", "line1": "Torstr. 1", "city": "Berlin", "postal_code": "10119", "country": "DE"});
    let details = json!({"email": "Lena@Example.com", "shipping_address": address, "fulfillment": {"method": "ship"}});

    // A cart of hers, and a guest cart with her e-mail that became her order.
    let hers = json(
        app.post("/carts", &json!({"channel_id": id(&web), "customer_id": id(&lena)}))
            .await,
        201,
    )
    .await;
    let hers = format!("/carts/{}", id(&hers));
    json(app.patch(&hers, &details).await, 200).await;
    let guest = json(app.post("/carts", &json!({"channel_id": id(&web)})).await, 201).await;
    let guest = format!("/carts/{}", id(&guest));
    json(
        app.post(&format!("{guest}/lines"), &json!({"sku": "TEA-1", "quantity": 1}))
            .await,
        200,
    )
    .await;
    json(app.patch(&guest, &details).await, 200).await;
    let order = json(app.post(&format!("{guest}/checkout"), &json!({})).await, 201).await;
    assert_eq!(order["customer_id"], lena["id"], "{order}");

    assert_eq!(app.delete(&format!("/customers/{}", id(&lena))).await.status(), 204);
    for cart in [&hers, &guest] {
        let read = get(&app, cart).await;
        assert_eq!(read["email"], Value::Null, "{read}");
        assert_eq!(read["shipping_address"], Value::Null, "{read}");
    }
    let order = get(&app, &format!("/orders/{}", id(&order))).await;
    assert!(!order.to_string().to_lowercase().contains("lena"), "{order}");
}

async fn scopes_guard_customers(app: TestApp) {
    let noor = create(&app, json!({"identities": [identity("email", "noor@example.com")]})).await;
    let reader = app.key_with(&["customers:read"]).await;
    let as_reader = |method: Method, path: &str| {
        app.client
            .request(method, format!("{}/api/v1{path}", app.base))
            .bearer_auth(&reader)
    };
    let path = format!("/customers/{}", id(&noor));
    json(as_reader(Method::GET, &path).send().await.unwrap(), 200).await;
    let write = as_reader(Method::POST, "/customers")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(write, 403, "forbidden").await;
    let erase = as_reader(Method::DELETE, &path).send().await.unwrap();
    problem(erase, 403, "forbidden").await;

    let catalog = app.key_with(&["catalog:write"]).await;
    let denied = app
        .client
        .get(format!("{}/api/v1{path}", app.base))
        .bearer_auth(&catalog)
        .send()
        .await
        .unwrap();
    problem(denied, 403, "forbidden").await;

    let location = crate::fixtures::location(&app, "Store", "store").await;
    let web = crate::fixtures::channel(&app, "Web", "web", &[id(&location)]).await;
    let publishable = app
        .store()
        .generate_api_key("storefront", &[], Some(id(&web)), &[])
        .await
        .unwrap()
        .token;
    let storefront = app
        .client
        .get(format!("{}/api/v1{path}", app.base))
        .bearer_auth(&publishable)
        .send()
        .await
        .unwrap();
    problem(storefront, 403, "forbidden").await;
    let resolving = app
        .client
        .post(format!("{}/api/v1/customers/resolve", app.base))
        .bearer_auth(&publishable)
        .json(&json!({"identities": [identity("email", "noor@example.com")]}))
        .send()
        .await
        .unwrap();
    problem(resolving, 403, "forbidden").await;
}

async fn other_domains_resolve_without_failing_on_two_customers(app: TestApp) {
    let web = create(&app, json!({"identities": [identity("email", "zoe@example.com")]})).await;
    let chat = create(&app, json!({"identities": [identity("phone", "+4915512345678")]})).await;
    let store = app.store();
    let given = [
        Identity::new(IdentityKind::Email, "Zoe@Example.com"),
        Identity::new(IdentityKind::Whatsapp, "4915512345678"),
        Identity::new(IdentityKind::Instagram, "zoe.insta"),
    ];
    let mut tx = store.db().begin().await.unwrap();
    let chosen = omnihub_store::resolve_customer_in(&mut tx, &given, Some("Zoe"), store.now(), store.phone_region())
        .await
        .unwrap();
    let fresh = [Identity::new(IdentityKind::Email, "walk-in@example.com")];
    let created =
        omnihub_store::resolve_customer_in(&mut tx, &fresh, Some("Walk In"), store.now(), store.phone_region())
            .await
            .unwrap();
    let blank_name = [Identity::new(IdentityKind::Telegram, "4242")];
    let anonymous =
        omnihub_store::resolve_customer_in(&mut tx, &blank_name, Some(" "), store.now(), store.phone_region())
            .await
            .unwrap();
    // Events are written by the store's own commits; this checks the rows other domains get.
    tx.commit().await.unwrap();

    assert_eq!(chosen, id(&web), "the first identity's customer");
    let zoe = get(&app, &format!("/customers/{chosen}")).await;
    let kinds: Vec<&str> = zoe["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["email", "instagram"],
        "the free identity joins; the held one stays"
    );
    let export = get(&app, &format!("/customers/{}/export", id(&chat))).await;
    assert_eq!(export["merge_suggestions"].as_array().unwrap().len(), 1);
    let walk_in = get(&app, &format!("/customers/{created}")).await;
    assert_eq!(walk_in["name"], "Walk In");
    let unnamed = get(&app, &format!("/customers/{anonymous}")).await;
    assert_eq!(unnamed["name"], Value::Null, "a name the rules refuse is left out");
}

async fn customers_are_documented(app: TestApp) {
    let doc = app.openapi().await;
    for (path, method) in [
        ("/api/v1/customers", "post"),
        ("/api/v1/customers", "get"),
        ("/api/v1/customers/{id}", "get"),
        ("/api/v1/customers/{id}", "patch"),
        ("/api/v1/customers/{id}", "delete"),
        ("/api/v1/customers/resolve", "post"),
        ("/api/v1/customers/{id}/merge", "post"),
        ("/api/v1/customers/{id}/timeline", "get"),
        ("/api/v1/customers/{id}/loyalty", "get"),
        ("/api/v1/customers/{id}/loyalty/adjustments", "post"),
        ("/api/v1/customers/{id}/export", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
    let resolve = &doc["paths"]["/api/v1/customers/resolve"]["post"]["responses"];
    assert!(resolve["409"].is_object() && resolve["201"].is_object());
}

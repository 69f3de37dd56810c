//! Merges never lose or duplicate anything: random merge sequences over customers with
//! identities, points, carts and orders keep every total.

use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json};
use crate::on_both_backends;

on_both_backends!(random_merges_keep_identities_points_and_orders);

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }
}

struct Person {
    id: String,
    identities: Vec<Value>,
}

async fn people(app: &TestApp, dice: &mut Dice, market: &str, count: usize) -> (Vec<Person>, i64) {
    let mut people = Vec::new();
    let mut points = 0;
    for n in 0..count {
        let mut identities = vec![json!({"kind": "email", "value": format!("person{n}@example.com")})];
        if dice.roll(2) == 0 {
            identities.push(json!({"kind": "phone", "value": format!("+49151000000{n:02}")}));
        }
        let customer = json(
            app.post(
                "/customers",
                &json!({"name": format!("P{n}"), "identities": identities}),
            )
            .await,
            201,
        )
        .await;
        let id = id(&customer).to_owned();
        let earned = 10 * (1 + dice.roll(9) as i64);
        let adjust = json!({"points": earned, "reason": "goodwill"});
        json(
            app.post(&format!("/customers/{id}/loyalty/adjustments"), &adjust).await,
            201,
        )
        .await;
        points += earned;
        let order = json!({
            "channel_id": market, "external_id": format!("M-{n}"), "customer_id": id,
            "lines": [{"sku": "M-1", "quantity": 1, "unit_price": {"amount": 100, "currency": "EUR"}}],
            "fulfillment": {"method": "ship"},
            "shipping_address": {"line1": "A 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}
        });
        json(app.post("/orders", &order).await, 201).await;
        people.push(Person { id, identities });
    }
    (people, points)
}

async fn random_merges_keep_identities_points_and_orders(app: TestApp) {
    let warehouse = id(&fixtures::location(&app, "Warehouse", "warehouse").await).to_owned();
    let market = id(&fixtures::channel(&app, "Marketplace", "marketplace", &[&warehouse]).await).to_owned();
    fixtures::product(&app, "Merge goods", &["M-1"], 100).await;
    let stock = json!({"sku": "M-1", "location_id": warehouse, "delta": 100, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &stock).await, 200).await;

    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let (people, points) = people(&app, &mut dice, &market, 8).await;
    let mut alive: Vec<String> = people.iter().map(|p| p.id.clone()).collect();
    for _ in 0..6 {
        let survivor = alive[dice.roll(alive.len())].clone();
        let absorbed = alive[dice.roll(alive.len())].clone();
        let answer = app
            .post(
                &format!("/customers/{survivor}/merge"),
                &json!({"customer_id": absorbed}),
            )
            .await;
        if survivor == absorbed {
            assert_eq!(answer.status(), 422, "merging into itself is refused");
            continue;
        }
        json(answer, 200).await;
        alive.retain(|c| *c != absorbed);
    }

    let mut total = 0;
    for customer in &alive {
        total += json(app.get(&format!("/customers/{customer}/loyalty")).await, 200).await["balance"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(total, points, "no point lost or duplicated");
    for person in &people {
        for identity in &person.identities {
            let found = json(
                app.post("/customers/resolve", &json!({"identities": [identity]})).await,
                200,
            )
            .await;
            assert!(
                alive.contains(&found["id"].as_str().unwrap().to_owned()),
                "{identity} belongs to a surviving customer"
            );
        }
    }
    let orders = json(app.get("/orders?limit=100").await, 200).await;
    let owners: Vec<&str> = orders["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners.len(), people.len(), "no order lost");
    assert!(
        owners.iter().all(|o| alive.contains(&o.to_string())),
        "every order belongs to a surviving customer"
    );
    let mut per_customer = 0;
    for customer in &alive {
        per_customer += json(app.get(&format!("/orders?customer_id={customer}&limit=100")).await, 200).await["data"]
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(per_customer, people.len(), "no order counted twice");
}

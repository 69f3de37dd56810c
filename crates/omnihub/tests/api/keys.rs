//! API keys: a revoked key is refused at once.

use crate::helpers::{TestApp, problem};
use crate::on_both_backends;

on_both_backends!(a_revoked_key_is_refused_at_once);

async fn a_revoked_key_is_refused_at_once(app: TestApp) {
    let made = app
        .store()
        .generate_api_key("ERP", &["orders:read".to_owned()], None)
        .await
        .expect("key");
    let orders = || {
        app.client
            .get(format!("{}/api/v1/orders", app.base))
            .bearer_auth(&made.token)
    };
    // Seen once, so the server trusts it for a few seconds without asking the database.
    assert_eq!(orders().send().await.unwrap().status().as_u16(), 200);

    let path = format!("/keys/{}", made.key.id);
    let weak = app.key_with(&["orders:write"]).await;
    let refused = app
        .client
        .delete(format!("{}/api/v1{path}", app.base))
        .bearer_auth(weak);
    problem(refused.send().await.unwrap(), 403, "forbidden").await;
    assert_eq!(orders().send().await.unwrap().status().as_u16(), 200, "still a key");

    let revoked = app.delete(&path).await;
    assert_eq!(revoked.status().as_u16(), 204);
    problem(orders().send().await.unwrap(), 401, "unauthorized").await;
    let again = app.delete(&path).await;
    problem(again, 404, "not_found").await;
    let keys = app.store().api_keys().await.expect("keys");
    assert!(keys.iter().all(|k| k.id != made.key.id), "no longer listed");
}

//! API keys: a revoked key is refused at once.

use std::time::Duration;

use futures_util::StreamExt;

use crate::helpers::{TestApp, problem};
use crate::on_both_backends;

on_both_backends!(a_revoked_key_is_refused_at_once, a_revoked_keys_event_stream_ends);

async fn a_revoked_key_is_refused_at_once(app: TestApp) {
    let made = app
        .store()
        .generate_api_key("ERP", &["orders:read".to_owned()], None, &[])
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

/// Reads a live stream until it ends; answers whether it ended within `limit`.
async fn ends_within(response: reqwest::Response, limit: Duration) -> bool {
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn a_revoked_keys_event_stream_ends(app: TestApp) {
    let made = app
        .store()
        .generate_api_key("listener", &["events:read".to_owned()], None, &[])
        .await
        .expect("key");
    let open = |base: &str| {
        app.client
            .get(format!("{base}/api/v1/events/stream"))
            .bearer_auth(&made.token)
            .send()
    };
    let here = open(&app.base).await.unwrap();
    assert_eq!(here.status().as_u16(), 200);
    let elsewhere = match app.another_node().await {
        Some(base) => {
            let stream = open(&base).await.unwrap();
            assert_eq!(stream.status().as_u16(), 200);
            Some(stream)
        }
        None => None,
    };
    let path = format!("/keys/{}", made.key.id);
    assert_eq!(app.delete(&path).await.status().as_u16(), 204);
    assert!(
        ends_within(here, Duration::from_secs(2)).await,
        "the stream on the server that revoked the key ends at once"
    );
    if let Some(stream) = elsewhere {
        assert!(
            ends_within(stream, Duration::from_secs(11)).await,
            "the stream on another server ends within 10 s"
        );
    }
}

//! Signing in and out, the session cookie, CSRF on every form, the limit on wrong passwords,
//! and each role kept to its pages.

use omnihub_domain::users::Role;

use crate::client::Browser;
use crate::on_both_backends;
use crate::shop::Shop;

on_both_backends!(
    each_role_lands_on_its_home_page,
    the_session_cookie_is_http_only_and_ends_on_sign_out,
    forms_without_the_csrf_token_are_refused,
    wrong_passwords_are_limited_per_address,
    roles_are_refused_pages_and_actions_they_may_not_use,
);

async fn each_role_lands_on_its_home_page(shop: Shop) {
    for (role, home) in [
        (Role::Owner, "/admin/dashboard"),
        (Role::Manager, "/admin/dashboard"),
        (Role::Agent, "/admin/inbox"),
        (Role::StoreStaff, "/admin/desk"),
    ] {
        let mut browser = Browser::new(&shop.base);
        let (email, password) = shop.login(role);
        let signed_in = browser.log_in(email, password).await;
        assert_eq!(signed_in.status, 303, "{role:?}");
        assert_eq!(signed_in.location.as_deref(), Some(home), "{role:?}");
        assert_eq!(browser.get("/admin").await.location.as_deref(), Some(home));
        let page = browser.get(home).await;
        assert_eq!(page.status, 200, "{role:?}");
        assert!(page.has(role.label()), "the page names the role");
    }
}

async fn the_session_cookie_is_http_only_and_ends_on_sign_out(shop: Shop) {
    let mut browser = Browser::new(&shop.base);
    let response = reqwest::Client::new()
        .get(format!("{}/admin/orders", shop.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.url().path(), "/admin/login", "signed out: to the sign-in form");

    let (email, password) = shop.login(Role::Manager);
    let form = browser.get("/admin/login?next=/admin/catalog").await;
    let token = form.csrf();
    let request = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/admin/login", shop.base))
        .header(
            "cookie",
            format!(
                "omnihub_login={}",
                browser.cookie("omnihub_login").expect("login cookie")
            ),
        );
    let raw = crate::client::form(
        request,
        &[
            ("email", email),
            ("password", password),
            ("_csrf", &token),
            ("next", "/admin/catalog"),
        ],
    )
    .send()
    .await
    .expect("answer");
    let cookie = raw
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("text")
        .to_owned();
    assert!(cookie.starts_with("omnihub_session="), "{cookie}");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: no Secure flag");
    assert_eq!(
        raw.headers().get("location").expect("redirect"),
        "/admin/catalog",
        "back where the person wanted to go"
    );

    browser.log_in(email, password).await;
    let page = browser.get("/admin/dashboard").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.cache_control.as_deref(),
        Some("no-store"),
        "personal pages are never cached"
    );
    let token = page.csrf();
    let session = browser.cookie("omnihub_session").expect("session").to_owned();
    let out = browser.post("/admin/logout", &[("_csrf", &token)]).await;
    assert_eq!(out.location.as_deref(), Some("/admin/login"));
    let again = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{}/admin/dashboard", shop.base))
        .header("cookie", format!("omnihub_session={session}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(again.status().as_u16(), 303, "a signed-out session signs nobody in");
}

async fn forms_without_the_csrf_token_are_refused(shop: Shop) {
    let mut browser = Browser::new(&shop.base);
    let (email, password) = shop.login(Role::Manager);
    browser.log_in(email, password).await;
    let ledger = || async {
        let filter = omnihub_store::LevelFilter {
            sku: Some("OH-101-M".into()),
            location_id: None,
        };
        shop.store().latest_movements(&filter, 500).await.expect("ledger").len()
    };
    let before = ledger().await;
    let location = shop.store().order_by_number("#1002").await.expect("order").lines[0].allocations[0]
        .location_id
        .clone();
    let adjust = [
        ("sku", "OH-101-M"),
        ("location_id", location.as_str()),
        ("delta", "5"),
        ("reason", "receipt"),
    ];
    let without = browser.post("/admin/inventory/adjust", &adjust).await;
    assert_eq!(without.status, 403);
    let mut forged = vec![("_csrf", "forged-token-from-another-site")];
    forged.extend_from_slice(&adjust);
    assert_eq!(browser.post("/admin/inventory/adjust", &forged).await.status, 403);
    let header_only = reqwest::Client::new()
        .post(format!("{}/admin/logout", shop.base))
        .header(
            "cookie",
            format!(
                "omnihub_session={}",
                browser.cookie("omnihub_session").expect("session")
            ),
        )
        .header("x-csrf-token", "wrong")
        .send()
        .await
        .expect("answer");
    assert_eq!(header_only.status().as_u16(), 403);
    assert_eq!(ledger().await, before, "no stock moved");
    let with_token = browser
        .submit("/admin/inventory", "/admin/inventory/adjust", &adjust)
        .await;
    assert_eq!(with_token.status, 303, "the same form with its token goes through");
    assert_eq!(ledger().await, before + 1);

    // The sign-in form has no session yet: its token is a cookie of its own.
    let mut stranger = Browser::new(&shop.base);
    let refused = stranger
        .post(
            "/admin/login",
            &[("email", email), ("password", password), ("_csrf", "guess")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.has("expired"));
    assert!(stranger.cookie("omnihub_session").is_none());
}

async fn wrong_passwords_are_limited_per_address(shop: Shop) {
    let (email, password) = shop.login(Role::Owner);
    let mut browser = Browser::new(&shop.base);
    for attempt in 1..=5 {
        let page = browser.log_in(email, "wrong password!").await;
        assert_eq!(page.status, 401, "attempt {attempt}");
        assert!(page.has("The e-mail address or the password is wrong."));
    }
    let throttled = browser.log_in(email, password).await;
    assert_eq!(throttled.status, 429, "even the right password waits");
    assert!(throttled.has("Too many wrong passwords"), "{}", throttled.body);
    assert_eq!(throttled.retry_after.as_deref(), Some("900"));
    assert!(browser.cookie("omnihub_session").is_none());

    // Another address is not held back by this one's failures.
    let (other, other_password) = shop.login(Role::Agent);
    assert_eq!(browser.log_in(other, other_password).await.status, 303);

    shop.clock.advance_seconds(15 * 60 + 1);
    let welcome = browser.log_in(email, password).await;
    assert_eq!(welcome.status, 303, "the window has passed");
    assert!(browser.cookie("omnihub_session").is_some());
}

async fn roles_are_refused_pages_and_actions_they_may_not_use(shop: Shop) {
    let forbidden = [
        (Role::Agent, "/admin/dashboard"),
        (Role::Agent, "/admin/inventory"),
        (Role::Agent, "/admin/desk"),
        (Role::Agent, "/admin/settings"),
        (Role::StoreStaff, "/admin/orders"),
        (Role::StoreStaff, "/admin/customers"),
        (Role::StoreStaff, "/admin/catalog"),
        (Role::StoreStaff, "/admin/dashboard"),
        (Role::StoreStaff, "/admin/inbox"),
    ];
    for (role, path) in forbidden {
        let mut browser = Browser::new(&shop.base);
        let (email, password) = shop.login(role);
        browser.log_in(email, password).await;
        let page = browser.get(path).await;
        assert_eq!(page.status, 403, "{role:?} at {path}");
        assert!(page.has("Not for your role"));
    }

    // An agent reads orders but cannot change them.
    let mut agent = Browser::new(&shop.base);
    let (email, password) = shop.login(Role::Agent);
    agent.log_in(email, password).await;
    let order = shop.store().order_by_number("#1002").await.expect("a demo order");
    let page = agent.get(&format!("/admin/orders/{}", order.id)).await;
    assert_eq!(page.status, 200);
    assert!(!page.has("Cancel the order"), "no action forms for a reader");
    let refused = agent
        .submit("/admin/orders", &format!("/admin/orders/{}/cancel", order.id), &[])
        .await;
    assert_eq!(refused.status, 403);
    let still = shop.store().order(&order.id).await.expect("order");
    assert_eq!(still.status, order.status, "nothing changed");

    // A manager runs the shop but not the accounts and keys.
    let mut manager = Browser::new(&shop.base);
    let (email, password) = shop.login(Role::Manager);
    manager.log_in(email, password).await;
    let settings = manager.get("/admin/settings").await;
    assert_eq!(settings.status, 200);
    assert!(settings.has("Sales channels"));
    assert!(!settings.has("API keys") && !settings.has("New account"));
    let refused = manager
        .submit(
            "/admin/settings",
            "/admin/settings/users",
            &[
                ("email", "x@example.com"),
                ("name", "X"),
                ("role", "owner"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    let refused = manager
        .submit(
            "/admin/settings",
            "/admin/settings/keys",
            &[("name", "k"), ("scope", "admin")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        shop.store().users().await.expect("users").len(),
        4,
        "no account was opened"
    );
}

//! What attackers try on the admin app: NUL characters in forms and addresses, parallel and
//! spoofed password guessing, finding out who has an account, framing and injected scripts,
//! and redirects after signing in.

use futures_util::future::join_all;
use omnihub_domain::users::Role;

use crate::client::Browser;
use crate::on_both_backends;
use crate::shop::Shop;

on_both_backends!(
    a_nul_in_a_form_an_address_or_the_sign_in_is_refused_never_a_500,
    parallel_wrong_passwords_are_counted_before_they_are_checked,
    an_unknown_address_costs_the_same_password_check_as_a_known_one,
    a_forwarded_address_from_an_untrusted_peer_escapes_no_limit,
    admin_pages_forbid_inline_scripts_framing_and_sniffing,
    only_admin_pages_are_followed_after_signing_in,
    a_publishable_key_made_in_settings_names_the_sites_whose_pages_use_it,
);

async fn signed_in(shop: &Shop, role: Role) -> Browser {
    let mut browser = Browser::new(&shop.base);
    let (email, password) = shop.login(role);
    assert_eq!(browser.log_in(email, password).await.status, 303);
    browser
}

async fn a_nul_in_a_form_an_address_or_the_sign_in_is_refused_never_a_500(shop: Shop) {
    let mut manager = signed_in(&shop, Role::Manager).await;
    let fields = [
        ("sku", "OH-113-BLACK"),
        ("location_id", "loc_x"),
        ("delta", "1"),
        ("reason", "receipt"),
        ("reference", "note\u{0}"),
    ];
    let refused = manager
        .submit("/admin/inventory", "/admin/inventory/adjust", &fields)
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.has("reference"), "the field is named");
    let searched = manager.get("/admin/customers?q=%00").await;
    assert_eq!(searched.status, 400, "{}", searched.body);
    assert_eq!(manager.get("/admin/orders/ord_%00").await.status, 404);
    assert_eq!(manager.get("/admin/customers/%00").await.status, 404);

    let mut stranger = Browser::new(&shop.base);
    let page = stranger.log_in("owner\u{0}@demo.omnihub.dev", "whatever it is").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.has("The e-mail address or the password is wrong."));
}

/// Forty guesses at once: each is counted before its password is checked, so only the limit's
/// five are checked at all, and even the right password then waits.
async fn parallel_wrong_passwords_are_counted_before_they_are_checked(shop: Shop) {
    let (email, password) = shop.login(Role::Owner);
    let checked_before = shop.store().password_checks();
    let mut browsers = Vec::new();
    for _ in 0..40 {
        let mut browser = Browser::new(&shop.base);
        let token = browser.get("/admin/login").await.csrf();
        browsers.push((browser, token));
    }
    let guesses = browsers.iter_mut().map(|(browser, token)| async move {
        let form = [
            ("email", email),
            ("password", "wrong password!"),
            ("_csrf", token.as_str()),
        ];
        browser.post("/admin/login", &form).await
    });
    let statuses: Vec<u16> = join_all(guesses).await.iter().map(|page| page.status).collect();
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((refused, throttled), (5, 35), "{statuses:?}");
    assert_eq!(
        shop.store().password_checks() - checked_before,
        5,
        "only five were checked"
    );

    let mut owner = Browser::new(&shop.base);
    let locked = owner.log_in(email, password).await;
    assert_eq!(locked.status, 429, "the right password waits too");
    assert!(locked.has("Too many wrong passwords"));
    assert_eq!(shop.store().password_checks() - checked_before, 5);
}

/// An address without an account is answered as a wrong password, after the same work: a
/// password check against a decoy hash.
async fn an_unknown_address_costs_the_same_password_check_as_a_known_one(shop: Shop) {
    let (known, _) = shop.login(Role::Agent);
    let mut browser = Browser::new(&shop.base);
    let before = shop.store().password_checks();
    let wrong = browser.log_in(known, "wrong password!").await;
    assert_eq!(shop.store().password_checks() - before, 1);
    let unknown = browser.log_in("nobody@demo.omnihub.dev", "wrong password!").await;
    assert_eq!(shop.store().password_checks() - before, 2, "a decoy was checked");
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let message = "The e-mail address or the password is wrong.";
    assert!(wrong.has(message) && unknown.has(message));
}

/// Without `--trusted-proxies` the socket's peer is the client: naming another address in
/// `X-Forwarded-For` or `Forwarded` does not start a new count.
async fn a_forwarded_address_from_an_untrusted_peer_escapes_no_limit(shop: Shop) {
    let (email, _) = shop.login(Role::Owner);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        let page = Browser::new(&shop.base).get("/admin/login").await;
        let form = [
            ("email", email),
            ("password", "wrong password!"),
            ("_csrf", &page.csrf()),
        ];
        let request = http.post(format!("{}/admin/login", shop.base));
        let answer = crate::client::form(request, &form)
            .header("cookie", format!("omnihub_login={}", page.csrf()))
            .header("x-forwarded-for", format!("198.51.100.{attempt}"))
            .header("forwarded", format!("for=203.0.113.{attempt}"))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
}

async fn admin_pages_forbid_inline_scripts_framing_and_sniffing(shop: Shop) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/admin/login",
        "/admin/dashboard",
        "/admin/nowhere",
        "/admin/assets/admin.js",
    ] {
        let answer = http.get(format!("{}{path}", shop.base)).send().await.unwrap();
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    }
    let mut owner = signed_in(&shop, Role::Owner).await;
    let error = owner.get("/admin/orders/ord_unknown").await;
    assert_eq!(error.status, 404);
    assert!(!error.has("<style"), "error pages take the stylesheet too");
}

/// The policy holds only while no template carries script or style of its own.
#[test]
fn no_admin_template_carries_inline_script_or_style() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../admin/templates");
    for entry in std::fs::read_dir(&folder).expect("the templates") {
        let path = entry.expect("a template").path();
        let text = std::fs::read_to_string(&path).expect("a template").to_lowercase();
        let name = path.display();
        for script in text.match_indices("<script").map(|(at, _)| &text[at..]) {
            let tag = &script[..script.find('>').expect("a closed tag")];
            assert!(tag.contains(" src="), "{name}: an inline script");
        }
        assert!(
            !text.contains("<style") && !text.contains(" style="),
            "{name}: inline style"
        );
        assert!(!text.contains("javascript:"), "{name}: a javascript: link");
        assert_eq!(inline_handler(&text), None, "{name}: an inline event handler");
    }
}

/// The first attribute such as ` onclick=` in a lower-cased template.
fn inline_handler(text: &str) -> Option<String> {
    text.match_indices(" on").find_map(|(at, _)| {
        let rest = &text[at + 3..];
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        (!name.is_empty() && rest[name.len()..].starts_with('=')).then(|| format!("on{name}"))
    })
}

async fn only_admin_pages_are_followed_after_signing_in(shop: Shop) {
    let (email, password) = shop.login(Role::Manager);
    for (next, lands) in [
        ("/admin/orders?status=open", "/admin/orders?status=open"),
        ("/admin/orders\r\nSet-Cookie: stolen=1", "/admin/dashboard"),
        ("/admin/\u{0}", "/admin/dashboard"),
        ("//evil.example/admin", "/admin/dashboard"),
        ("/admin/\\evil.example", "/admin/dashboard"),
        ("https://evil.example/admin", "/admin/dashboard"),
        ("/administrator", "/admin/dashboard"),
    ] {
        let mut browser = Browser::new(&shop.base);
        let query = serde_urlencoded::to_string([("next", next)]).unwrap();
        let page = browser.get(&format!("/admin/login?{query}")).await;
        assert_eq!(page.status, 200, "{next:?}");
        let token = page.csrf();
        let signed_in = browser
            .post(
                "/admin/login",
                &[
                    ("email", email),
                    ("password", password),
                    ("_csrf", &token),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(signed_in.status, 303, "{next:?}: {}", signed_in.body);
        assert_eq!(signed_in.location.as_deref(), Some(lands), "{next:?}");
    }
}

async fn a_publishable_key_made_in_settings_names_the_sites_whose_pages_use_it(shop: Shop) {
    let mut owner = signed_in(&shop, Role::Owner).await;
    let settings = owner.get("/admin/settings").await;
    let marker = "<select id=\"k-channel\" name=\"channel_id\">";
    let after = &settings.body[settings.body.find(marker).expect("the channel choice") + marker.len()..];
    let start = after.find("value=\"").expect("a channel") + "value=\"".len();
    let channel: String = after[start..].chars().take_while(|c| *c != '"').collect();
    let key = |origins: &'static str| {
        [
            ("name", "Shop"),
            ("kind", "publishable"),
            ("channel_id", ""),
            ("origins", origins),
        ]
    };
    let mut wrong = key("https://shop.example/cart");
    wrong[2].1 = &channel;
    let refused = owner.submit("/admin/settings", "/admin/settings/keys", &wrong).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.has("no path"));
    let mut right = key("https://shop.example, https://www.shop.example");
    right[2].1 = &channel;
    let made = owner.submit("/admin/settings", "/admin/settings/keys", &right).await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.has("from pages of https://shop.example, https://www.shop.example"));
}

//! Every page draws with the demo shop and shows what it is for.

use omnihub_domain::users::Role;

use crate::client::Browser;
use crate::on_both_backends;
use crate::shop::Shop;

on_both_backends!(
    every_page_renders_with_the_demo_shop,
    assets_are_embedded_and_cached,
    an_address_a_page_cannot_read_is_an_error_page
);

async fn signed_in(shop: &Shop, role: Role) -> Browser {
    let mut browser = Browser::new(&shop.base);
    let (email, password) = shop.login(role);
    assert_eq!(browser.log_in(email, password).await.status, 303);
    browser
}

async fn every_page_renders_with_the_demo_shop(shop: Shop) {
    let mut owner = signed_in(&shop, Role::Owner).await;
    let expectations = [
        (
            "/admin/dashboard",
            vec![
                "open orders",
                "open conversations",
                "Revenue today by channel",
                "<svg",
                "Mobile app",
                "611.90 EUR",
            ],
        ),
        (
            "/admin/orders",
            vec!["#1001", "#1005", "Ready for pick-up", "Berlin Mitte Store"],
        ),
        ("/admin/orders?status=open&method=pickup", vec!["#1001", "#1003"]),
        ("/admin/orders?channel=nothing", vec!["No orders match."]),
        (
            "/admin/desk",
            vec!["Waiting here (2)", "#1001", "Hand over to the customer"],
        ),
        ("/admin/desk?number=1004", vec!["Order found", "#1004"]),
        ("/admin/desk?number=9999", vec!["There is no order 9999"]),
        (
            "/admin/inventory",
            vec![
                "Levels",
                "Movement ledger",
                "Adjust stock",
                "Transfer between locations",
            ],
        ),
        (
            "/admin/inventory?sku=OH-113-BLACK",
            vec!["What each channel may sell of OH-113-BLACK", "1 unit + 10 %"],
        ),
        ("/admin/inventory?stock_outs=1", vec!["Sold out everywhere"]),
        (
            "/admin/inventory/replenishment",
            vec!["Reorder suggestions", "Order now"],
        ),
        ("/admin/catalog", vec!["Price parity", "Merino T-Shirt", "+10.0 %"]),
        ("/admin/customers", vec!["anna.schmidt@example.com"]),
        (
            "/admin/customers?q=ANNA.SCHMIDT@example.com",
            vec!["anna.schmidt@example.com"],
        ),
        (
            "/admin/settings",
            vec![
                "Sales channels",
                "Central Warehouse",
                "API keys",
                "owner",
                "New account",
            ],
        ),
        ("/admin/inbox", vec!["Conversations (0)", "No conversations."]),
        ("/admin/inbox?status=all", vec!["Thread", "Choose a conversation."]),
    ];
    for (path, texts) in expectations {
        let page = owner.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for text in texts {
            assert!(page.has(text), "{path} shows {text:?}");
        }
    }
    let ready = shop.store().order_by_number("#1001").await.expect("order");
    let page = owner.get(&format!("/admin/orders/{}", ready.id)).await;
    for text in [
        "Order #1001",
        "OH-103-S",
        "1 at Berlin Mitte Store",
        "Order placed",
        "Fulfillment ready for pickup",
        "Hand over to the customer",
        "Cancel the order",
    ] {
        assert!(page.has(text), "the order page shows {text:?}");
    }
    let customer = ready.customer_id.expect("a customer");
    let page = owner.get(&format!("/admin/customers/{customer}")).await;
    for text in [
        "jonas.weber@example.com",
        "Loyalty",
        "Bronze",
        "#1001",
        "Timeline across channels",
    ] {
        assert!(page.has(text), "the customer page shows {text:?}");
    }
    let product = owner.get("/admin/catalog").await;
    let start = product.body.find("/admin/catalog/prd_").expect("a product link") + "/admin/catalog/".len();
    let id: String = product.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let page = owner.get(&format!("/admin/catalog/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.has("Listings per channel") && page.has("published"));
    assert_eq!(owner.get("/admin/orders/ord_nothing").await.status, 404);
    assert_eq!(owner.get("/admin/nowhere").await.status, 404);

    let mut staff = signed_in(&shop, Role::StoreStaff).await;
    let desk = staff.get("/admin/desk").await;
    assert!(desk.has("Berlin Mitte Store") && desk.has("#1001") && desk.has("#1003"));
    assert!(!desk.has("Open this desk"), "store staff have one desk");
    let stock = staff.get("/admin/inventory?location=elsewhere").await;
    assert_eq!(stock.status, 200);
    assert!(
        stock.has("Berlin Mitte Store") && !stock.has("Central Warehouse</td>"),
        "only their store's stock"
    );
    assert!(!stock.has("Adjust stock"), "store staff only read stock");
}

async fn assets_are_embedded_and_cached(shop: Shop) {
    let mut anyone = Browser::new(&shop.base);
    let login = anyone.get("/admin/login").await;
    assert_eq!(login.status, 200);
    let start = login
        .body
        .find("/admin/assets/admin.css?v=")
        .expect("the stylesheet is linked");
    let href: String = login.body[start..].chars().take_while(|c| *c != '"').collect();
    let css = anyone.get(&href).await;
    assert_eq!(css.status, 200);
    assert_eq!(
        css.cache_control.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert!(css.has("--brand"));
    let js = anyone.get("/admin/assets/admin.js").await;
    assert!(js.has("EventSource"));
    assert_eq!(anyone.get("/admin/assets/nothing.js").await.status, 404);
    assert!(
        !login.has("http://") && !login.has("https://"),
        "nothing is loaded from elsewhere"
    );
}

async fn an_address_a_page_cannot_read_is_an_error_page(shop: Shop) {
    let mut owner = signed_in(&shop, Role::Owner).await;
    let page = owner.get("/admin/orders?status=open&status=paid").await;
    assert_eq!(page.status, 400);
    assert!(page.has("This address is not right"), "{}", page.body);
    assert!(page.has("duplicate field `status`"), "{}", page.body);
    assert!(page.has("Back to the admin"));
}

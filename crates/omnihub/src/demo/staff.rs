//! The demo shop's people and its first orders: one account per role (the store staff at the
//! Berlin store) and a few orders from different channels, so that every admin page has
//! something to show.

use omnihub_domain::Money;
use omnihub_domain::catalog::{Address, Channel};
use omnihub_domain::customers::{Identity, IdentityKind};
use omnihub_domain::orders::{Fulfillment, Method, ShippingAddress, Step};
use omnihub_domain::users::{Role, UserDraft};
use omnihub_store::{ExternalLine, ExternalOrder, Store};
use rand::distr::{Alphanumeric, SampleString};

use crate::BoxError;

/// A demo account and its password, printed once.
#[derive(Debug, Clone)]
pub struct Login {
    pub role: Role,
    pub email: String,
    pub password: String,
}

/// Opens an account for each role. Passwords are random: a demo database is still a database.
pub async fn accounts(store: &Store, berlin_store: &str) -> Result<Vec<Login>, BoxError> {
    let people = [
        (Role::Owner, "owner@demo.omnihub.dev", "Olivia Owner", None),
        (Role::Manager, "manager@demo.omnihub.dev", "Max Manager", None),
        (Role::Agent, "agent@demo.omnihub.dev", "Aylin Agent", None),
        (
            Role::StoreStaff,
            "berlin@demo.omnihub.dev",
            "Ben Berlin",
            Some(berlin_store.to_owned()),
        ),
    ];
    let mut logins = Vec::new();
    for (role, email, name, location_id) in people {
        let password = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let draft = UserDraft {
            email: email.into(),
            name: name.into(),
            role,
            location_id,
        };
        store.create_user(draft, &password).await?;
        logins.push(Login {
            role,
            email: email.into(),
            password,
        });
    }
    Ok(logins)
}

/// One order line at the channel's price: `(sku, quantity, unit price in cents)`.
fn lines(items: &[(&str, i64, i64)]) -> Vec<ExternalLine> {
    items
        .iter()
        .map(|(sku, quantity, cents)| ExternalLine {
            sku: (*sku).into(),
            quantity: *quantity,
            unit_price: Money::new(*cents, "EUR"),
        })
        .collect()
}

fn order(channel: &Channel, external_id: &str, email: &str, method: Method, location: Option<&str>) -> ExternalOrder {
    ExternalOrder {
        channel_id: channel.id.clone(),
        external_id: external_id.into(),
        customer_id: None,
        identities: vec![Identity::new(IdentityKind::Email, email)],
        customer_name: Some(name_from(email)),
        loyalty_points: 0,
        lines: Vec::new(),
        fulfillment: Fulfillment {
            method,
            location_id: location.map(str::to_owned),
        },
        // Parcels go to an address; pick-ups are fetched from the store.
        shipping_address: (method == Method::Ship).then(|| ShippingAddress {
            name: None,
            address: Address {
                line1: "Bergmannstr. 5".into(),
                line2: None,
                city: "Berlin".into(),
                postal_code: "10961".into(),
                region: None,
                country: "DE".into(),
            },
            geo: None,
        }),
    }
}

/// `anna.schmidt@example.com` → `Anna Schmidt`.
fn name_from(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    local
        .split('.')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A morning's orders: shipped from the warehouse, picked up in Berlin (one ready, one being
/// prepared), bought on the marketplace, and sold at the Berlin till.
pub async fn orders(store: &Store, channels: &[Channel], berlin_store: &str) -> Result<usize, BoxError> {
    let [web, app, pos, marketplace, ..] = channels else {
        return Ok(0);
    };
    let berlin = Some(berlin_store);
    let mut intake = vec![
        ExternalOrder {
            lines: lines(&[("OH-101-M", 2, 4900), ("OH-111-3942", 1, 1900)]),
            ..order(web, "demo-web-1", "anna.schmidt@example.com", Method::Ship, None)
        },
        ExternalOrder {
            lines: lines(&[("OH-103-S", 1, 11900)]),
            ..order(app, "demo-app-1", "jonas.weber@example.com", Method::Pickup, berlin)
        },
        ExternalOrder {
            lines: lines(&[("OH-104-M", 1, 24900)]),
            ..order(app, "demo-app-2", "lea.fischer@example.com", Method::Pickup, berlin)
        },
        ExternalOrder {
            lines: lines(&[("OH-113-BLACK", 1, 9790)]),
            ..order(marketplace, "demo-mkt-1", "tom.becker@example.com", Method::Ship, None)
        },
        ExternalOrder {
            lines: lines(&[("OH-109-GREY", 1, 2900)]),
            ..order(pos, "demo-pos-1", "mia.wagner@example.com", Method::Pickup, berlin)
        },
    ];
    let count = intake.len();
    // The first pick-up is ready at the desk; the second is still being prepared.
    let first_pickup = intake.remove(1);
    let (ready, _) = store.take_order(first_pickup).await?;
    if let Some(fulfillment) = ready.fulfillments.first() {
        store
            .advance_fulfillment(&ready.id, &fulfillment.id, Step::Ready, None)
            .await?;
    }
    for external in intake {
        store.take_order(external).await?;
    }
    Ok(count)
}

//! Sales channels and locations: made and changed in forms whose fields are named as the API
//! names them, so that its validation messages land next to the right field.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use omnihub_domain::catalog::{
    Address, Channel, ChannelDraft, ChannelKind, Geo, Location, LocationDraft, LocationKind, Parity, PricePolicy,
    StockBuffer,
};
use omnihub_domain::users::{Access, Area};
use omnihub_store::{Error, Store};

use super::{answer, api_name, text_of};
use crate::Admin;
use crate::forms::{Fields, Filled, Reader, number, pairs, read};
use crate::names::Names;
use crate::orders::Choice;
use crate::page::{Feedback, PageError};
use crate::session::Staff;

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/settings/channels", post(create::<ChannelDraft>))
        .route("/admin/settings/channels/{id}", post(change::<ChannelDraft>))
        .route("/admin/settings/locations", post(create::<LocationDraft>))
        .route("/admin/settings/locations/{id}", post(change::<LocationDraft>))
}

pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub currency: String,
    pub locations: String,
    pub held_back: String,
    pub policy: String,
    /// The name of its edit form, and what that form shows.
    pub form: String,
    pub filled: Filled,
}

pub struct LocationRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub city: String,
    pub services: String,
    pub form: String,
    pub filled: Filled,
}

/// The channels and locations, with what their forms offer.
pub struct Shop {
    pub channels: Vec<ChannelRow>,
    pub new_channel: Filled,
    pub locations: Vec<LocationRow>,
    pub new_location: Filled,
    pub channel_kinds: Vec<Choice>,
    pub parities: Vec<Choice>,
    pub location_kinds: Vec<Choice>,
    /// The locations a channel may sell from.
    pub sells_from: Vec<Choice>,
}

fn choices<T: serde::Serialize>(all: &[T]) -> Vec<Choice> {
    all.iter()
        .map(|value| Choice::new(api_name(value), text_of(value), None))
        .collect()
}

pub fn view(names: &Names, feedback: &Feedback) -> Shop {
    Shop {
        channels: names.channels.iter().map(|c| channel_row(c, names, feedback)).collect(),
        new_channel: Filled::new(feedback, "channel", || {
            pairs([
                ("currency", "EUR".to_owned()),
                ("price_policy.parity", "strict".to_owned()),
            ])
        }),
        locations: names.locations.iter().map(|l| location_row(l, feedback)).collect(),
        new_location: Filled::new(feedback, "location", || pairs([("priority", "0".to_owned())])),
        channel_kinds: choices(&ChannelKind::ALL),
        parities: choices(&Parity::ALL),
        location_kinds: choices(&LocationKind::ALL),
        sells_from: names
            .locations
            .iter()
            .map(|l| Choice::new(&l.id, &l.draft.name, None))
            .collect(),
    }
}

fn shown<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn channel_row(channel: &Channel, names: &Names, feedback: &Feedback) -> ChannelRow {
    let d = &channel.draft;
    let form = format!("channel:{}", channel.id);
    ChannelRow {
        id: channel.id.clone(),
        name: d.name.clone(),
        kind: text_of(&d.kind),
        currency: d.currency.clone(),
        locations: d
            .location_ids
            .iter()
            .map(|l| names.location(l))
            .collect::<Vec<_>>()
            .join(", "),
        held_back: format!(
            "{} units, {} %",
            d.stock_buffer.units.unwrap_or(0),
            d.stock_buffer.percent.unwrap_or(0)
        ),
        policy: match d.price_policy.max_deviation_percent {
            Some(max) => format!("{}, up to {max} %", text_of(&d.price_policy.parity)),
            None => text_of(&d.price_policy.parity),
        },
        filled: Filled::new(feedback, &form, || channel_fields(channel)),
        form,
    }
}

fn channel_fields(channel: &Channel) -> Fields {
    let d = &channel.draft;
    let mut fields = pairs([
        ("name", d.name.clone()),
        ("kind", api_name(&d.kind)),
        ("currency", d.currency.clone()),
        ("stock_buffer.units", shown(d.stock_buffer.units)),
        ("stock_buffer.percent", shown(d.stock_buffer.percent)),
        ("price_policy.parity", api_name(&d.price_policy.parity)),
        (
            "price_policy.max_deviation_percent",
            shown(d.price_policy.max_deviation_percent),
        ),
        ("version", channel.version.to_string()),
    ]);
    fields.extend(d.location_ids.iter().map(|l| ("location_ids".to_owned(), l.clone())));
    fields
}

fn read_channel(form: &mut Reader) -> Option<ChannelDraft> {
    let kind = form.choice("kind");
    let stock_buffer = StockBuffer {
        units: form.number("stock_buffer.units"),
        percent: form.number("stock_buffer.percent"),
    };
    let parity = form.choice("price_policy.parity");
    let max_deviation_percent = form.number("price_policy.max_deviation_percent");
    Some(ChannelDraft {
        name: form.text("name"),
        kind: kind?,
        currency: form.text("currency"),
        location_ids: form.all("location_ids"),
        stock_buffer,
        price_policy: PricePolicy {
            parity: parity?,
            max_deviation_percent,
        },
    })
}

fn location_row(location: &Location, feedback: &Feedback) -> LocationRow {
    let d = &location.draft;
    let services: Vec<&str> = [
        d.pickup.then_some("pick-up"),
        d.ship_from.then_some("ships"),
        d.same_day_radius_km.map(|_| "same day"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let form = format!("location:{}", location.id);
    LocationRow {
        id: location.id.clone(),
        name: d.name.clone(),
        kind: text_of(&d.kind),
        city: d.address.city.clone(),
        services: services.join(", "),
        filled: Filled::new(feedback, &form, || location_fields(location)),
        form,
    }
}

fn location_fields(location: &Location) -> Fields {
    let d = &location.draft;
    let ticked = |on: bool| if on { "on" } else { "" }.to_owned();
    pairs([
        ("name", d.name.clone()),
        ("kind", api_name(&d.kind)),
        ("address.line1", d.address.line1.clone()),
        ("address.line2", d.address.line2.clone().unwrap_or_default()),
        ("address.postal_code", d.address.postal_code.clone()),
        ("address.city", d.address.city.clone()),
        ("address.region", d.address.region.clone().unwrap_or_default()),
        ("address.country", d.address.country.clone()),
        ("geo.lat", shown(d.geo.map(|g| g.lat))),
        ("geo.lon", shown(d.geo.map(|g| g.lon))),
        ("pickup", ticked(d.pickup)),
        ("ship_from", ticked(d.ship_from)),
        ("same_day_radius_km", shown(d.same_day_radius_km)),
        ("priority", d.priority.to_string()),
        ("version", location.version.to_string()),
    ])
}

fn read_location(form: &mut Reader) -> Option<LocationDraft> {
    let kind = form.choice("kind");
    let geo = read_geo(form);
    let same_day_radius_km = form.decimal("same_day_radius_km");
    let priority = form.number("priority").unwrap_or(0);
    Some(LocationDraft {
        name: form.text("name"),
        kind: kind?,
        address: Address {
            line1: form.text("address.line1"),
            line2: form.optional("address.line2"),
            city: form.text("address.city"),
            postal_code: form.text("address.postal_code"),
            region: form.optional("address.region"),
            country: form.text("address.country"),
        },
        geo,
        pickup: form.flag("pickup"),
        ship_from: form.flag("ship_from"),
        same_day_radius_km,
        priority,
    })
}

/// Coordinates are both given or both left out.
fn read_geo(form: &mut Reader) -> Option<Geo> {
    match (form.decimal("geo.lat"), form.decimal("geo.lon")) {
        (Some(lat), Some(lon)) => Some(Geo { lat, lon }),
        (None, None) => None,
        _ => {
            form.fail("geo", "give both latitude and longitude, or neither");
            None
        }
    }
}

/// What Settings opens and changes alike: a draft read from its form, saved by the store with
/// the API's rules.
trait Setting: Sized + Send + 'static {
    /// The form of a new one (`channel:<id>` changes one), and the confirmation's code.
    const FORM: &'static str;
    fn read(form: &mut Reader) -> Option<Self>;
    fn create(store: &Store, draft: Self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Without the `version` the form was drawn from, the change is made to the current one.
    fn update(
        store: &Store,
        id: &str,
        draft: Self,
        version: Option<i64>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl Setting for ChannelDraft {
    const FORM: &'static str = "channel";

    fn read(form: &mut Reader) -> Option<Self> {
        read_channel(form)
    }

    async fn create(store: &Store, draft: Self) -> Result<(), Error> {
        store.create_channel(draft).await.map(drop)
    }

    /// What the channel may sell follows at once.
    async fn update(store: &Store, id: &str, draft: Self, version: Option<i64>) -> Result<(), Error> {
        let version = match version {
            Some(version) => version,
            None => store.channel(id).await?.version,
        };
        store.update_channel(id, draft, version).await.map(drop)
    }
}

impl Setting for LocationDraft {
    const FORM: &'static str = "location";

    fn read(form: &mut Reader) -> Option<Self> {
        read_location(form)
    }

    async fn create(store: &Store, draft: Self) -> Result<(), Error> {
        store.create_location(draft).await.map(drop)
    }

    async fn update(store: &Store, id: &str, draft: Self, version: Option<i64>) -> Result<(), Error> {
        let version = match version {
            Some(version) => version,
            None => store.location(id).await?.version,
        };
        store.update_location(id, draft, version).await.map(drop)
    }
}

async fn create<S: Setting>(
    State(admin): State<Admin>,
    staff: Staff,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Settings, Access::Write)?;
    let outcome = match read(&fields, S::read) {
        Ok(draft) => S::create(&admin.store, draft).await,
        Err(invalid) => Err(invalid.into()),
    };
    answer(&admin, &staff, S::FORM, outcome, fields, S::FORM).await
}

async fn change<S: Setting>(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Settings, Access::Write)?;
    let version = number(&fields, "version").ok().flatten();
    let outcome = match read(&fields, S::read) {
        Ok(draft) => S::update(&admin.store, &id, draft, version).await,
        Err(invalid) => Err(invalid.into()),
    };
    answer(&admin, &staff, &format!("{}:{id}", S::FORM), outcome, fields, S::FORM).await
}

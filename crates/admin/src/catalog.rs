//! The catalog: products and their variants, where each is listed at which price, and the
//! channel prices that differ from the base price (in red when the channel's policy no longer
//! allows them).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use omnihub_domain::catalog::ParityRow;
use omnihub_domain::users::{Access, Area};
use omnihub_store::{Error, Page, Store};
use serde::Deserialize;

use crate::forms::chosen;
use crate::names::Names;
use crate::page::{Layout, PageError, Query, render};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/catalog", get(catalog))
        .route("/admin/catalog/{id}", get(product))
}

#[derive(Debug, Default, Deserialize)]
pub struct CatalogQuery {
    after: Option<String>,
}

pub struct ProductRow {
    pub id: String,
    pub title: String,
    pub skus: String,
    pub prices: String,
}

pub struct ParityView {
    pub product_id: String,
    pub channel: String,
    pub sku: String,
    pub base: String,
    pub channel_price: String,
    pub deviation: String,
    pub within_policy: bool,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    layout: Layout,
    products: Vec<ProductRow>,
    next: Option<String>,
    parity: Vec<ParityView>,
    outside_policy: usize,
}

/// `+10.0 %` from basis points; blank across currencies.
fn deviation(basis_points: Option<i64>) -> String {
    basis_points.map_or_else(String::new, |bp| {
        let sign = if bp < 0 { '-' } else { '+' };
        let abs = bp.unsigned_abs();
        format!("{sign}{}.{} %", abs / 100, abs % 100 / 10)
    })
}

/// Every channel price off its base price (of one product, if named), page after page: the
/// ones a channel's policy no longer allows must show wherever they are.
async fn price_differences(store: &Store, product_id: Option<&str>) -> Result<Vec<ParityRow>, Error> {
    let mut page = Page {
        after: None,
        limit: 500,
    };
    let mut rows = Vec::new();
    loop {
        let (more, next) = store.price_parity(product_id, &page).await?;
        rows.extend(more);
        match next {
            Some(next) => page.after = Some(next),
            None => return Ok(rows),
        }
    }
}

fn parity_view(row: &ParityRow, names: &Names) -> ParityView {
    ParityView {
        product_id: row.product_id.clone(),
        channel: names.channel(&row.channel_id),
        sku: row.sku.clone(),
        base: show::money(&row.base_price),
        channel_price: show::money(&row.channel_price),
        deviation: deviation(row.deviation_basis_points),
        within_policy: row.within_policy,
    }
}

async fn catalog(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<CatalogQuery>,
) -> Result<Response, PageError> {
    staff.require(Area::Catalog, Access::Read)?;
    let page = Page {
        after: chosen(&query.after),
        limit: 50,
    };
    let (products, next) = admin.store.products(&page, None).await?;
    let names = Names::load(&admin.store).await?;
    let parity = price_differences(&admin.store, None).await?;
    let mut parity: Vec<ParityView> = parity.iter().map(|r| parity_view(r, &names)).collect();
    // What breaks a channel's policy comes first: that needs someone's attention.
    parity.sort_by_key(|p| p.within_policy);
    let page = CatalogPage {
        layout: Layout::new(&staff, Area::Catalog, "Catalog"),
        products: products
            .iter()
            .map(|p| {
                let amounts: Vec<i64> = p.variants.iter().map(|v| v.price.amount).collect();
                let currency = p.variants.first().map_or("EUR", |v| v.price.currency.as_str());
                let (low, high) = (
                    amounts.iter().min().copied().unwrap_or(0),
                    amounts.iter().max().copied().unwrap_or(0),
                );
                let money = |amount| show::money(&omnihub_domain::Money::new(amount, currency));
                ProductRow {
                    id: p.id.clone(),
                    title: p.title.clone(),
                    skus: p.variants.iter().map(|v| v.sku.as_str()).collect::<Vec<_>>().join(", "),
                    prices: if low == high {
                        money(low)
                    } else {
                        format!("{} – {}", money(low), money(high))
                    },
                }
            })
            .collect(),
        next: next.map(|cursor| {
            format!(
                "/admin/catalog?{}",
                serde_urlencoded::to_string([("after", cursor)]).unwrap_or_default()
            )
        }),
        outside_policy: parity.iter().filter(|p| !p.within_policy).count(),
        parity,
    };
    Ok(render(&page))
}

pub struct VariantRow {
    pub sku: String,
    pub title: String,
    pub barcode: String,
    pub price: String,
}

pub struct ListingRow {
    pub channel: String,
    pub published: bool,
    /// The channel price of each variant, in the variants' order.
    pub prices: Vec<String>,
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    layout: Layout,
    description: String,
    variants: Vec<VariantRow>,
    listings: Vec<ListingRow>,
    parity: Vec<ParityView>,
}

async fn product(State(admin): State<Admin>, staff: Staff, Path(id): Path<String>) -> Result<Response, PageError> {
    staff.require(Area::Catalog, Access::Read)?;
    let product = admin.store.product(&id, None).await?;
    let names = Names::load(&admin.store).await?;
    let mut listings = Vec::with_capacity(names.channels.len());
    for channel in &names.channels {
        let listing = admin.store.listing(&id, &channel.id).await?;
        let prices = product
            .variants
            .iter()
            .map(|v| {
                let over = listing.variants.iter().find(|o| o.variant_id == v.id);
                show::money(over.map_or(&v.price, |o| &o.price_override))
            })
            .collect();
        listings.push(ListingRow {
            channel: channel.draft.name.clone(),
            published: listing.published,
            prices,
        });
    }
    let parity = price_differences(&admin.store, Some(&id)).await?;
    let parity = parity.iter().map(|r| parity_view(r, &names)).collect();
    let page = ProductPage {
        layout: Layout::new(&staff, Area::Catalog, product.title.clone()),
        description: product.description.clone(),
        variants: product
            .variants
            .iter()
            .map(|v| VariantRow {
                sku: v.sku.clone(),
                title: v.title.clone(),
                barcode: v.barcode.clone().unwrap_or_default(),
                price: show::money(&v.price),
            })
            .collect(),
        listings,
        parity,
    };
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviations_read_as_percent() {
        assert_eq!(deviation(Some(1000)), "+10.0 %");
        assert_eq!(deviation(Some(-550)), "-5.5 %");
        assert_eq!(deviation(Some(-50)), "-0.5 %");
        assert_eq!(deviation(None), "");
    }
}

//! The dashboard: today's orders and revenue by channel as charts, open orders, stock-outs.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use omnihub_domain::Money;
use omnihub_domain::users::{Access, Area};
use omnihub_store::{ChannelSales, ConversationFilter, Page};

use crate::chart::{self, BarChart};
use crate::page::{Layout, PageError, render};
use crate::session::Staff;
use crate::{Admin, show};

pub fn routes() -> Router<Admin> {
    Router::new().route("/admin/dashboard", get(dashboard))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    day: String,
    orders_today: i64,
    revenue_today: String,
    open_orders: i64,
    open_conversations: String,
    stock_outs: i64,
    revenue: BarChart,
    orders: BarChart,
}

/// Every channel's line, also those that sold nothing yet today.
fn per_channel(names: &[(String, String)], sales: &[ChannelSales]) -> Vec<(String, i64, Money)> {
    names
        .iter()
        .map(|(id, name)| {
            let mine: Vec<_> = sales.iter().filter(|s| &s.channel_id == id).collect();
            let orders = mine.iter().map(|s| s.orders).sum();
            let currency = mine.first().map_or("EUR", |s| s.revenue.currency.as_str());
            let revenue = Money::new(mine.iter().map(|s| s.revenue.amount).sum(), currency);
            (name.clone(), orders, revenue)
        })
        .collect()
}

/// `1,234.00 EUR + 12.00 USD`: one sum per currency.
fn total(sales: &[ChannelSales]) -> String {
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    for s in sales {
        *sums.entry(s.revenue.currency.as_str()).or_default() += s.revenue.amount;
    }
    if sums.is_empty() {
        return show::money(&Money::new(0, "EUR"));
    }
    sums.into_iter()
        .map(|(currency, amount)| show::money(&Money::new(amount, currency)))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Open conversations, counted up to a page: past that, "500+" is all a tile needs to say.
async fn open_conversations(admin: &Admin) -> Result<String, PageError> {
    const COUNTED: i64 = 500;
    let filter = ConversationFilter {
        status: Some("open".to_owned()),
        ..ConversationFilter::default()
    };
    let (open, more) = admin
        .store
        .conversations(
            &filter,
            &Page {
                after: None,
                limit: COUNTED,
            },
        )
        .await?;
    Ok(match more {
        Some(_) => format!("{COUNTED}+"),
        None => open.len().to_string(),
    })
}

async fn dashboard(State(admin): State<Admin>, staff: Staff) -> Result<Response, PageError> {
    staff.require(Area::Dashboard, Access::Read)?;
    let since = show::day_start(admin.store.now());
    let sales = admin.store.sales_by_channel(since).await?;
    let (channels, _) = admin
        .store
        .channels(&Page {
            after: None,
            limit: 500,
        })
        .await?;
    let names: Vec<(String, String)> = channels.into_iter().map(|c| (c.id, c.draft.name)).collect();
    let lines = per_channel(&names, &sales);
    let revenue = lines
        .iter()
        .map(|(name, _, money)| (name.clone(), money.amount, show::money(money)))
        .collect();
    let orders = lines
        .iter()
        .map(|(name, count, _)| (name.clone(), *count, count.to_string()))
        .collect();
    let page = DashboardPage {
        layout: Layout::new(&staff, Area::Dashboard, "Dashboard").live("orders"),
        day: show::when(since).chars().take(10).collect(),
        orders_today: sales.iter().map(|s| s.orders).sum(),
        revenue_today: total(&sales),
        open_orders: admin.store.open_order_count().await?,
        open_conversations: open_conversations(&admin).await?,
        stock_outs: admin.store.stock_out_count().await?,
        revenue: chart::bars("Revenue today by channel", revenue),
        orders: chart::bars("Orders today by channel", orders),
    };
    Ok(render(&page))
}

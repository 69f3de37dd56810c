//! Reports: what the hub's data says about how the business does, across channels.

use omnihub_domain::{Money, Timestamp};

use crate::db::sql;
use crate::{Error, Store};

/// The orders and revenue one channel took since a moment, cancelled orders left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSales {
    pub channel_id: String,
    pub orders: i64,
    pub revenue: Money,
}

impl Store {
    /// Orders and revenue per channel since `since` (cancelled orders do not count).
    pub async fn sales_by_channel(&self, since: Timestamp) -> Result<Vec<ChannelSales>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT channel_id, currency, COUNT(*) AS orders, CAST(SUM(total) AS BIGINT) AS revenue FROM orders \
                     WHERE created_at >= $1 AND status <> 'cancelled' GROUP BY channel_id, currency ORDER BY channel_id")
                .bind(since.millis()),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ChannelSales {
                    channel_id: row.text("channel_id")?,
                    orders: row.int("orders")?,
                    revenue: Money::new(row.opt_int("revenue")?.unwrap_or(0), &row.text("currency")?),
                })
            })
            .collect()
    }
}

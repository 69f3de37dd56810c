//! How many unpaid orders each buyer has: a storefront's public key is in every shopper's
//! hands, and unpaid orders hold stock.

use omnihub_domain::orders::buyer_of;

use crate::Error;
use crate::db::{Tx, sql};

/// Counts one more unpaid order of `email`, or refuses it when the e-mail has `max` already:
/// a storefront's public key is in every shopper's hands, and unpaid orders hold stock.
pub(super) async fn count_unpaid(tx: &mut Tx, email: &str, max: i64) -> Result<(), Error> {
    let counted = tx
        .execute(
            sql(
                "INSERT INTO unpaid_orders (email, pending) VALUES ($1, 1) ON CONFLICT (email) \
                 DO UPDATE SET pending = unpaid_orders.pending + 1 WHERE unpaid_orders.pending < $2",
            )
            .bind(buyer_of(email))
            .bind(max),
        )
        .await?;
    if counted == 0 {
        return Err(Error::RateLimited(format!(
            "{max} orders of this e-mail wait for their payment already; pay or cancel one first"
        )));
    }
    Ok(())
}

/// An unpaid order of `email` was paid or cancelled.
pub(super) async fn uncount_unpaid(tx: &mut Tx, email: &str) -> Result<(), Error> {
    tx.execute(
        sql("UPDATE unpaid_orders SET pending = pending - 1 WHERE email = $1 AND pending > 0").bind(buyer_of(email)),
    )
    .await?;
    Ok(())
}

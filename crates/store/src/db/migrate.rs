//! Schema migrations, compiled into the binary and applied in order, each once.
//!
//! One script serves both backends; the few words that differ are filled in per backend.

use omnihub_domain::clock::{Clock, SystemClock};
use omnihub_domain::customers::search_name;

use crate::Error;
use crate::db::{Backend, Db, Tx, sql};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../../migrations/0001_foundation.sql")),
    (2, "inventory", include_str!("../../migrations/0002_inventory.sql")),
    (3, "customers", include_str!("../../migrations/0003_customers.sql")),
    (4, "orders", include_str!("../../migrations/0004_orders.sql")),
    (5, "webhooks", include_str!("../../migrations/0005_webhooks.sql")),
    (6, "inbox", include_str!("../../migrations/0006_inbox.sql")),
    (7, "admin", include_str!("../../migrations/0007_admin.sql")),
    (8, "inbox_more", include_str!("../../migrations/0008_inbox_more.sql")),
    (
        9,
        "order_numbers",
        include_str!("../../migrations/0009_order_numbers.sql"),
    ),
    (
        10,
        "event_log_lock",
        include_str!("../../migrations/0010_event_log_lock.sql"),
    ),
    (
        11,
        "channel_references",
        include_str!("../../migrations/0011_channel_references.sql"),
    ),
    (
        12,
        "event_seq_cached",
        include_str!("../../migrations/0012_event_seq_cached.sql"),
    ),
    (
        13,
        "cart_updates",
        include_str!("../../migrations/0013_cart_updates.sql"),
    ),
    (
        14,
        "customer_search_name",
        include_str!("../../migrations/0014_customer_search_name.sql"),
    ),
    (
        15,
        "webchat_claims",
        include_str!("../../migrations/0015_webchat_claims.sql"),
    ),
    (
        16,
        "bot_hand_over",
        include_str!("../../migrations/0016_bot_hand_over.sql"),
    ),
    (
        17,
        "unpaid_orders",
        include_str!("../../migrations/0017_unpaid_orders.sql"),
    ),
    (
        18,
        "claimed_phone",
        include_str!("../../migrations/0018_claimed_phone.sql"),
    ),
    (
        19,
        "webhook_secrets_sealed",
        include_str!("../../migrations/0019_webhook_secrets_sealed.sql"),
    ),
    (
        20,
        "login_attempts",
        include_str!("../../migrations/0020_login_attempts.sql"),
    ),
    (21, "key_origins", include_str!("../../migrations/0021_key_origins.sql")),
];

/// The migration after which the server writes existing customers' search names (Rust's
/// lower case knows every script; SQL's `LOWER` on SQLite only ASCII).
const FILLS_SEARCH_NAMES: i64 = 14;

/// The words that differ between the backends: each placeholder, SQLite's, PostgreSQL's.
const DIALECT: &[(&str, &str, &str)] = &[
    ("{seq_pk}", "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"),
    (
        "{order_number_sequence}",
        "",
        "CREATE SEQUENCE order_numbers;\n\
         SELECT setval('order_numbers', (SELECT value FROM counters WHERE name = 'order_number'));",
    ),
    (
        "{event_seq_under_lock}",
        "",
        "CREATE FUNCTION next_event_seq() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$\n\
             SELECT pg_advisory_xact_lock(7316001);\n\
             SELECT nextval('events_seq_seq');\n\
         $$;\n\
         ALTER TABLE events ALTER COLUMN seq SET DEFAULT next_event_seq();",
    ),
    (
        "{drop_channel_references}",
        "",
        "ALTER TABLE carts DROP CONSTRAINT IF EXISTS carts_channel_id_fkey;\n\
         ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_channel_id_fkey;\n\
         ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_channel_id_fkey;",
    ),
    (
        "{event_seq_cached}",
        "",
        "CREATE OR REPLACE FUNCTION next_event_seq() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$\n\
         BEGIN\n\
             PERFORM pg_advisory_xact_lock(7316001);\n\
             RETURN nextval('events_seq_seq');\n\
         END\n\
         $$;",
    ),
    ("{cart_update_room}", "", "ALTER TABLE carts SET (fillfactor = 70);"),
];

fn dialect(script: &str, backend: Backend) -> String {
    DIALECT
        .iter()
        .fold(script.to_owned(), |script, (word, sqlite, postgres)| {
            script.replace(
                word,
                match backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                },
            )
        })
}

/// Applies every migration the database has not seen yet; answers how many ran.
pub async fn run(db: &Db) -> Result<usize, Error> {
    let mut tx = db.begin().await?;
    tx.execute_script(
        "CREATE TABLE IF NOT EXISTS omnihub_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )"
        .to_owned(),
    )
    .await?;
    tx.commit().await?;
    let mut applied = 0;
    for (version, name, script) in MIGRATIONS {
        // One transaction per migration; on PostgreSQL an advisory lock keeps two nodes
        // starting at once from applying the same one twice.
        let mut tx = db.begin().await?;
        if tx.backend() == Backend::Postgres {
            tx.execute(sql("SELECT pg_advisory_xact_lock(7316000)")).await?;
        }
        let done = tx
            .fetch_optional(sql("SELECT version FROM omnihub_migrations WHERE version = $1").bind(*version))
            .await?;
        if done.is_some() {
            continue;
        }
        tx.execute_script(dialect(script, db.backend())).await?;
        if *version == FILLS_SEARCH_NAMES {
            fill_search_names(&mut tx).await?;
        }
        tx.execute(
            sql("INSERT INTO omnihub_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*name)
                .bind(SystemClock.now().millis()),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
        applied += 1;
    }
    Ok(applied)
}

/// Fills the search names of customers written before the column existed.
async fn fill_search_names(tx: &mut Tx) -> Result<(), Error> {
    let rows = tx
        .fetch_all(sql(
            "SELECT id, name FROM customers WHERE name IS NOT NULL AND search_name IS NULL",
        ))
        .await?;
    for row in &rows {
        let name = row.opt_text("name")?;
        tx.execute(
            sql("UPDATE customers SET search_name = $2 WHERE id = $1")
                .bind(row.text("id")?)
                .bind(search_name(name.as_deref())),
        )
        .await?;
    }
    Ok(())
}

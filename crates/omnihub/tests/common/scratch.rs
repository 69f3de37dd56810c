//! A database of one test's own, removed when the test ends: a folder for the embedded SQLite,
//! or a new database on the PostgreSQL server named by `OMNIHUB_TEST_POSTGRES_URL`.

use std::path::PathBuf;

use omnihub::Settings;

pub enum Scratch {
    Folder(PathBuf),
    Database { admin_url: String, name: String },
}

impl Scratch {
    /// A fresh folder under the system's temporary one.
    pub fn folder(prefix: &str) -> Scratch {
        Scratch::Folder(std::env::temp_dir().join(format!("{prefix}-{}", ulid::Ulid::new())))
    }

    /// A fresh PostgreSQL database, or `None` (the test says it was skipped) when none is
    /// configured or reachable outside CI; in CI that fails the test.
    pub async fn postgres(prefix: &str) -> Option<Scratch> {
        let in_ci = std::env::var_os("CI").is_some();
        let Ok(admin_url) = std::env::var("OMNIHUB_TEST_POSTGRES_URL") else {
            assert!(!in_ci, "OMNIHUB_TEST_POSTGRES_URL must be set in CI");
            eprintln!("skipped: OMNIHUB_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase());
        if let Err(error) = run_sql(&admin_url, &format!("CREATE DATABASE {name}")).await {
            assert!(
                !in_ci,
                "PostgreSQL at OMNIHUB_TEST_POSTGRES_URL is unreachable: {error}"
            );
            eprintln!("skipped: PostgreSQL is unreachable: {error}");
            return None;
        }
        Some(Scratch::Database { admin_url, name })
    }

    /// `settings` pointed at this database.
    pub fn settings(&self, settings: Settings) -> Settings {
        match self {
            Scratch::Folder(dir) => Settings {
                data_dir: Some(dir.clone()),
                ..settings
            },
            Scratch::Database { admin_url, name } => Settings {
                database_url: Some(database_url(admin_url, name)),
                ..settings
            },
        }
    }

    /// Whether several server processes may share it (one SQLite file has one server).
    pub fn is_shared(&self) -> bool {
        matches!(self, Scratch::Database { .. })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::Folder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Scratch::Database { admin_url, name } => {
                let (url, sql) = (
                    admin_url.clone(),
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
                // Drop runs outside async code: a thread with its own runtime drops the database.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(run_sql(&url, &sql)).map_err(std::io::Error::other)
                })
                .join();
            }
        }
    }
}

async fn run_sql(url: &str, statement: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    client.batch_execute(statement).await?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// The same server and credentials, another database.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

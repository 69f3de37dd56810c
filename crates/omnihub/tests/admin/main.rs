//! The admin app against the real server and the demo shop, on SQLite and on PostgreSQL:
//! signing in, CSRF, roles, the login limit, every page, and the actions that change the store.

mod client;
#[path = "../api/fake_provider.rs"]
#[allow(dead_code)] // What the admin's tests look at of a provider's calls is less than the API's.
mod fake_provider;
mod hostile_input;
#[path = "../common/scratch.rs"]
#[allow(dead_code)] // Only the API suite runs several nodes on one database.
mod scratch;
mod shop;

mod actions;
mod inbox;
mod pages;
mod settings;
mod signing_in;

/// Runs each listed test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(shop) = $crate::shop::Shop::start(false).await {
                        super::$test(shop).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(shop) = $crate::shop::Shop::start(true).await {
                        super::$test(shop).await;
                    }
                }
            )*
        }
    };
}

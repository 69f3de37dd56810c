//! `omnihub`: the server and its operations commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use omnihub::{Application, BoxError, Settings, bootstrap_owner_key, demo, open_store, system_clock};
use omnihub_domain::users::{Role, UserDraft};

/// Requests allocate on one thread and free on another (the SQLite writer, the runtime's
/// workers); glibc's allocator spent a tenth of the server's time on that, mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Omnihub: one catalog, inventory, order system, customer and inbox for every sales and
/// messaging channel.
#[derive(Debug, Parser)]
#[command(name = "omnihub", version, about, long_about = None)]
struct Cli {
    /// A TOML file with settings (flags and environment win over it).
    #[arg(long, env = "OMNIHUB_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: API, event stream and background work. On first start, creates an owner
    /// API key and prints it once (or uses OMNIHUB_BOOTSTRAP_KEY).
    Serve {
        /// Fill an empty database with the demo shop first.
        #[arg(long)]
        demo: bool,
        /// Use this token as the owner key (for scripts and tests).
        #[arg(long, env = "OMNIHUB_BOOTSTRAP_KEY", hide_env_values = true)]
        bootstrap_key: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Fill an empty database with the demo shop.
    Demo,
    /// Verify the inventory: every level's on-hand equals the sum of its movements and its
    /// reserved units equal what active reservations hold. Exits 1 on any difference.
    Check,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the people who sign in to the admin app (/admin).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Open an account. The password comes from --password, OMNIHUB_USER_PASSWORD or a prompt.
    Create {
        /// The address the person signs in with.
        #[arg(long)]
        email: String,
        /// The name shown in the admin app.
        #[arg(long)]
        name: String,
        /// owner, manager, agent or store_staff.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The store of store staff (loc_…).
        #[arg(long)]
        location: Option<String>,
        #[arg(long, env = "OMNIHUB_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "a role is owner, manager, agent or store_staff".to_owned())
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print its token (shown only this once).
    Create {
        /// A name to recognise the key by.
        #[arg(long, default_value = "api key")]
        name: String,
        /// Scopes of a secret key, comma-separated (e.g. catalog:write,inventory:read; admin is all).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Make a publishable key bound to this sales channel instead.
        #[arg(long)]
        channel: Option<String>,
        /// The sites whose pages may use the publishable key, comma-separated
        /// (e.g. https://shop.example); browsers on any other site are refused it.
        #[arg(long, value_delimiter = ',', requires = "channel")]
        origins: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    // Outgoing HTTPS (webhooks, messaging providers) uses rustls with ring, the tree's only
    // crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = result {
        eprintln!("omnihub: {error}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let settings = match &cli.config {
        Some(path) => cli.settings.over(Settings::from_file(path)?),
        None => cli.settings,
    };
    init_logs(&settings);
    let store = open_store(&settings, system_clock()).await?;
    match cli.command {
        Command::Migrate => println!("migrations applied"),
        Command::Demo => print_demo(demo::seed(&store).await?),
        Command::Check => {
            let found = store.check_inventory().await?;
            if !found.is_empty() {
                for d in &found {
                    println!(
                        "{} at {}: on hand {} but movements sum to {}; reserved {} but reservations hold {}",
                        d.sku, d.location_id, d.on_hand, d.ledger_sum, d.reserved, d.held_by_reservations
                    );
                }
                return Err(format!("{} inventory levels do not add up", found.len()).into());
            }
            println!("inventory is consistent: every level matches its ledger and reservations");
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    name,
                    scopes,
                    channel,
                    origins,
                },
        } => {
            let key = store
                .generate_api_key(&name, &scopes, channel.as_deref(), &origins)
                .await?;
            println!("{}", key.token);
            eprintln!("key {} created; the token above is shown only this once", key.key.id);
        }
        Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    name,
                    role,
                    location,
                    password,
                },
        } => {
            let password = match password {
                Some(password) => password,
                None => rpassword::prompt_password("Password for the new account: ")?,
            };
            let draft = UserDraft {
                email,
                name,
                role,
                location_id: location,
            };
            let user = store.create_user(draft, &password).await?;
            println!("account {} ({}) created; sign in at /admin", user.id, role.label());
        }
        Command::Serve { demo, bootstrap_key } => {
            if let Some(token) = bootstrap_owner_key(&store, bootstrap_key.as_deref()).await? {
                println!("Owner API key (shown only this once, keep it safe):\n\n    {token}\n");
            }
            if demo {
                print_demo(demo::seed(&store).await?);
            }
            let app = Application::start(&settings, store).await?;
            println!("Omnihub is listening on http://{} (API reference: /docs)", app.address);
            app.run_until_signal().await?;
        }
    }
    Ok(())
}

fn print_demo(made: Option<demo::Demo>) {
    match made {
        None => println!("the database already has products; demo data left as it is"),
        Some(demo) => {
            println!(
                "demo shop created: {} locations, {} sales channels, {} products",
                demo.locations, demo.channels, demo.products
            );
            if let Some(key) = demo.publishable_key {
                println!("publishable key of the web shop channel: {key}");
            }
            println!(
                "{} demo orders; admin sign-ins (at /admin, shown only this once):",
                demo.orders
            );
            for login in &demo.logins {
                println!("    {:<12} {:<28} {}", login.role.label(), login.email, login.password);
            }
        }
    }
}

fn init_logs(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMNIHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_format.as_deref() == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

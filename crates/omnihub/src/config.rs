//! Configuration: defaults, then an optional TOML file, then environment and flags.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use omnihub_domain::customers::{Region, parse_region};
use omnihub_domain::destinations::Destinations;
use omnihub_domain::network::TrustedProxies;
use omnihub_domain::orders::PaymentRules;
use omnihub_store::{BadSecretKey, SecretKey};
use serde::Deserialize;

/// Settings shared by every command. Each may also be set in the TOML file given with
/// `--config`, under the same name with underscores (`database_url = "…"`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Database: `postgres://user@host/db`, or `sqlite://path`. Default: SQLite in the data dir.
    #[arg(long, env = "OMNIHUB_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Folder of the embedded database [default: ./omnihub-data].
    #[arg(long, env = "OMNIHUB_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "OMNIHUB_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes [default: 2097152].
    #[arg(long, env = "OMNIHUB_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// Database connections per server process [default: 4 per CPU core on PostgreSQL (4 to 32), 16 on SQLite].
    #[arg(long, env = "OMNIHUB_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "OMNIHUB_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Region (ISO 3166-1 alpha-2) of phone numbers written without a country code [default: DE].
    #[arg(long, env = "OMNIHUB_PHONE_REGION", global = true)]
    pub phone_region: Option<String>,
    /// NATS server with JetStream (`nats://127.0.0.1:4222`): events are published to the
    /// stream OMNIHUB as `omnihub.<type>`, and nodes learn of each other's events at once.
    #[arg(long, env = "OMNIHUB_NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// How long a webhook receiver may take to answer, in milliseconds [default: 10000].
    #[arg(long, env = "OMNIHUB_WEBHOOK_TIMEOUT_MS", global = true)]
    pub webhook_timeout_ms: Option<u64>,
    /// Key that seals the credentials of messaging channels at rest: 64 hex digits (`openssl
    /// rand -hex 32`). On SQLite one is made on first start and kept in `<data dir>/secret.key`;
    /// PostgreSQL nodes must share one, so set it there.
    #[arg(long, env = "OMNIHUB_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<Secret>,
    /// Address at which providers reach this server, for the webhook URLs of inboxes
    /// (`https://hub.example.com`) [default: http://<listen>].
    #[arg(long, env = "OMNIHUB_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Minutes an order checked out through a publishable key holds its stock unless marked
    /// paid; then it is cancelled. 0: unpaid orders hold their stock until cancelled [default: 60].
    #[arg(long, env = "OMNIHUB_UNPAID_ORDER_MINUTES", global = true)]
    pub unpaid_order_minutes: Option<u32>,
    /// Let webhook endpoints, inboxes' API and SMTP servers be on loopback, private,
    /// link-local and other non-public addresses (local development) [default: false].
    #[arg(long, env = "OMNIHUB_ALLOW_PRIVATE_DESTINATIONS", global = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub allow_private_destinations: Option<bool>,
    /// PEM file of CA certificates trusted beside the system's for the hub's own TLS
    /// connections (SMTP servers, webhook receivers, providers' APIs): a company's own CA.
    #[arg(long, env = "OMNIHUB_EXTRA_CA_FILE", global = true)]
    pub extra_ca_file: Option<PathBuf>,
    /// Load balancers and proxies in front of the server, as addresses or blocks
    /// (`10.0.0.0/8,127.0.0.1`): only from these is `X-Forwarded-For` (or `Forwarded: for=`)
    /// believed to name the client, whom rate limits count. [default: none, the peer is the client].
    #[arg(long, env = "OMNIHUB_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<TrustedProxies>,
}

/// A setting that is never printed, not even by `{:?}`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid configuration: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("phone_region {0:?} is not a region code such as DE")]
    PhoneRegion(String),
    #[error("secret_key: {0}")]
    SecretKey(#[from] BadSecretKey),
    #[error("cannot keep the secret key in {path}: {source}")]
    SecretKeyFile { path: PathBuf, source: std::io::Error },
    #[error("cannot read the extra CA file {path}: {source}")]
    ExtraCaFile { path: PathBuf, source: std::io::Error },
}

impl Settings {
    /// These settings, with what they leave open taken from `file`.
    pub fn over(self, file: Settings) -> Settings {
        Settings {
            database_url: self.database_url.or(file.database_url),
            data_dir: self.data_dir.or(file.data_dir),
            listen: self.listen.or(file.listen),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            db_max_connections: self.db_max_connections.or(file.db_max_connections),
            log_format: self.log_format.or(file.log_format),
            phone_region: self.phone_region.or(file.phone_region),
            nats_url: self.nats_url.or(file.nats_url),
            webhook_timeout_ms: self.webhook_timeout_ms.or(file.webhook_timeout_ms),
            secret_key: self.secret_key.or(file.secret_key),
            public_url: self.public_url.or(file.public_url),
            unpaid_order_minutes: self.unpaid_order_minutes.or(file.unpaid_order_minutes),
            allow_private_destinations: self.allow_private_destinations.or(file.allow_private_destinations),
            extra_ca_file: self.extra_ca_file.or(file.extra_ca_file),
            trusted_proxies: self.trusted_proxies.or(file.trusted_proxies),
        }
    }

    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    pub fn body_limit(&self) -> usize {
        self.max_body_bytes.unwrap_or(2 * 1024 * 1024)
    }

    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms.unwrap_or(10_000))
    }

    pub fn phone_region(&self) -> Result<Region, ConfigError> {
        match &self.phone_region {
            None => Ok(Region::DE),
            Some(code) => parse_region(code).ok_or_else(|| ConfigError::PhoneRegion(code.clone())),
        }
    }

    /// The database URL; for the embedded default, makes sure its folder and file exist,
    /// readable by this account only (SQLite gives its journal files the file's permissions).
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("omnihub-data"));
        let file = dir.join("omnihub.db");
        create_private(&dir, &file).map_err(|source| ConfigError::DataDir {
            path: dir.clone(),
            source,
        })?;
        Ok(format!("sqlite://{}", file.display()))
    }

    /// The key that seals channel credentials: the configured one; on SQLite the one kept
    /// beside the database (made on first start); `None` on PostgreSQL without one.
    pub fn secret_key(&self) -> Result<Option<SecretKey>, ConfigError> {
        if let Some(Secret(hex)) = &self.secret_key {
            return Ok(Some(SecretKey::from_hex(hex)?));
        }
        let url = self.database_url()?;
        if !url.starts_with("sqlite:") {
            return Ok(None);
        }
        let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("omnihub-data"));
        kept_key(&dir.join("secret.key")).map(Some)
    }

    /// How storefronts' unpaid orders are held.
    pub fn payment_rules(&self) -> PaymentRules {
        let window_seconds = match self.unpaid_order_minutes {
            Some(0) => None,
            Some(minutes) => Some(i64::from(minutes) * 60),
            None => PaymentRules::default().window_seconds,
        };
        PaymentRules {
            window_seconds,
            ..PaymentRules::default()
        }
    }

    /// Which destinations the hub may call: public ones, unless private ones are allowed.
    pub fn destinations(&self) -> Destinations {
        match self.allow_private_destinations {
            Some(true) => Destinations::PrivateAllowed,
            _ => Destinations::PublicOnly,
        }
    }

    /// The extra CA certificates (PEM), or nothing.
    pub fn extra_roots(&self) -> Result<Vec<u8>, ConfigError> {
        let Some(path) = &self.extra_ca_file else {
            return Ok(Vec::new());
        };
        std::fs::read(path).map_err(|source| ConfigError::ExtraCaFile {
            path: path.clone(),
            source,
        })
    }

    /// Where providers reach the server listening at `bound`, without a trailing `/`.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        let url = self.public_url.clone().unwrap_or_else(|| format!("http://{bound}"));
        url.trim_end_matches('/').to_owned()
    }
}

/// The key in `path`, made and written there (readable by the owner only) the first time.
fn kept_key(path: &Path) -> Result<SecretKey, ConfigError> {
    let failed = |source| ConfigError::SecretKeyFile {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SecretKey::from_hex(&text)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            write_private(path, &key.to_hex()).map_err(failed)?;
            Ok(key)
        }
        Err(error) => Err(failed(error)),
    }
}

/// Makes `dir` (mode 0700) and an empty `file` in it (mode 0600) where they do not exist yet.
fn create_private(dir: &Path, file: &Path) -> std::io::Result<()> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
    folder.create(dir)?;
    match write_private(file, "") {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        done => done,
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file() {
        let file: Settings = toml::from_str("listen = \"0.0.0.0:9000\"\nmax_body_bytes = 10").unwrap();
        let flags = Settings {
            max_body_bytes: Some(20),
            ..Settings::default()
        };
        let merged = flags.over(file);
        assert_eq!(merged.listen().port(), 9000);
        assert_eq!(merged.body_limit(), 20);
        assert_eq!(merged.db_max_connections, None);
    }

    #[test]
    fn phone_region_defaults_to_germany_and_is_checked() {
        assert_eq!(Settings::default().phone_region().unwrap(), Region::DE);
        let file: Settings = toml::from_str("phone_region = \"at\"").unwrap();
        assert_eq!(file.phone_region().unwrap(), Region::AT);
        let wrong = Settings {
            phone_region: Some("XX".into()),
            ..Settings::default()
        };
        assert!(wrong.phone_region().is_err());
    }

    #[test]
    fn the_secret_key_is_configured_or_kept_beside_sqlite() {
        let dir = std::env::temp_dir().join(format!("omnihub-config-{}", std::process::id()));
        let sqlite = Settings {
            data_dir: Some(dir.clone()),
            ..Settings::default()
        };
        let made = sqlite.secret_key().unwrap().unwrap();
        assert_eq!(
            sqlite.secret_key().unwrap(),
            Some(made.clone()),
            "kept for the next start"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let hex = "ab".repeat(32);
        let file: Settings = toml::from_str(&format!("secret_key = \"{hex}\"")).unwrap();
        assert_eq!(file.secret_key().unwrap().map(|k| k.to_hex()), Some(hex.clone()));
        assert!(!format!("{file:?}").contains(&hex));
        let postgres = Settings {
            database_url: Some("postgres://127.0.0.1/x".into()),
            ..Settings::default()
        };
        assert_eq!(postgres.secret_key().unwrap(), None);
        let wrong = Settings {
            secret_key: Some(Secret("short".into())),
            ..Settings::default()
        };
        assert!(wrong.secret_key().is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_embedded_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("omnihub-private-{}", std::process::id()));
        let settings = Settings {
            data_dir: Some(dir.join("data")),
            ..Settings::default()
        };
        let url = settings.database_url().unwrap();
        assert_eq!(settings.database_url().unwrap(), url, "the second start keeps it");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("data")), 0o700);
        assert_eq!(mode(&dir.join("data/omnihub.db")), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address() {
        let bound: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(Settings::default().public_url(bound), "http://127.0.0.1:4000");
        let set = Settings {
            public_url: Some("https://hub.example.com/".into()),
            ..Settings::default()
        };
        assert_eq!(set.public_url(bound), "https://hub.example.com");
    }

    #[test]
    fn private_destinations_are_refused_unless_allowed() {
        assert_eq!(Settings::default().destinations(), Destinations::PublicOnly);
        let file: Settings = toml::from_str("allow_private_destinations = true").unwrap();
        assert_eq!(file.destinations(), Destinations::PrivateAllowed);
        let flags = Settings {
            allow_private_destinations: Some(false),
            ..Settings::default()
        };
        assert_eq!(flags.over(file).destinations(), Destinations::PublicOnly);
    }

    #[test]
    fn trusted_proxies_come_from_the_flags_or_the_file() {
        let listed: Settings = toml::from_str("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]").unwrap();
        let written: Settings = toml::from_str("trusted_proxies = \"10.0.0.0/8, ::1\"").unwrap();
        assert_eq!(listed.trusted_proxies, written.trusted_proxies);
        let trusted = Settings::default().over(listed).trusted_proxies.unwrap();
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(!trusted.trusts("192.0.2.1".parse().unwrap()));
        let flag = Settings {
            trusted_proxies: Some("192.0.2.0/24".parse().unwrap()),
            ..Settings::default()
        };
        assert!(
            !flag
                .over(written)
                .trusted_proxies
                .unwrap()
                .trusts("10.1.2.3".parse().unwrap())
        );
        assert!(toml::from_str::<Settings>("trusted_proxies = \"10.0.0.0/99\"").is_err());
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }
}

//! Configuration: defaults, then an optional TOML file, then environment and flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use omnihub_domain::customers::{Region, parse_region};
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
    /// Database connections per server process [default: 16].
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

    pub fn max_connections(&self) -> u32 {
        self.db_max_connections.unwrap_or(16)
    }

    pub fn phone_region(&self) -> Result<Region, ConfigError> {
        match &self.phone_region {
            None => Ok(Region::DE),
            Some(code) => parse_region(code).ok_or_else(|| ConfigError::PhoneRegion(code.clone())),
        }
    }

    /// The database URL; for the embedded default, makes sure its folder exists.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("omnihub-data"));
        std::fs::create_dir_all(&dir).map_err(|source| ConfigError::DataDir {
            path: dir.clone(),
            source,
        })?;
        Ok(format!("sqlite://{}", dir.join("omnihub.db").display()))
    }
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
        assert_eq!(merged.max_connections(), 16);
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
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }
}

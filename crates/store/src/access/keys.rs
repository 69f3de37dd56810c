//! API keys: only a hash of each token is stored; the token is shown once, when made.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use omnihub_domain::Invalid;
use omnihub_domain::Timestamp;
use omnihub_domain::access::{Principal, Scope, check_origins};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::events::append;
use crate::db::{Row, sql};
use crate::{Error, Store};

/// A key as listed: never its token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub token_prefix: String,
    pub scopes: Vec<String>,
    pub channel_id: Option<String>,
    /// The sites whose pages may use a publishable key.
    pub origins: Vec<String>,
    pub created_at: Timestamp,
}

/// A key just made, with its token (shown this once).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub token: String,
}

/// A fresh random token: `sk_…` for secret keys, `pk_…` for publishable ones.
pub fn generate_token(publishable: bool) -> String {
    let prefix = if publishable { "pk" } else { "sk" };
    format!("{prefix}_{}", Alphanumeric.sample_string(&mut rand::rng(), 40))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn api_key(row: &Row) -> Result<ApiKey, Error> {
    Ok(ApiKey {
        id: row.text("id")?,
        name: row.text("name")?,
        token_prefix: row.text("token_prefix")?,
        scopes: row.text("scopes")?.split_whitespace().map(str::to_owned).collect(),
        channel_id: row.opt_text("channel_id")?,
        origins: row.text("origins")?.split_whitespace().map(str::to_owned).collect(),
        created_at: Timestamp(row.int("created_at")?),
    })
}

impl Store {
    /// Stores a key for `token`. A publishable key (`pk_…`) names its sales channel and the
    /// sites (`origins`) whose pages may use it.
    pub async fn create_api_key(
        &self,
        name: &str,
        token: &str,
        scopes: &[String],
        channel_id: Option<&str>,
        origins: &[String],
    ) -> Result<ApiKey, Error> {
        let publishable = token.starts_with("pk_");
        if publishable != channel_id.is_some() {
            return Err(Error::Conflict(
                "a publishable key belongs to exactly one sales channel; a secret key to none".into(),
            ));
        }
        if !publishable && !origins.is_empty() {
            let message = "only a publishable key is used from web pages; a secret key must stay on servers";
            return Err(Invalid::one("origins", "invalid", message).into());
        }
        let origins = check_origins(origins)?;
        if !publishable {
            omnihub_domain::access::check_scopes(scopes)?;
        }
        if let Some(channel) = channel_id {
            self.channel(channel).await?;
        }
        let key = ApiKey {
            id: id::new(Kind::ApiKey),
            name: name.to_owned(),
            token_prefix: token.chars().take(10).collect(),
            scopes: scopes.to_vec(),
            channel_id: channel_id.map(str::to_owned),
            origins,
            created_at: self.now(),
        };
        let mut tx = self.db.begin().await?;
        tx.execute(
            sql(
                "INSERT INTO api_keys (id, name, token_hash, token_prefix, scopes, channel_id, origins, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&key.id)
            .bind(&key.name)
            .bind(hash(token))
            .bind(&key.token_prefix)
            .bind(key.scopes.join(" "))
            .bind(key.channel_id.as_deref())
            .bind(key.origins.join(" "))
            .bind(key.created_at.millis()),
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                Error::Conflict("this token is already a key".into())
            } else {
                e
            }
        })?;
        self.commit(tx).await?;
        Ok(key)
    }

    /// Makes a key with a fresh token.
    pub async fn generate_api_key(
        &self,
        name: &str,
        scopes: &[String],
        channel_id: Option<&str>,
        origins: &[String],
    ) -> Result<NewApiKey, Error> {
        let token = generate_token(channel_id.is_some());
        let key = self.create_api_key(name, &token, scopes, channel_id, origins).await?;
        Ok(NewApiKey { key, token })
    }

    /// The principal behind a bearer token, if it is a live key. Known keys are remembered for
    /// a few seconds, so most requests do not ask the database.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, Error> {
        let hash = hash(token);
        if let Some(principal) = self.known_keys.get(&hash) {
            return Ok(Some(principal));
        }
        let principal = self.find_key(&hash).await?;
        if let Some(principal) = &principal {
            self.known_keys.remember(hash, principal.clone());
        }
        Ok(principal)
    }

    async fn find_key(&self, hash: &str) -> Result<Option<Principal>, Error> {
        let row = self
            .db
            .fetch_optional(
                sql(
                    "SELECT id, name, token_prefix, scopes, channel_id, origins, created_at FROM api_keys \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(hash),
            )
            .await?;
        let Some(key) = row.as_ref().map(api_key).transpose()? else {
            return Ok(None);
        };
        Ok(Some(match key.channel_id {
            Some(channel_id) => Principal::Publishable {
                key_id: key.id,
                channel_id,
                origins: key.origins,
            },
            // A stored scope this version does not know grants nothing.
            None => Principal::Secret {
                key_id: key.id,
                scopes: key.scopes.iter().filter_map(|scope| Scope::parse(scope)).collect(),
            },
        }))
    }

    /// Revokes a key: from now on its token is refused, on this server at once and on the
    /// others once their few seconds of trust run out. Unknown and revoked keys are not found.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let revoked = tx
            .execute(
                sql("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now.millis()),
            )
            .await?;
        if revoked == 0 {
            return Err(Error::NotFound("API key"));
        }
        append(
            &mut tx,
            now,
            NewEvent::new(EventType::ApiKeyRevoked, json!({"key_id": id})),
        );
        self.commit(tx).await?;
        self.known_keys.forget(id);
        Ok(())
    }

    /// Whether this process has revoked the key since it started (no database asked).
    pub fn key_revoked_here(&self, key_id: &str) -> bool {
        self.known_keys.is_revoked(key_id)
    }

    /// Whether the key is still live, asking the database: a key another server revoked is
    /// seen here too.
    pub async fn key_is_live(&self, key_id: &str) -> Result<bool, Error> {
        if self.key_revoked_here(key_id) {
            return Ok(false);
        }
        let row = self
            .db
            .fetch_optional(sql("SELECT id FROM api_keys WHERE id = $1 AND revoked_at IS NULL").bind(key_id))
            .await?;
        Ok(row.is_some())
    }

    /// Wakes whenever this process revokes a key, so that long-lived streams of that key end
    /// at once.
    pub fn watch_revocations(&self) -> watch::Receiver<u64> {
        self.known_keys.revocations.subscribe()
    }

    /// Whether the pages of `origin` may use some live publishable key: what a browser asks
    /// before it sends a request across sites, without the key.
    pub async fn origin_has_keys(&self, origin: &str) -> Result<bool, Error> {
        let rows = self
            .db
            .fetch_all(sql(
                "SELECT origins FROM api_keys WHERE channel_id IS NOT NULL AND revoked_at IS NULL AND origins <> ''",
            ))
            .await?;
        for row in rows {
            if row.text("origins")?.split_whitespace().any(|o| o == origin) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether any key exists yet (the first start creates the owner's).
    pub async fn has_api_keys(&self) -> Result<bool, Error> {
        Ok(self
            .db
            .fetch_optional(sql("SELECT id FROM api_keys LIMIT 1"))
            .await?
            .is_some())
    }

    /// Whether this exact token is already a key.
    pub async fn is_api_key(&self, token: &str) -> Result<bool, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT id FROM api_keys WHERE token_hash = $1").bind(hash(token)))
            .await?;
        Ok(row.is_some())
    }
}

/// Keys recently seen, by token hash, and the keys revoked since this server started (so that
/// a lookup racing a revocation cannot put the key back).
#[derive(Default)]
pub(crate) struct KnownKeys {
    known: Mutex<Known>,
    /// Counts the revocations made here.
    revocations: watch::Sender<u64>,
}

#[derive(Default)]
struct Known {
    keys: HashMap<String, (Principal, Instant)>,
    revoked: HashSet<String>,
}

/// How long a key is trusted without asking the database again: a key revoked on another server
/// is refused here within this time, and long-lived streams check their key this often.
pub const KNOWN_FOR: Duration = Duration::from_secs(10);
const MAX_KNOWN: usize = 10_000;

impl KnownKeys {
    fn get(&self, hash: &str) -> Option<Principal> {
        let known = self.known.lock().ok()?;
        let (principal, since) = known.keys.get(hash)?;
        (since.elapsed() < KNOWN_FOR).then(|| principal.clone())
    }

    fn remember(&self, hash: String, principal: Principal) {
        if let Ok(mut known) = self.known.lock() {
            if known.revoked.contains(principal.key_id()) {
                return;
            }
            if known.keys.len() >= MAX_KNOWN {
                known.keys.clear();
            }
            known.keys.insert(hash, (principal, Instant::now()));
        }
    }

    fn forget(&self, key_id: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.keys.retain(|_, (principal, _)| principal.key_id() != key_id);
            known.revoked.insert(key_id.to_owned());
        }
        self.revocations.send_modify(|count| *count += 1);
    }

    fn is_revoked(&self, key_id: &str) -> bool {
        self.known
            .lock()
            .map(|known| known.revoked.contains(key_id))
            .unwrap_or(false)
    }
}

impl Store {
    /// The live API keys, newest first; never their tokens.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        let rows = self
            .db
            .fetch_all(sql(
                "SELECT id, name, token_prefix, scopes, channel_id, origins, created_at FROM api_keys \
                 WHERE revoked_at IS NULL ORDER BY id DESC",
            ))
            .await?;
        rows.iter().map(api_key).collect()
    }
}

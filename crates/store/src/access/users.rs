//! The people who sign in to the admin app: their accounts, their sessions, and the limit on
//! wrong passwords.
//!
//! Passwords are kept only as argon2id hashes; session tokens only as SHA-256 hashes. Sign-in
//! attempts are counted per e-mail address and client address, per client address and per
//! e-mail address, under SHA-256 hashes.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use omnihub_domain::catalog::LocationKind;
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::users::{
    LOGIN_WINDOW_SECONDS, LoginCounter, Role, SESSION_SECONDS, UserDraft, check_password, login_retry_after,
    normalize_email,
};
use omnihub_domain::validation::Check;
use omnihub_domain::{Invalid, Timestamp};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::events::append;
use crate::db::{Row, Sql, Tx, sql};
use crate::{Error, Store};

/// An account, as the admin app shows it: never its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The store of store staff.
    pub location_id: Option<String>,
    pub active: bool,
    pub created_at: Timestamp,
}

/// A session just opened: the token goes into the cookie and is not kept anywhere else.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub user: User,
}

/// Who a live session belongs to, and the token its forms must carry back.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// How a sign-in went.
#[derive(Debug, Clone)]
pub enum LogIn {
    Welcome(NewSession),
    /// Unknown address, wrong password or a deactivated account: deliberately one answer.
    Refused,
    /// Too many wrong passwords lately; try again after this many seconds.
    Throttled {
        retry_after_seconds: i64,
    },
}

fn user(row: &Row) -> Result<User, Error> {
    let role = row.text("role")?;
    Ok(User {
        id: row.text("id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        role: Role::parse(&role).ok_or_else(|| Error::Corrupt(format!("unknown role {role}")))?,
        location_id: row.opt_text("location_id")?,
        active: row.opt_int("deactivated_at")?.is_none(),
        created_at: Timestamp(row.int("created_at")?),
    })
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 43)
}

/// Hashing is deliberately slow (tens of milliseconds), so it runs beside the async workers.
async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || argon2_hash(&password))
        .await
        .map_err(|_| Error::Unavailable("password hashing stopped".into()))?
}

fn argon2_hash(password: &str) -> Result<String, Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::Unavailable(format!("cannot make a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Unavailable(format!("cannot hash the password: {e}")))
}

/// A hash of nothing anyone knows: an unknown address costs as long as a wrong password, so
/// the answer's timing does not tell which addresses have accounts.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| argon2_hash(&random_token()).unwrap_or_default());

async fn password_matches(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY_HASH.clone());
        let matches = PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false);
        known && matches
    })
    .await
    .unwrap_or(false)
}

async fn check_store_location(tx: &mut Tx, location_id: &str) -> Result<(), Error> {
    let row = tx
        .fetch_optional(sql("SELECT kind FROM locations WHERE id = $1").bind(location_id))
        .await?;
    let Some(row) = row else {
        return Err(Invalid::one("location_id", "not_found", "there is no such location").into());
    };
    let store = serde_json::to_value(LocationKind::Store).unwrap_or_default();
    if store.as_str() != Some(row.text("kind")?.as_str()) {
        return Err(Invalid::one("location_id", "not_a_store", "store staff belong to a store").into());
    }
    Ok(())
}

async fn read_user(tx: &mut Tx, id: &str) -> Result<User, Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM users WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("user"))?;
    user(&row)
}

impl Store {
    /// Opens an account. The e-mail address is stored lower-cased and belongs to one account.
    pub async fn create_user(&self, draft: UserDraft, password: &str) -> Result<User, Error> {
        let draft = draft.validate(password)?;
        let password_hash = hash_password(password.to_owned()).await?;
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                if let Some(location) = &draft.location_id {
                    check_store_location(tx, location).await?;
                }
                let taken = tx
                    .fetch_optional(sql("SELECT id FROM users WHERE email = $1").bind(&draft.email))
                    .await?;
                if taken.is_some() {
                    return Err(Invalid::one("email", "taken", "another account has this e-mail address").into());
                }
                let id = id::new(Kind::User);
                tx.execute(
                    sql("INSERT INTO users (id, email, name, role, location_id, password_hash, version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)")
                    .bind(&id)
                    .bind(&draft.email)
                    .bind(&draft.name)
                    .bind(draft.role.as_str())
                    .bind(draft.location_id.as_deref())
                    .bind(&password_hash)
                    .bind(now.millis()),
                )
                .await?;
                // Only what the account may do: names and addresses stay out of the log.
                let data = json!({"user_id": id, "role": draft.role.as_str(), "location_id": draft.location_id});
                append(tx, now, NewEvent::new(EventType::UserCreated, data));
                read_user(tx, &id).await
            })
        })
        .await
    }

    /// Every account, oldest first: a merchant has a handful to a few hundred.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let rows = self.db.fetch_all(sql("SELECT * FROM users ORDER BY id")).await?;
        rows.iter().map(user).collect()
    }

    /// Closes an account and ends its sessions at once; its history stays.
    pub async fn deactivate_user(&self, id: &str) -> Result<User, Error> {
        let change = sql(
            "UPDATE users SET deactivated_at = $2, version = version + 1, updated_at = $2 \
             WHERE id = $1 AND deactivated_at IS NULL",
        )
        .bind(id)
        .bind(self.now().millis());
        self.change_open_account(id, change, EventType::UserDeactivated).await
    }

    /// Gives an account a new password and ends its sessions, so that whoever knew the old
    /// one is signed out everywhere.
    pub async fn set_password(&self, id: &str, password: &str) -> Result<User, Error> {
        let mut check = Check::new();
        check_password("password", password, &mut check);
        check.done()?;
        let change = sql(
            "UPDATE users SET password_hash = $2, version = version + 1, updated_at = $3 \
             WHERE id = $1 AND deactivated_at IS NULL",
        )
        .bind(id)
        .bind(hash_password(password.to_owned()).await?)
        .bind(self.now().millis());
        self.change_open_account(id, change, EventType::UserPasswordSet).await
    }

    /// Makes `change`, an update of the account `$1` that only an open account takes; then ends
    /// the account's sessions and records `event`.
    async fn change_open_account(&self, id: &str, change: Sql, event: EventType) -> Result<User, Error> {
        let (id, now) = (id.to_owned(), self.now());
        self.write(move |tx| {
            Box::pin(async move {
                if tx.execute(change).await? == 0 {
                    read_user(tx, &id).await?;
                    return Err(Error::Conflict("the account is deactivated".into()));
                }
                tx.execute(sql("DELETE FROM user_sessions WHERE user_id = $1").bind(&id))
                    .await?;
                append(tx, now, NewEvent::new(event, json!({"user_id": id})));
                read_user(tx, &id).await
            })
        })
        .await
    }

    /// Signs a person in with their e-mail address and password, coming from the client
    /// address `from`. The attempt is counted first (see [`LoginCounter`]); past a counter's
    /// limit it is refused unchecked until the counter's window has passed. Every counted
    /// attempt checks a password hash, a decoy's for an unknown address, so the answer's timing
    /// does not tell which addresses have accounts.
    pub async fn log_in(&self, email: &str, password: &str, from: &str) -> Result<LogIn, Error> {
        if let Some(retry_after_seconds) = self.count_attempt(email, from).await? {
            return Ok(LogIn::Throttled { retry_after_seconds });
        }
        let email = normalize_email(email);
        // An address no account can have (a NUL, which PostgreSQL cannot even compare) is
        // looked up nowhere, and costs the decoy's check like any unknown one.
        let row = if email.chars().any(char::is_control) {
            None
        } else {
            self.db
                .fetch_optional(sql("SELECT * FROM users WHERE email = $1 AND deactivated_at IS NULL").bind(&email))
                .await?
        };
        let hash = row.as_ref().map(|r| r.text("password_hash")).transpose()?;
        let account = row.as_ref().map(user).transpose()?;
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        match account {
            Some(account) if password_matches(password.to_owned(), hash).await => {
                let token = self.open_session(&account, &email, from).await?;
                Ok(LogIn::Welcome(NewSession { token, user: account }))
            }
            _ => Ok(LogIn::Refused),
        }
    }

    /// How many sign-in attempts this process checked against a password hash, a decoy's
    /// included: every attempt under the limits, and none over them.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }

    /// Counts an attempt under every counter, each in one conditional upsert (the row's lock
    /// orders parallel attempts); answers the seconds to wait when a counter is over its limit.
    async fn count_attempt(&self, email: &str, from: &str) -> Result<Option<i64>, Error> {
        let subjects = LoginCounter::ALL.map(|counter| (counter, sha256_hex(&counter.subject(email, from))));
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now().millis();
                let since = now - LOGIN_WINDOW_SECONDS * 1000;
                tx.execute(sql("DELETE FROM login_attempts WHERE window_start <= $1").bind(since))
                    .await?;
                let mut wait = None;
                for (counter, subject) in subjects {
                    let row = tx
                        .fetch_optional(
                            sql(
                                "INSERT INTO login_attempts (subject, window_start, attempts) VALUES ($1, $2, 1) \
                                 ON CONFLICT (subject) DO UPDATE SET \
                                 attempts = CASE WHEN login_attempts.window_start <= $3 THEN 1 \
                                     ELSE login_attempts.attempts + 1 END, \
                                 window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2 \
                                     ELSE login_attempts.window_start END \
                                 RETURNING attempts, window_start",
                            )
                            .bind(&subject)
                            .bind(now)
                            .bind(since),
                        )
                        .await?
                        .ok_or_else(|| Error::Corrupt("an upsert returned no row".into()))?;
                    let refused = login_retry_after(counter, row.int("attempts")?, row.int("window_start")?, now);
                    wait = wait.max(refused);
                }
                Ok(wait)
            })
        })
        .await
    }

    /// Opens a session for a person who signed in from `from`: their mistakes from there are
    /// forgotten, and this attempt counts toward no other limit.
    async fn open_session(&self, account: &User, email: &str, from: &str) -> Result<String, Error> {
        let token = random_token();
        let subject = |counter: LoginCounter| sha256_hex(&counter.subject(email, from));
        let (pair, address, everywhere) = (
            subject(LoginCounter::AccountFromAddress),
            subject(LoginCounter::Address),
            subject(LoginCounter::Account),
        );
        let (token_hash, user_id, clock) = (sha256_hex(&token), account.id.clone(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                tx.execute(sql("DELETE FROM login_attempts WHERE subject = $1").bind(&pair))
                    .await?;
                tx.execute(
                    sql("UPDATE login_attempts SET attempts = attempts - 1 WHERE subject IN ($1, $2) AND attempts > 0")
                        .bind(&address)
                        .bind(&everywhere),
                )
                .await?;
                tx.execute(sql("DELETE FROM user_sessions WHERE expires_at <= $1").bind(now.millis()))
                    .await?;
                tx.execute(
                    sql(
                        "INSERT INTO user_sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&token_hash)
                    .bind(&user_id)
                    .bind(random_token())
                    .bind(now.millis())
                    .bind(now.plus_seconds(SESSION_SECONDS).millis()),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok(token)
    }

    /// The person behind a session cookie's token, while the session lasts and the account is
    /// open.
    pub async fn signed_in(&self, token: &str) -> Result<Option<SignedIn>, Error> {
        let row = self
            .db
            .fetch_optional(
                sql(
                    "SELECT u.*, s.csrf_token, s.expires_at FROM user_sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.deactivated_at IS NULL",
                )
                .bind(sha256_hex(token))
                .bind(self.now().millis()),
            )
            .await?;
        row.map(|row| {
            Ok(SignedIn {
                user: user(&row)?,
                csrf_token: row.text("csrf_token")?,
                expires_at: Timestamp(row.int("expires_at")?),
            })
        })
        .transpose()
    }

    /// Ends a session; its cookie signs nobody in any more.
    pub async fn log_out(&self, token: &str) -> Result<(), Error> {
        let token_hash = sha256_hex(token);
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(sql("DELETE FROM user_sessions WHERE token_hash = $1").bind(&token_hash))
                    .await?;
                Ok(())
            })
        })
        .await
    }
}

//! The people who sign in to the admin app: their accounts, their sessions, and the limit on
//! wrong passwords.
//!
//! Passwords are kept only as argon2id hashes; session tokens only as SHA-256 hashes. Failed
//! sign-ins are counted per e-mail address and network address, both hashed together.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use omnihub_domain::catalog::LocationKind;
use omnihub_domain::events::NewEvent;
use omnihub_domain::id::{self, Kind};
use omnihub_domain::users::{
    LOGIN_ATTEMPTS, LOGIN_WINDOW_SECONDS, Role, SESSION_SECONDS, UserDraft, check_password, normalize_email,
};
use omnihub_domain::validation::Check;
use omnihub_domain::{Invalid, Timestamp};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::{Row, Sql, Tx, sql};
use crate::events::append;
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

/// What failed sign-ins are counted under: the address tried and where it came from, hashed.
fn login_subject(email: &str, from: &str) -> String {
    sha256_hex(&format!("{}\n{from}", normalize_email(email)))
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
                append(tx, now, NewEvent::new("user.created", data));
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
        self.change_open_account(id, change, "user.deactivated").await
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
        self.change_open_account(id, change, "user.password_set").await
    }

    /// Makes `change`, an update of the account `$1` that only an open account takes; then ends
    /// the account's sessions and records `event`.
    async fn change_open_account(&self, id: &str, change: Sql, event: &'static str) -> Result<User, Error> {
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

    /// Signs a person in with their e-mail address and password, coming from network address
    /// `from`. After [`LOGIN_ATTEMPTS`] wrong passwords for that address from there within
    /// [`LOGIN_WINDOW_SECONDS`], further attempts are refused unchecked until the window moves on.
    pub async fn log_in(&self, email: &str, password: &str, from: &str) -> Result<LogIn, Error> {
        let subject = login_subject(email, from);
        let now = self.now();
        let since = now.plus_seconds(-LOGIN_WINDOW_SECONDS);
        if let Some(retry_after_seconds) = self.throttled(&subject, since, now).await? {
            return Ok(LogIn::Throttled { retry_after_seconds });
        }
        let row = self
            .db
            .fetch_optional(
                sql("SELECT * FROM users WHERE email = $1 AND deactivated_at IS NULL").bind(normalize_email(email)),
            )
            .await?;
        let hash = row.as_ref().map(|r| r.text("password_hash")).transpose()?;
        let account = row.as_ref().map(user).transpose()?;
        match account {
            Some(account) if password_matches(password.to_owned(), hash).await => {
                let token = self.open_session(&account, &subject).await?;
                Ok(LogIn::Welcome(NewSession { token, user: account }))
            }
            _ => {
                self.count_failure(subject, since).await?;
                Ok(LogIn::Refused)
            }
        }
    }

    /// Seconds until the next attempt is allowed, when the limit is reached.
    async fn throttled(&self, subject: &str, since: Timestamp, now: Timestamp) -> Result<Option<i64>, Error> {
        let row = self
            .db
            .fetch_optional(
                sql("SELECT COUNT(*) AS failures, MIN(at) AS first FROM login_failures WHERE subject = $1 AND at > $2")
                    .bind(subject)
                    .bind(since.millis()),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        if row.int("failures")? < LOGIN_ATTEMPTS {
            return Ok(None);
        }
        let first = row.opt_int("first")?.unwrap_or(now.millis());
        let free_at = Timestamp(first).plus_seconds(LOGIN_WINDOW_SECONDS);
        Ok(Some(((free_at.millis() - now.millis()) / 1000).max(1)))
    }

    async fn count_failure(&self, subject: String, since: Timestamp) -> Result<(), Error> {
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // Failures that left the window count no more: the table stays small.
                tx.execute(
                    sql("DELETE FROM login_failures WHERE subject = $1 AND at <= $2")
                        .bind(&subject)
                        .bind(since.millis()),
                )
                .await?;
                tx.execute(
                    sql("INSERT INTO login_failures (subject, at) VALUES ($1, $2)")
                        .bind(&subject)
                        .bind(clock.now().millis()),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn open_session(&self, account: &User, subject: &str) -> Result<String, Error> {
        let token = random_token();
        let (token_hash, user_id, subject, clock) = (
            sha256_hex(&token),
            account.id.clone(),
            subject.to_owned(),
            self.clock.clone(),
        );
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                tx.execute(sql("DELETE FROM login_failures WHERE subject = $1").bind(&subject))
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

//! Staff accounts and sessions.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults, a fresh salt per
//! account). A session token is 32 random bytes shown to the client once; the store keeps only
//! its SHA-256, so a copy of the database does not give anyone a live session. Failed sign-ins
//! are rate-limited per account in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use motcua_schema::timestamp::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::tables::{SESSIONS, USERS};
use crate::store::{StoreError, decode_json};

/// How long a session lasts, in milliseconds (one working day and a bit).
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// Failed sign-ins allowed per account inside the window.
pub const LOGIN_FAILURES_COUNT_MAX: u32 = 5;
/// The window for counting failed sign-ins, in milliseconds.
pub const LOGIN_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Shortest password accepted, in characters.
pub const PASSWORD_SIZE_CHARS_MIN: usize = 8;

/// What a staff member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Receives dossiers and takes ratings at the counter.
    Intake,
    /// Records processing steps.
    Processing,
    /// Leads: everything a processor does, settles conflicts.
    Leader,
    /// Administers the node.
    Admin,
}

impl StaffRole {
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<StaffRole> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// The Vietnamese name.
    pub fn label_vi(self) -> &'static str {
        match self {
            StaffRole::Intake => "Tiếp nhận",
            StaffRole::Processing => "Xử lý",
            StaffRole::Leader => "Lãnh đạo",
            StaffRole::Admin => "Quản trị",
        }
    }
}

/// A staff account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Sign-in name.
    pub username: String,
    /// Full name for slips and the TV board.
    pub full_name: String,
    /// Role.
    pub role: StaffRole,
    /// Argon2id PHC string.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub password_hash: String,
    /// Disabled accounts cannot sign in.
    #[serde(default)]
    pub disabled: bool,
}

impl User {
    /// The account without its password hash, for answers.
    pub fn public(&self) -> User {
        User {
            password_hash: String::new(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    username: String,
    expires_at: Timestamp,
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong name or password (deliberately not saying which).
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many failures recently.
    #[error("too many failed sign-ins; wait a few minutes")]
    RateLimited,
    /// No valid session.
    #[error("not signed in or session expired")]
    NoSession,
    /// The account exists already.
    #[error("user {0} already exists")]
    Exists(String),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redb::Error> for AuthError {
    fn from(e: redb::Error) -> Self {
        AuthError::Store(StoreError::Redb(e))
    }
}

macro_rules! auth_from_redb {
    ($($t:ty),*) => {$( impl From<$t> for AuthError { fn from(e: $t) -> Self { AuthError::Store(e.into()) } } )*};
}
auth_from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Accounts, sessions and the sign-in limiter over the node's database.
pub struct Auth {
    failures: Mutex<HashMap<String, (u32, Timestamp)>>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth::new()
    }
}

impl Auth {
    /// A new limiter.
    pub fn new() -> Auth {
        Auth {
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Creates an account.
    pub fn add_user(
        &self,
        db: &Database,
        username: &str,
        password: &str,
        full_name: &str,
        role: StaffRole,
    ) -> Result<User, AuthError> {
        let valid_name = !username.is_empty()
            && username.len() <= 64
            && username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid_name {
            return Err(AuthError::Invalid(
                "username: 1-64 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        if password.chars().count() < PASSWORD_SIZE_CHARS_MIN {
            return Err(AuthError::Invalid(format!(
                "password must have at least {PASSWORD_SIZE_CHARS_MIN} characters"
            )));
        }
        if full_name.trim().is_empty() || full_name.chars().count() > 200 {
            return Err(AuthError::Invalid(
                "full name is required (at most 200 characters)".into(),
            ));
        }
        let mut salt_bytes = [0u8; 16];
        rand::fill(&mut salt_bytes);
        let salt =
            SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let password_hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .to_string();
        let user = User {
            username: username.to_owned(),
            full_name: full_name.trim().to_owned(),
            role,
            password_hash,
            disabled: false,
        };
        let tx = db.begin_write()?;
        {
            let mut users = tx.open_table(USERS)?;
            if users.get(username)?.is_some() {
                return Err(AuthError::Exists(username.to_owned()));
            }
            users.insert(
                username,
                serde_json::to_string(&user)
                    .expect("user serialises")
                    .as_str(),
            )?;
        }
        tx.commit()?;
        Ok(user.public())
    }

    /// Every account, without password hashes.
    pub fn users(&self, db: &Database) -> Result<Vec<User>, AuthError> {
        let tx = db.begin_read()?;
        let table = tx.open_table(USERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let u: User = decode_json("user", row?.1.value())?;
            out.push(u.public());
        }
        Ok(out)
    }

    /// Signs in: checks the password and opens a session. Returns the token and the account.
    pub fn login(
        &self,
        db: &Database,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<(String, User), AuthError> {
        {
            let failures = self.failures.lock().expect("limiter lock");
            if let Some((count, since)) = failures.get(username)
                && *count >= LOGIN_FAILURES_COUNT_MAX
                && now.0 - since.0 < LOGIN_WINDOW_MS
            {
                return Err(AuthError::RateLimited);
            }
        }
        let user: Option<User> = {
            let tx = db.begin_read()?;
            let table = tx.open_table(USERS)?;
            let v = table.get(username)?.map(|v| v.value().to_owned());
            v.map(|t| decode_json("user", &t)).transpose()?
        };
        let ok = user.as_ref().is_some_and(|u| {
            !u.disabled
                && PasswordHash::new(&u.password_hash).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
        });
        if !ok {
            let mut failures = self.failures.lock().expect("limiter lock");
            let entry = failures.entry(username.to_owned()).or_insert((0, now));
            if now.0 - entry.1.0 >= LOGIN_WINDOW_MS {
                *entry = (0, now);
            }
            entry.0 += 1;
            return Err(AuthError::BadCredentials);
        }
        self.failures.lock().expect("limiter lock").remove(username);
        let user = user.expect("checked above");
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let token = hex::encode(raw);
        let session = Session {
            username: user.username.clone(),
            expires_at: now.plus_millis(SESSION_LIFETIME_MS),
        };
        let tx = db.begin_write()?;
        {
            let mut sessions = tx.open_table(SESSIONS)?;
            sessions.insert(
                &token_hash(&token),
                serde_json::to_string(&session)
                    .expect("session serialises")
                    .as_str(),
            )?;
        }
        tx.commit()?;
        Ok((token, user.public()))
    }

    /// The account behind a session token.
    pub fn session(&self, db: &Database, token: &str, now: Timestamp) -> Result<User, AuthError> {
        let tx = db.begin_read()?;
        let sessions = tx.open_table(SESSIONS)?;
        let session: Session = match sessions.get(&token_hash(token))? {
            Some(v) => decode_json("session", v.value())?,
            None => return Err(AuthError::NoSession),
        };
        if session.expires_at <= now {
            return Err(AuthError::NoSession);
        }
        let users = tx.open_table(USERS)?;
        let user: User = match users.get(session.username.as_str())? {
            Some(v) => decode_json("user", v.value())?,
            None => return Err(AuthError::NoSession),
        };
        if user.disabled {
            return Err(AuthError::NoSession);
        }
        Ok(user.public())
    }

    /// Ends a session.
    pub fn logout(&self, db: &Database, token: &str) -> Result<(), AuthError> {
        let tx = db.begin_write()?;
        tx.open_table(SESSIONS)?.remove(&token_hash(token))?;
        tx.commit()?;
        Ok(())
    }
}

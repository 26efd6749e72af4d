//! Staff accounts and sessions.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults, a fresh salt per
//! account). A session token is 32 random bytes shown to the client once; the store keeps only
//! its SHA-256, so a copy of the database does not give anyone a live session. Failed sign-ins
//! are rate-limited per account in memory.
//!
//! For the web pages (`crate::web`) this module also holds what a browser needs that a JSON
//! client does not: the cookie names, CSRF tokens derived from the secret a cookie carries, the
//! role each lifecycle step needs, and device tokens for the rating tablet and the hall TV,
//! which carry their own narrow rights instead of a staff session.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use motcua_schema::timestamp::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::tables::{DEVICES, SESSIONS, USERS};
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

/// The cookie that carries a staff session token in the browser.
pub const SESSION_COOKIE: &str = "motcua_phien";
/// The cookie that carries a device token (rating tablet, hall TV).
pub const DEVICE_COOKIE: &str = "motcua_thiet_bi";
/// The cookie that carries a random secret before sign-in, so that the sign-in and device
/// pairing forms have a CSRF token too (login CSRF).
pub const PRELOGIN_COOKIE: &str = "motcua_truoc_dang_nhap";
/// How long a paired device stays paired, in milliseconds (a year; revoke to end it sooner).
pub const DEVICE_LIFETIME_MS: i64 = 366 * 24 * 3600 * 1000;
/// Longest device name, in characters (it is stored in each rating's `device` field).
pub const DEVICE_NAME_SIZE_CHARS_MAX: usize = 64;
/// Most devices one node keeps.
pub const DEVICES_COUNT_MAX: usize = 500;

const CSRF_DOMAIN: &[u8] = b"motcua/csrf/v1\0";

/// The CSRF token of a form rendered for the holder of `secret` (a session token, a device
/// token or the pre-sign-in cookie). Derived rather than stored: an attacker who cannot read the
/// HttpOnly cookie cannot compute it, and it survives a restart of the node.
pub fn csrf_token(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(CSRF_DOMAIN);
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `presented` is the CSRF token of `secret`, compared in constant time.
pub fn csrf_matches(secret: &str, presented: &str) -> bool {
    !secret.is_empty() && constant_time_eq(&csrf_token(secret), presented)
}

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random secret, hex: for session-less cookies (pre-sign-in) and device tokens.
pub fn random_secret() -> String {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    hex::encode(raw)
}

/// The least role that may record a lifecycle step of kind `kind` (an `EventRequest::kind`):
/// at the counter an intake officer accepts, refuses, hands back and takes supplements and
/// withdrawals; processing steps need a processor; settling a conflict needs a leader.
pub fn role_for_event(kind: &str) -> StaffRole {
    match kind {
        "received" | "refused" | "returned" | "supplemented" | "withdrawn" => StaffRole::Intake,
        "conflict_resolved" => StaffRole::Leader,
        _ => StaffRole::Processing,
    }
}

/// What a paired device may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// The rating tablet at the counter: shows the rating screen and records ratings, nothing else.
    Kiosk,
    /// The hall TV: shows the board of figures, nothing else.
    Board,
}

impl DeviceKind {
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<DeviceKind> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// The Vietnamese name.
    pub fn label_vi(self) -> &'static str {
        match self {
            DeviceKind::Kiosk => "Máy đánh giá mức độ hài lòng",
            DeviceKind::Board => "Màn hình bảng tin",
        }
    }
}

/// A paired device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its name, e.g. `may-danh-gia-1`; written into each rating it records.
    pub name: String,
    /// What it may do.
    pub kind: DeviceKind,
    /// The staff account that created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When its token stops working.
    pub expires_at: Timestamp,
    /// Revoked devices are refused.
    #[serde(default)]
    pub revoked: bool,
}

/// A device as listed for the administrator: its id (the hex SHA-256 of its token, which
/// reveals nothing of the token) and the record.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceEntry {
    /// Hex SHA-256 of the token.
    pub id: String,
    /// The device.
    pub device: Device,
}

impl Auth {
    /// Creates a device and returns its token, shown once to the administrator.
    pub fn add_device(
        &self,
        db: &Database,
        name: &str,
        kind: DeviceKind,
        by: &str,
        now: Timestamp,
    ) -> Result<(String, Device), AuthError> {
        let name = name.trim();
        let valid = !name.is_empty()
            && name.chars().count() <= DEVICE_NAME_SIZE_CHARS_MAX
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(AuthError::Invalid(format!(
                "device name: 1-{DEVICE_NAME_SIZE_CHARS_MAX} letters, digits, '.', '_' or '-'"
            )));
        }
        let existing = self.devices(db)?;
        if existing
            .iter()
            .any(|d| d.device.name == name && !d.device.revoked)
        {
            return Err(AuthError::Exists(name.to_owned()));
        }
        if existing.len() >= DEVICES_COUNT_MAX {
            return Err(AuthError::Invalid(format!(
                "at most {DEVICES_COUNT_MAX} devices"
            )));
        }
        let token = random_secret();
        let device = Device {
            name: name.to_owned(),
            kind,
            created_by: by.to_owned(),
            created_at: now,
            expires_at: now.plus_millis(DEVICE_LIFETIME_MS),
            revoked: false,
        };
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(DEVICES)?;
            table.insert(
                &token_hash(&token),
                serde_json::to_string(&device)
                    .expect("device serialises")
                    .as_str(),
            )?;
        }
        tx.commit()?;
        Ok((token, device))
    }

    /// The device behind a token; `NoSession` when unknown, revoked or expired.
    pub fn device(&self, db: &Database, token: &str, now: Timestamp) -> Result<Device, AuthError> {
        let tx = db.begin_read()?;
        let table = match tx.open_table(DEVICES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Err(AuthError::NoSession),
            Err(e) => return Err(e.into()),
        };
        let device: Device = match table.get(&token_hash(token))? {
            Some(v) => decode_json("device", v.value())?,
            None => return Err(AuthError::NoSession),
        };
        if device.revoked || device.expires_at <= now {
            return Err(AuthError::NoSession);
        }
        Ok(device)
    }

    /// Every device, revoked ones included.
    pub fn devices(&self, db: &Database) -> Result<Vec<DeviceEntry>, AuthError> {
        let tx = db.begin_read()?;
        let table = match tx.open_table(DEVICES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(DeviceEntry {
                id: hex::encode(k.value()),
                device: decode_json("device", v.value())?,
            });
        }
        Ok(out)
    }

    /// Revokes the device with id `id` (see [`DeviceEntry::id`]).
    pub fn revoke_device(&self, db: &Database, id: &str) -> Result<(), AuthError> {
        let key: [u8; 32] = hex::decode(id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AuthError::Invalid("unknown device".into()))?;
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(DEVICES)?;
            let current = table.get(&key)?.map(|v| v.value().to_owned());
            let Some(text) = current else {
                return Err(AuthError::Invalid("unknown device".into()));
            };
            let mut device: Device = decode_json("device", &text)?;
            device.revoked = true;
            table.insert(
                &key,
                serde_json::to_string(&device)
                    .expect("device serialises")
                    .as_str(),
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> (std::path::PathBuf, Database) {
        let dir = std::env::temp_dir().join(format!(
            "motcua-auth-{name}-{}-{}",
            std::process::id(),
            random_secret()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Database::create(dir.join("auth.redb")).unwrap();
        (dir, db)
    }

    #[test]
    fn csrf_token_is_bound_to_its_secret() {
        // Why: a token taken from one session's form must not validate a form of another session,
        // and an empty secret (no cookie) must never validate anything.
        let a = random_secret();
        let b = random_secret();
        let token = csrf_token(&a);
        assert!(csrf_matches(&a, &token));
        assert!(!csrf_matches(&b, &token));
        assert!(!csrf_matches(&a, ""));
        assert!(!csrf_matches(&a, &token[..10]));
        assert!(!csrf_matches("", &csrf_token("")));
        assert_ne!(token, a, "the token must not reveal the cookie's secret");
    }

    #[test]
    fn event_roles_follow_the_counter_rules() {
        // Why: an intake officer must not be able to resolve a dossier or settle a conflict.
        assert_eq!(role_for_event("received"), StaffRole::Intake);
        assert_eq!(role_for_event("returned"), StaffRole::Intake);
        assert_eq!(role_for_event("resolved"), StaffRole::Processing);
        assert_eq!(role_for_event("transferred"), StaffRole::Processing);
        assert_eq!(role_for_event("conflict_resolved"), StaffRole::Leader);
    }

    #[test]
    fn device_tokens_work_until_revoked_or_expired() {
        // Why: a stolen or retired tablet must stop being able to record ratings at once.
        let (dir, db) = temp_db("device");
        let auth = Auth::new();
        let now = Timestamp(1_700_000_000_000);
        assert!(matches!(
            auth.device(&db, "nothing", now),
            Err(AuthError::NoSession)
        ));
        let (token, device) = auth
            .add_device(&db, "may-danh-gia-1", DeviceKind::Kiosk, "admin", now)
            .unwrap();
        assert_eq!(device.kind, DeviceKind::Kiosk);
        assert_eq!(
            auth.device(&db, &token, now).unwrap().name,
            "may-danh-gia-1"
        );
        assert!(matches!(
            auth.add_device(&db, "may-danh-gia-1", DeviceKind::Kiosk, "admin", now),
            Err(AuthError::Exists(_))
        ));
        assert!(
            auth.add_device(&db, "tên có dấu", DeviceKind::Board, "admin", now)
                .is_err()
        );
        assert!(matches!(
            auth.device(&db, &token, now.plus_millis(DEVICE_LIFETIME_MS)),
            Err(AuthError::NoSession)
        ));
        let list = auth.devices(&db).unwrap();
        assert_eq!(list.len(), 1);
        assert!(!list[0].id.contains(&token));
        auth.revoke_device(&db, &list[0].id).unwrap();
        assert!(matches!(
            auth.device(&db, &token, now),
            Err(AuthError::NoSession)
        ));
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! Who may use the admin: users, roles, API tokens and the per-install session secret, kept in the
//! same database as the config (migration `0002_identity.sql`).
//!
//! - There are no default credentials: [`Identity::bootstrap`] creates the `admin` user on the first
//!   start from a configured password or a generated one, which is returned once; only the Argon2id
//!   hash is stored.
//! - Sessions are JWTs signed with a random secret generated at bootstrap and stored in
//!   `admin_setting`; it is never derived from a password.
//! - API tokens are stored as SHA-256 hex and act with their owner's current roles (optionally
//!   narrowed to a subset), so disabling or deleting the owner disables its tokens.
//! - Authentication reads the user's current state and roles on every request, so disabling a user
//!   or changing their roles takes effect at once, also for sessions already issued.
//! - What each role grants ([`Identity::rbac`]) is asked for by every admin request and websocket
//!   check, so it is cached: an identity write in this process drops the copy at once, one by
//!   another admin process on the same database is seen within [`RBAC_REFRESH`].
//! - Sessions can be ended before they expire (migration `0003_sessions.sql`): one by logout (its
//!   JWT id is listed until it would have expired), all of a user's by a password change or
//!   [`Identity::revoke_sessions`] (a per-user "issued after" cut-off), and everyone's by
//!   [`Identity::rotate_session_secret`]. Other admin processes on the same database pick up a new
//!   secret within [`KEYS_REFRESH`].
//!
//! Every identity write takes the `identity_head` row lock first (as config writes take
//! `config_head`), which serialises them across processes: the existence checks before an insert
//! cannot race. Writes are audited in the `audit` table with `revision` 0 (they change no config
//! revision); audit rows never contain password hashes or tokens.

mod roles;
mod tokens;
mod users;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tigateway_auth::{
    generate_password, hash_password, verify_password, AuthError, Claims, LoginLimiter, Rbac, Role, SessionKeys,
};
use tigateway_model::{ValidationError, ValidationErrors};

use crate::store::db::{Col, Db, Tx, Val};
use crate::store::{now, Store, StoreError};

pub use roles::RoleRecord;
pub use tokens::{NewToken, TokenInfo};
pub use users::{NewUser, User, UserUpdate};

/// The user [`Identity::bootstrap`] creates.
pub const BOOTSTRAP_USER: &str = "admin";
/// The roles [`Identity::bootstrap`] seeds from [`Rbac::with_builtin_roles`]; they cannot be changed
/// or deleted.
pub const BUILTIN_ROLES: [&str; 3] = ["admin", "editor", "viewer"];
/// Passwords shorter than this are refused (also for the configured initial password).
pub const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 1024;
/// `last_used_at` of an API token is refreshed at most this often, so automation does not turn
/// every request into a write.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

/// The new "sessions issued at or before" cut-off (unix seconds; two `?`: now, now): later than
/// the current one, because a session issued in the same second as the previous cut-off got
/// `iat` = cut-off + 1 and must end too.
pub(crate) const NEXT_CUTOFF: &str = "CASE WHEN sessions_after + 1 > ? THEN sessions_after + 1 ELSE ? END";

/// How long a process trusts its cached copy of the session secret; bounds how long a secret
/// rotated by another admin process on the same database keeps working here.
pub const KEYS_REFRESH: Duration = Duration::from_secs(5);

/// How long a process trusts its cached [`Rbac`] before it asks the store whether any identity
/// write happened meanwhile; bounds how long a role changed by another admin process on the same
/// database keeps its old grants here. The same bound as for the session secret, so an operator
/// has one number to know ("other admins see identity changes within 5 s").
pub const RBAC_REFRESH: Duration = KEYS_REFRESH;

const SETTING_SECRET: &str = "session_secret";
const SETTING_BOOTSTRAPPED: &str = "bootstrapped_at";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id:?} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// The caller's version is stale; nothing was written.
    #[error("version conflict: the current version is {current_version}")]
    Conflict { current_version: i64 },
    /// The request is refused as a whole; every problem with its field path.
    #[error("invalid:\n{0}")]
    Invalid(ValidationErrors),
    /// The database cannot be reached or the pool is closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    /// Authentication failed: bad credentials, throttled, invalid/expired/revoked token.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => IdentityError::Unavailable(m),
            StoreError::Database(m) => IdentityError::Database(m),
            StoreError::Conflict { current_version } => IdentityError::Conflict { current_version },
            StoreError::Invalid(v) => IdentityError::Invalid(v),
            other => IdentityError::Database(other.to_string()),
        }
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// How a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Via {
    /// A session JWT from [`Identity::login`]; `jti` names the session.
    Session {
        jti: String,
        /// Unix seconds.
        expires_at: u64,
    },
    ApiToken {
        id: String,
    },
}

/// Who is calling, with the roles they hold now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub username: String,
    pub roles: Vec<String>,
    pub via: Via,
}

/// The identity part of the admin store. Cheap to clone; shares the [`Store`]'s pool, and clones
/// share the caches (so a write through any clone invalidates what the others hold).
#[derive(Clone)]
pub struct Identity {
    db: Db,
    keys: Arc<std::sync::Mutex<Option<(SessionKeys, Instant)>>>,
    rbac: Arc<std::sync::Mutex<Option<CachedRbac>>>,
    /// Identity writes finished (or abandoned) by this process; a cached [`Rbac`] loaded under
    /// another count is not used.
    writes: Arc<AtomicU64>,
}

/// The roles as loaded, with what tells whether they may still be current.
struct CachedRbac {
    rbac: Arc<Rbac>,
    /// `identity_head.counter` read before the roles: another process's write moves it.
    head: i64,
    /// When `head` was last found current.
    checked: Instant,
    /// [`Identity::writes`] when the load began.
    writes: u64,
}

/// A transaction holding the identity write lock. The only way to end it is
/// [`finish_write`] (or dropping it), and either counts the write, so no write path can
/// forget to invalidate the cached [`Rbac`].
struct WriteTx {
    tx: Tx,
    _counted: CountOnDrop,
}

impl std::ops::Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

/// Counts a write when dropped: after the commit, and also when the request's future is dropped
/// halfway (the commit may have reached the database even so).
struct CountOnDrop(Arc<AtomicU64>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("backend", &self.db.backend()).finish_non_exhaustive()
    }
}

impl Identity {
    pub fn new(store: &Store) -> Identity {
        Identity {
            db: store.db().clone(),
            keys: Arc::new(std::sync::Mutex::new(None)),
            rbac: Arc::new(std::sync::Mutex::new(None)),
            writes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// First start: creates the `admin` user (role `admin`) with `initial_password` or, when `None`,
    /// a generated password, which is returned so the caller can show it once; seeds the built-in
    /// roles and creates the session secret. Later starts change nothing and return `None` (they
    /// only create the session secret should it be missing). A configured password is checked
    /// against the password policy and never returned.
    pub async fn bootstrap(&self, initial_password: Option<String>) -> Result<Option<String>> {
        if let Some(p) = &initial_password {
            let mut errs = ValidationErrors::default();
            check_password("initialPassword", p, &mut errs);
            errs.into_result().map_err(IdentityError::Invalid)?;
        }
        let done = self.setting(SETTING_BOOTSTRAPPED).await?.is_some();
        if done && self.setting(SETTING_SECRET).await?.is_some() {
            return Ok(None);
        }
        let (password, generated) = match initial_password {
            Some(p) => (p, false),
            None => (generate_password(), true),
        };
        // Hashing takes a moment; it happens before the lock is taken. (Wasted on a later start
        // that only lacks the secret, which is rare.)
        let hash = if done { String::new() } else { hash_blocking(password.clone()).await? };
        let mut tx = self.begin_write().await?;
        let r = bootstrap_tx(&mut tx, &hash).await;
        let created = finish_write(tx, r).await?;
        Ok((created && generated).then_some(password))
    }

    /// The signing keys from the stored per-install secret (cached for [`KEYS_REFRESH`]).
    pub async fn session_keys(&self) -> Result<SessionKeys> {
        if let Some((keys, at)) = &*self.keys.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < KEYS_REFRESH {
                return Ok(keys.clone());
            }
        }
        let secret = self
            .setting(SETTING_SECRET)
            .await?
            .ok_or_else(|| IdentityError::Database("no session secret is stored; run bootstrap first".into()))?;
        let keys = SessionKeys::from_secret(&secret)?;
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    /// Replaces the session secret: every session issued so far stops working (here at once, in
    /// other admin processes within [`KEYS_REFRESH`]). API tokens are not affected.
    pub async fn rotate_session_secret(&self, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = async {
            let now_s = now();
            tx.exec("DELETE FROM admin_setting WHERE setting_key = ?", &[SETTING_SECRET.into()]).await?;
            set_setting(&mut tx, SETTING_SECRET, &SessionKeys::generate_secret()).await?;
            tx.exec("DELETE FROM admin_session_revoked", &[]).await?;
            audit(&mut tx, actor, "rotate", "update", "session_secret", "-", None::<&()>, None::<&()>, &now_s).await?;
            Ok(())
        }
        .await;
        finish_write(tx, r).await?;
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Ends the session `principal` came with. An API token is revoked through its own endpoint.
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        let Via::Session { jti, expires_at } = &principal.via else {
            return Err(invalid(
                "authorization",
                "an API token is revoked with DELETE /api/v1/tokens/{id}, not logout",
            ));
        };
        let mut tx = self.db.begin().await?;
        let r = async {
            // Entries past their expiry protect nothing any more (the JWT itself is expired).
            tx.exec("DELETE FROM admin_session_revoked WHERE expires_at < ?", &[Val::Int(unix_now() as i64)]).await?;
            tx.exec(
                "INSERT INTO admin_session_revoked (jti, expires_at) VALUES (?, ?)",
                &[jti.as_str().into(), Val::Int(*expires_at as i64)],
            )
            .await?;
            Ok(())
        }
        .await;
        finish(tx, r).await
    }

    /// Ends every session of user `id` issued until now; their API tokens are not affected.
    pub async fn revoke_sessions(&self, id: &str, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = async {
            let user = users::get_tx(&mut tx, id).await?;
            let at = Val::Int(unix_now() as i64);
            tx.exec(
                &format!("UPDATE admin_user SET sessions_after = {NEXT_CUTOFF} WHERE id = ?"),
                &[at.clone(), at, id.into()],
            )
            .await?;
            audit(&mut tx, actor, "revoke-sessions", "update", "admin_user", id, Some(&user), Some(&user), &now())
                .await?;
            Ok(())
        }
        .await;
        finish_write(tx, r).await
    }

    /// Checks a username and password and issues a session valid for `ttl`. Attempts are
    /// throttled per user and per client address (an IPv6 address counts as its /64): a throttled
    /// attempt is refused before the password is looked at. An unknown user, a wrong password and
    /// a disabled user all answer the same [`AuthError::BadCredentials`], in about the same time.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client_ip: IpAddr,
        limiter: &LoginLimiter,
        ttl: Duration,
    ) -> Result<(String, Claims)> {
        let user_key = format!("user:{}", username.to_lowercase());
        let ip_key = format!("ip:{}", ip_bucket(client_ip));
        let keys = [user_key.as_str(), ip_key.as_str()];
        limiter.check(&keys, Instant::now())?;
        let row = self
            .db
            .fetch(
                "SELECT id, password_hash, enabled, sessions_after FROM admin_user WHERE username = ?",
                &[username.into()],
                &[Col::Text, Col::Text, Col::Int, Col::Int],
            )
            .await?
            .into_iter()
            .next();
        let (user_id, ok, sessions_after) = match row {
            Some(r) => {
                let mut c = Cols::new(r);
                let (id, hash, enabled, after) = (c.text(), c.text(), c.int() != 0, c.int());
                let verified = verify_blocking(password.to_string(), hash).await?;
                (id, verified && enabled, after.max(0) as u64)
            }
            None => {
                // Same work as for a real user, so timing does not tell which usernames exist.
                let dummy = dummy_hash().await?;
                verify_blocking(password.to_string(), dummy).await?;
                (String::new(), false, 0)
            }
        };
        if !ok {
            limiter.failed(&keys, Instant::now());
            return Err(AuthError::BadCredentials.into());
        }
        let roles = users::roles_of(&self.db, &user_id).await?;
        let keys_ = self.session_keys().await?;
        // A session issued in the same second as a revocation must still count as newer than it.
        let issued_at = unix_now().max(sessions_after + 1);
        let issued = keys_.issue(username, &roles, issued_at, ttl.as_secs().max(1))?;
        limiter.succeeded(&keys);
        Ok(issued)
    }

    /// Resolves an `Authorization: Bearer` value: an API token (`tgw_…`) that is neither revoked
    /// nor expired, or a session JWT (HS256 only, unexpired). Either way the user must still exist
    /// and be enabled, and the roles are the ones held now. Every failure is
    /// [`AuthError::InvalidToken`] ([`AuthError::Missing`] for an empty value).
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let bearer = bearer.trim();
        if bearer.is_empty() {
            return Err(AuthError::Missing.into());
        }
        if bearer.starts_with(tigateway_auth::API_TOKEN_PREFIX) {
            return tokens::authenticate(&self.db, bearer).await;
        }
        let claims = self.session_keys().await?.verify(bearer)?;
        let row = self
            .db
            .fetch(
                "SELECT id, enabled, sessions_after FROM admin_user WHERE username = ?",
                &[claims.sub.as_str().into()],
                &[Col::Text, Col::Int, Col::Int],
            )
            .await?
            .into_iter()
            .next();
        let Some(row) = row else { return Err(AuthError::InvalidToken.into()) };
        let mut c = Cols::new(row);
        let (id, enabled, sessions_after) = (c.text(), c.int() != 0, c.int());
        if !enabled || claims.iat as i64 <= sessions_after {
            return Err(AuthError::InvalidToken.into());
        }
        let revoked = !self
            .db
            .fetch("SELECT jti FROM admin_session_revoked WHERE jti = ?", &[claims.jti.as_str().into()], &[Col::Text])
            .await?
            .is_empty();
        if revoked {
            return Err(AuthError::InvalidToken.into());
        }
        let roles = users::roles_of(&self.db, &id).await?;
        Ok(Principal { username: claims.sub, roles, via: Via::Session { jti: claims.jti, expires_at: claims.exp } })
    }

    /// The stored roles (built-in and custom) as an [`Rbac`].
    ///
    /// Every admin request and websocket re-check needs this, so it is cached rather than read
    /// from the store each time. An identity write by this process (through this `Identity` or a
    /// clone) is seen by the next call. A write by another admin process on the same database is
    /// seen within [`RBAC_REFRESH`]: after that long the copy is checked against
    /// `identity_head.counter` (one single-row read, which every identity write moves) and reloaded
    /// only if it moved. Within [`RBAC_REFRESH`] the answer comes without the store, also when it
    /// is down; after it, an unreachable store is an error, as it was before the cache.
    pub async fn rbac(&self) -> Result<Arc<Rbac>> {
        let writes = self.writes.load(Ordering::Acquire);
        let known_head = {
            let cache = self.rbac.lock().unwrap_or_else(|p| p.into_inner());
            match &*cache {
                Some(c) if c.writes == writes && c.checked.elapsed() < RBAC_REFRESH => return Ok(c.rbac.clone()),
                Some(c) if c.writes == writes => Some(c.head),
                _ => None,
            }
        };
        let head = self.identity_head().await?;
        if known_head == Some(head) {
            let mut cache = self.rbac.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.as_mut().filter(|c| c.writes == writes && c.head == head) {
                c.checked = Instant::now();
                return Ok(c.rbac.clone());
            }
        }
        let mut rbac = Rbac::default();
        for r in roles::all(&self.db).await? {
            rbac.insert(Role { name: r.name, permissions: r.permissions.into_iter().collect() });
        }
        let rbac = Arc::new(rbac);
        // A write of this process that ended while the roles were read may or may not be in them:
        // they are still the answer to this call, but not kept for later ones.
        if self.writes.load(Ordering::Acquire) == writes {
            *self.rbac.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(CachedRbac { rbac: rbac.clone(), head, checked: Instant::now(), writes });
        }
        Ok(rbac)
    }

    /// `identity_head.counter`: how many identity writes the database has committed.
    async fn identity_head(&self) -> Result<i64> {
        let row = self.db.fetch("SELECT counter FROM identity_head WHERE id = 1", &[], &[Col::Int]).await?;
        let row = row
            .into_iter()
            .next()
            .ok_or_else(|| IdentityError::Database("identity_head row is missing; the schema is damaged".into()))?;
        Ok(Cols::new(row).int())
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .fetch("SELECT setting_value FROM admin_setting WHERE setting_key = ?", &[key.into()], &[Col::Text])
            .await?
            .into_iter()
            .next()
            .map(|r| Cols::new(r).text()))
    }

    /// Begins a transaction holding the identity write lock; end it with [`finish_write`].
    async fn begin_write(&self) -> Result<WriteTx> {
        let mut tx = self.db.begin().await?;
        match tx.exec("UPDATE identity_head SET counter = counter + 1 WHERE id = 1", &[]).await {
            Ok(1) => Ok(WriteTx { tx, _counted: CountOnDrop(self.writes.clone()) }),
            Ok(_) => {
                let _ = tx.rollback().await;
                Err(IdentityError::Database("identity_head row is missing; the schema is damaged".into()))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e.into())
            }
        }
    }
}

/// Returns whether this call bootstrapped (created the admin user).
async fn bootstrap_tx(tx: &mut Tx, admin_hash: &str) -> Result<bool> {
    let now_s = now();
    let secret_exists = setting_exists(tx, SETTING_SECRET).await?;
    if !secret_exists {
        set_setting(tx, SETTING_SECRET, &SessionKeys::generate_secret()).await?;
    }
    if setting_exists(tx, SETTING_BOOTSTRAPPED).await? {
        return Ok(false);
    }
    let builtin = Rbac::with_builtin_roles();
    for name in BUILTIN_ROLES {
        let role = builtin
            .role(name)
            .ok_or_else(|| IdentityError::Database(format!("built-in role {name:?} is not defined")))?;
        roles::insert_builtin_if_missing(tx, role, &now_s).await?;
    }
    let exists = !tx
        .fetch("SELECT id FROM admin_user WHERE username = ?", &[BOOTSTRAP_USER.into()], &[Col::Text])
        .await?
        .is_empty();
    if exists {
        // A restored or hand-made database: keep the user as it is.
        set_setting(tx, SETTING_BOOTSTRAPPED, &now_s).await?;
        return Ok(false);
    }
    let user = users::insert(tx, BOOTSTRAP_USER, admin_hash, true, &["admin".to_string()], &now_s).await?;
    audit(tx, "system", "bootstrap", "create", "admin_user", &user.id, None::<&User>, Some(&user), &now_s).await?;
    set_setting(tx, SETTING_BOOTSTRAPPED, &now_s).await?;
    Ok(true)
}

async fn setting_exists(tx: &mut Tx, key: &str) -> Result<bool> {
    Ok(!tx
        .fetch("SELECT setting_key FROM admin_setting WHERE setting_key = ?", &[key.into()], &[Col::Text])
        .await?
        .is_empty())
}

async fn set_setting(tx: &mut Tx, key: &str, value: &str) -> Result<()> {
    tx.exec("INSERT INTO admin_setting (setting_key, setting_value) VALUES (?, ?)", &[key.into(), value.into()])
        .await?;
    Ok(())
}

/// [`finish`] for an identity write; the write is counted once the commit has been attempted
/// (whatever its outcome: a rolled-back write only costs one reload of the roles).
async fn finish_write<R>(tx: WriteTx, r: Result<R>) -> Result<R> {
    let WriteTx { tx, _counted } = tx;
    finish(tx, r).await
}

/// Commits on success, rolls back on failure.
async fn finish<R>(tx: Tx, r: Result<R>) -> Result<R> {
    match r {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// One audit row for an identity write. `revision` is 0: no config revision is involved.
#[allow(clippy::too_many_arguments)]
async fn audit<T: Serialize>(
    tx: &mut Tx,
    actor: &str,
    operation: &str,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    before: Option<&T>,
    after: Option<&T>,
    now_s: &str,
) -> Result<()> {
    let json = |v: Option<&T>| -> Result<Val> {
        Ok(match v {
            Some(v) => Val::Text(
                serde_json::to_string(v).map_err(|e| IdentityError::Database(format!("cannot encode JSON: {e}")))?,
            ),
            None => Val::NullText,
        })
    };
    tx.exec(
        "INSERT INTO audit (revision, at, actor, operation, action, entity_type, entity_id, before_json, after_json) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Val::Int(0),
            now_s.into(),
            actor.into(),
            operation.into(),
            action.into(),
            entity_type.into(),
            entity_id.into(),
            json(before)?,
            json(after)?,
        ],
    )
    .await?;
    Ok(())
}

/// Reads a row's columns in order.
struct Cols(std::vec::IntoIter<Val>);

impl Cols {
    fn new(row: Vec<Val>) -> Cols {
        Cols(row.into_iter())
    }
    fn int(&mut self) -> i64 {
        self.0.next().map(|v| v.int()).unwrap_or(0)
    }
    fn text(&mut self) -> String {
        self.0.next().and_then(Val::text).unwrap_or_default()
    }
    fn opt(&mut self) -> Option<String> {
        self.0.next().and_then(Val::text)
    }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> IdentityError {
    IdentityError::Invalid(ValidationErrors(vec![ValidationError::new(path, message)]))
}

fn check_password(path: &str, p: &str, errs: &mut ValidationErrors) {
    let n = p.chars().count();
    if n < MIN_PASSWORD_CHARS {
        errs.0.push(ValidationError::new(path, format!("must be at least {MIN_PASSWORD_CHARS} characters")));
    } else if n > MAX_PASSWORD_CHARS {
        errs.0.push(ValidationError::new(path, format!("must be at most {MAX_PASSWORD_CHARS} characters")));
    }
}

/// Names of users and roles: 1–64 characters from `A-Z a-z 0-9 . _ @ -`.
fn check_name(path: &str, name: &str, errs: &mut ValidationErrors) {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        errs.0.push(ValidationError::new(path, "must be 1-64 characters from A-Z a-z 0-9 . _ @ -"));
    }
}

async fn hash_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| IdentityError::Database(format!("password hashing task failed: {e}")))?
        .map_err(IdentityError::from)
}

async fn verify_blocking(password: String, phc: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| IdentityError::Database(format!("password verification task failed: {e}")))
}

/// An Argon2id hash of nothing anyone knows, verified against for unknown users.
async fn dummy_hash() -> Result<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let h = hash_blocking(generate_password()).await?;
    Ok(DUMMY.get_or_init(|| h).clone())
}

/// The throttling key of an address: IPv4 as is, IPv6 by its /64 (one host usually has a whole /64).
fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The store's timestamp format (`2024-01-02T03:04:05.678Z`).
fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// 32 random hex digits.
fn new_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_are_throttled_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_bucket(a), ip_bucket(b));
        assert_ne!(ip_bucket(a), ip_bucket(c));
        assert_eq!(ip_bucket("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(ip_bucket("10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    #[test]
    fn names_and_passwords_are_checked() {
        let mut e = ValidationErrors::default();
        check_name("username", "ops.team-1@corp", &mut e);
        check_password("password", "longenough", &mut e);
        assert!(e.0.is_empty(), "{e}");
        check_name("username", "", &mut e);
        check_name("username", "a b", &mut e);
        check_name("username", &"x".repeat(65), &mut e);
        check_password("password", "short", &mut e);
        assert_eq!(e.0.len(), 4, "{e}");
    }

    #[test]
    fn times_roundtrip_through_the_store_format() {
        let t = chrono::Utc::now();
        let back = parse_time(&format_time(t)).unwrap();
        assert!((t - back).num_milliseconds().abs() <= 1);
        assert!(parse_time("garbage").is_none());
    }
}

//! The identity suite (users, roles, sessions, API tokens), run unchanged against SQLite,
//! PostgreSQL and MariaDB/MySQL with the same per-test databases as `tests/store.rs`:
//! `TIGATEWAY_TEST_PG_URL` / `TIGATEWAY_TEST_MYSQL_URL`, skipped without them unless `CI` is set.

#[macro_use]
mod common;
use common::{run, Target};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Executor as _;
use sqlx::Row as _;
use tigateway_admin::identity::{Identity, IdentityError, NewToken, NewUser, UserUpdate, Via, RBAC_REFRESH};
use tigateway_admin::store::Store;
use tigateway_auth::{hash_api_token, verify_password, Action, AuthError, LoginLimiter, Resource, SessionKeys};

suite!(
    bootstrap_creates_one_admin_and_is_idempotent,
    bootstrap_with_a_configured_password,
    concurrent_bootstraps_create_one_admin,
    login_succeeds_fails_and_throttles,
    disabled_users_cannot_log_in,
    sessions_authenticate_and_forgeries_are_refused,
    sessions_are_revoked_by_logout_password_change_and_rotation,
    api_tokens_authenticate_until_revoked,
    expired_api_tokens_are_refused,
    token_listings_never_expose_secrets,
    users_crud_paging_and_stale_versions,
    the_last_admin_cannot_be_removed,
    builtin_roles_are_protected,
    rbac_reflects_custom_roles,
    rbac_is_answered_from_the_cache,
    rbac_sees_a_role_change_of_this_process_at_once,
    rbac_sees_another_process_within_the_refresh_bound,
);

const ACTOR: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn perm(r: &str, a: &str) -> (String, String) {
    (r.to_string(), a.to_string())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn limiter() -> LoginLimiter {
    LoginLimiter::new(3, Duration::from_secs(60))
}

fn new_user(name: &str, roles: &[&str]) -> NewUser {
    serde_json::from_value(serde_json::json!({ "username": name, "password": PASSWORD, "roles": roles })).unwrap()
}

/// Text columns of a statement's rows, read straight from the database (no store code involved).
async fn raw_rows(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    fn collect<R: sqlx::Row>(rows: Vec<R>, get: impl Fn(&R, usize) -> Option<String>) -> Vec<Vec<Option<String>>> {
        rows.iter().map(|r| (0..r.len()).map(|i| get(r, i)).collect()).collect()
    }
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = pool.fetch_all(sql).await.unwrap();
        pool.close().await;
        collect(rows, |r, i| r.try_get::<Option<String>, _>(i).unwrap())
    } else if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = pool.fetch_all(sql).await.unwrap();
        pool.close().await;
        collect(rows, |r, i| r.try_get::<Option<String>, _>(i).unwrap())
    } else {
        let pool = sqlx::MySqlPool::connect(url).await.unwrap();
        let rows = pool.fetch_all(sql).await.unwrap();
        pool.close().await;
        collect(rows, |r, i| r.try_get::<Option<Vec<u8>>, _>(i).unwrap().map(|b| String::from_utf8(b).unwrap()))
    }
}

/// Every text cell of the identity tables and the audit log, for "this never appears" checks.
async fn everything_stored(url: &str) -> String {
    let mut all = String::new();
    for sql in [
        "SELECT id, username, password_hash, created_at, updated_at FROM admin_user",
        "SELECT setting_key, setting_value FROM admin_setting",
        "SELECT id, name, token_hash, owner_id, roles, created_at, expires_at, revoked_at, last_used_at FROM api_token",
        "SELECT actor, operation, action, entity_type, entity_id, before_json, after_json FROM audit",
    ] {
        for row in raw_rows(url, sql).await {
            for cell in row.into_iter().flatten() {
                all.push_str(&cell);
                all.push('\n');
            }
        }
    }
    all
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn is_invalid_token<T: std::fmt::Debug>(r: Result<T, IdentityError>) -> bool {
    matches!(r, Err(IdentityError::Auth(AuthError::InvalidToken)))
}

async fn bootstrap_creates_one_admin_and_is_idempotent(s: Store, url: String) {
    let id = Identity::new(&s);
    let password = id.bootstrap(None).await.unwrap().expect("a generated password on first start");
    assert_eq!(password.len(), 24);

    let users = id.list_users(1, 100, None).await.unwrap();
    assert_eq!(users.total, 1);
    let admin = &users.items[0];
    assert_eq!((admin.username.as_str(), admin.enabled, admin.roles.clone()), ("admin", true, strings(&["admin"])));

    // Only the Argon2id hash is stored, and it verifies the returned password.
    let rows = raw_rows(&url, "SELECT username, password_hash FROM admin_user").await;
    assert_eq!(rows.len(), 1);
    let hash = rows[0][1].clone().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(verify_password(&password, &hash));
    let stored = everything_stored(&url).await;
    assert!(!stored.contains(&password), "the plaintext password is stored somewhere");
    assert_eq!(stored.matches("$argon2").count(), 1, "the hash leaked beyond admin_user (e.g. into the audit log)");

    // It logs in.
    let (token, claims) =
        id.login("admin", &password, ip("127.0.0.1"), &limiter(), Duration::from_secs(900)).await.unwrap();
    assert_eq!(claims.sub, "admin");

    // Built-in roles are seeded.
    let roles: Vec<String> = id.list_roles(1, 100).await.unwrap().items.into_iter().map(|r| r.name).collect();
    assert_eq!(roles, strings(&["admin", "editor", "viewer"]));
    let secret = raw_rows(&url, "SELECT setting_value FROM admin_setting WHERE setting_key = 'session_secret'").await;
    assert_eq!(secret.len(), 1);

    // A later start (another process: fresh Identity, fresh Store) changes nothing.
    let s2 = Store::open(&url).await.unwrap();
    let id2 = Identity::new(&s2);
    assert_eq!(id2.bootstrap(None).await.unwrap(), None);
    assert_eq!(id2.bootstrap(Some("another password".into())).await.unwrap(), None);
    assert_eq!(id2.list_users(1, 100, None).await.unwrap().total, 1);
    assert_eq!(raw_rows(&url, "SELECT password_hash FROM admin_user").await[0][0], Some(hash));
    assert_eq!(
        raw_rows(&url, "SELECT setting_value FROM admin_setting WHERE setting_key = 'session_secret'").await,
        secret
    );
    // Sessions issued before the restart stay valid: the secret is the stored one.
    assert_eq!(id2.authenticate(&token).await.unwrap().username, "admin");
    assert_eq!(id2.list_roles(1, 100).await.unwrap().total, 3);
    s2.close().await;
}

async fn bootstrap_with_a_configured_password(s: Store, url: String) {
    let id = Identity::new(&s);
    assert!(matches!(id.bootstrap(Some("admin".into())).await, Err(IdentityError::Invalid(_))), "too short");
    assert!(raw_rows(&url, "SELECT id FROM admin_user").await.is_empty(), "a refused bootstrap wrote a user");
    assert_eq!(id.bootstrap(Some(PASSWORD.into())).await.unwrap(), None, "a configured password is not echoed");
    id.login("admin", PASSWORD, ip("10.0.0.1"), &limiter(), Duration::from_secs(60)).await.unwrap();
    let hash = raw_rows(&url, "SELECT password_hash FROM admin_user").await[0][0].clone().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(PASSWORD));
}

async fn concurrent_bootstraps_create_one_admin(s: Store, url: String) {
    // Two processes starting at once on one database.
    let s2 = Store::open(&url).await.unwrap();
    let (a, b) = (Identity::new(&s), Identity::new(&s2));
    let (ra, rb) = tokio::join!(a.bootstrap(None), b.bootstrap(None));
    let generated: Vec<String> = [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
    assert_eq!(generated.len(), 1, "exactly one start reports a password");
    assert_eq!(raw_rows(&url, "SELECT id FROM admin_user").await.len(), 1);
    assert_eq!(raw_rows(&url, "SELECT name FROM admin_role").await.len(), 3);
    assert_eq!(
        raw_rows(&url, "SELECT setting_value FROM admin_setting WHERE setting_key = 'session_secret'").await.len(),
        1
    );
    b.login("admin", &generated[0], ip("10.0.0.1"), &limiter(), Duration::from_secs(60)).await.unwrap();
    s2.close().await;
}

async fn login_succeeds_fails_and_throttles(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    id.create_user(new_user("bob", &["viewer"]), ACTOR).await.unwrap();
    let ttl = Duration::from_secs(300);
    let l = limiter();

    let (token, claims) = id.login("bob", PASSWORD, ip("10.0.0.1"), &l, ttl).await.unwrap();
    assert_eq!(claims.sub, "bob");
    assert_eq!(claims.exp - claims.iat, 300);
    assert!(!token.is_empty());

    // Wrong password and unknown user answer the same.
    let wrong = id.login("bob", "not the password", ip("10.0.0.1"), &l, ttl).await.unwrap_err();
    let unknown = id.login("nobody", PASSWORD, ip("10.0.0.1"), &l, ttl).await.unwrap_err();
    assert!(matches!(wrong, IdentityError::Auth(AuthError::BadCredentials)), "{wrong:?}");
    assert_eq!(wrong.to_string(), unknown.to_string());

    // Per user: three failures for admin (from different addresses) lock admin out everywhere,
    // even with the right password.
    let l = limiter();
    for (i, addr) in ["10.1.0.1", "10.1.0.2", "10.1.0.3"].iter().enumerate() {
        let e = id.login("admin", &format!("guess {i} wrong"), ip(addr), &l, ttl).await.unwrap_err();
        assert!(matches!(e, IdentityError::Auth(AuthError::BadCredentials)), "{e:?}");
    }
    let e = id.login("admin", PASSWORD, ip("10.1.0.9"), &l, ttl).await.unwrap_err();
    assert!(matches!(e, IdentityError::Auth(AuthError::Throttled { .. })), "{e:?}");
    // Other users are unaffected.
    id.login("bob", PASSWORD, ip("10.1.0.9"), &l, ttl).await.unwrap();

    // Per address: spraying over many users from one address locks the address.
    let l = limiter();
    for user in ["u1", "u2", "u3"] {
        id.login(user, "whatever123", ip("192.0.2.7"), &l, ttl).await.unwrap_err();
    }
    let e = id.login("bob", PASSWORD, ip("192.0.2.7"), &l, ttl).await.unwrap_err();
    assert!(matches!(e, IdentityError::Auth(AuthError::Throttled { .. })), "{e:?}");
    id.login("bob", PASSWORD, ip("192.0.2.8"), &l, ttl).await.unwrap();

    // A success clears the user's failures.
    let l = limiter();
    for _ in 0..2 {
        id.login("bob", "wrong password", ip("10.2.0.1"), &l, ttl).await.unwrap_err();
    }
    id.login("bob", PASSWORD, ip("10.2.0.2"), &l, ttl).await.unwrap();
    for _ in 0..2 {
        id.login("bob", "wrong password", ip("10.2.0.3"), &l, ttl).await.unwrap_err();
    }
    id.login("bob", PASSWORD, ip("10.2.0.4"), &l, ttl).await.unwrap();
}

async fn disabled_users_cannot_log_in(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let carol = id.create_user(new_user("carol", &["editor"]), ACTOR).await.unwrap();
    let l = limiter();
    let (token, _) = id.login("carol", PASSWORD, ip("10.0.0.1"), &l, Duration::from_secs(60)).await.unwrap();
    let update = UserUpdate { enabled: Some(false), ..Default::default() };
    id.update_user(&carol.id, carol.version, update, ACTOR).await.unwrap();
    let e = id.login("carol", PASSWORD, ip("10.0.0.1"), &l, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(e, IdentityError::Auth(AuthError::BadCredentials)), "{e:?}");
    // Her session stops working at once too.
    assert!(is_invalid_token(id.authenticate(&token).await));
}

async fn sessions_authenticate_and_forgeries_are_refused(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let dave = id.create_user(new_user("dave", &["viewer"]), ACTOR).await.unwrap();
    let (token, claims) =
        id.login("dave", PASSWORD, ip("10.0.0.1"), &limiter(), Duration::from_secs(900)).await.unwrap();
    let p = id.authenticate(&format!(" {token} ")).await.unwrap();
    assert_eq!(p.username, "dave");
    assert_eq!(p.roles, strings(&["viewer"]));
    assert_eq!(p.via, Via::Session { jti: claims.jti.clone(), expires_at: claims.exp });

    // Roles are read at each request, not taken from the token.
    let upd = UserUpdate { roles: Some(strings(&["editor"])), ..Default::default() };
    let dave = id.update_user(&dave.id, dave.version, upd, ACTOR).await.unwrap();
    assert_eq!(id.authenticate(&token).await.unwrap().roles, strings(&["editor"]));

    let keys = id.session_keys().await.unwrap();
    let now = unix_now();
    // Expired (this install's secret, so only the expiry is wrong).
    let (expired, _) = keys.issue("dave", &strings(&["editor"]), now - 3600, 60).unwrap();
    assert!(is_invalid_token(id.authenticate(&expired).await));
    // Signed with another secret.
    let other = SessionKeys::from_secret(&SessionKeys::generate_secret()).unwrap();
    let (forged, _) = other.issue("admin", &strings(&["admin"]), now, 900).unwrap();
    assert!(is_invalid_token(id.authenticate(&forged).await));
    // alg: none.
    let payload = format!(r#"{{"sub":"admin","roles":["admin"],"exp":{},"iat":{now},"jti":"x"}}"#, now + 900);
    let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(payload.as_bytes()));
    assert!(is_invalid_token(id.authenticate(&none).await));
    // A valid signature over a different payload.
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64url(payload.as_bytes()), parts[2]);
    assert!(is_invalid_token(id.authenticate(&tampered).await));
    // Garbage and empty.
    assert!(is_invalid_token(id.authenticate("not.a.jwt").await));
    assert!(matches!(id.authenticate("  ").await, Err(IdentityError::Auth(AuthError::Missing))));
    // A well-signed token for a user who no longer exists.
    let (ghost, _) = keys.issue("ghost", &strings(&["admin"]), now, 900).unwrap();
    assert!(is_invalid_token(id.authenticate(&ghost).await));
    id.delete_user(&dave.id, dave.version, ACTOR).await.unwrap();
    assert!(is_invalid_token(id.authenticate(&token).await), "a deleted user's session still works");
}

async fn api_tokens_authenticate_until_revoked(s: Store, url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let ops = id.create_user(new_user("ops", &["editor", "viewer"]), ACTOR).await.unwrap();
    let spec = |roles: Option<&[&str]>| NewToken {
        name: "ci deploys".into(),
        owner: "ops".into(),
        roles: roles.map(strings),
        expires_in_secs: None,
    };

    let (plain, info) = id.create_token(spec(Some(&["viewer"])), ACTOR).await.unwrap();
    assert!(plain.starts_with("tgw_"), "{plain}");
    assert_eq!((info.owner.as_str(), info.roles.clone()), ("ops", Some(strings(&["viewer"]))));
    assert_eq!(info.last_used_at, None);
    let p = id.authenticate(&plain).await.unwrap();
    assert_eq!(p.username, "ops");
    assert_eq!(p.roles, strings(&["viewer"]), "narrowed to the token's roles");
    assert_eq!(p.via, Via::ApiToken { id: info.id.clone() });
    assert!(id.get_token(&info.id).await.unwrap().last_used_at.is_some(), "last use is recorded");
    // Stored as SHA-256 hex of the plaintext only.
    let rows = raw_rows(&url, "SELECT token_hash FROM api_token").await;
    assert_eq!(rows, vec![vec![Some(hash_api_token(&plain))]]);

    // Without roles: the owner's.
    let (all_roles, _) = id.create_token(spec(None), ACTOR).await.unwrap();
    assert_eq!(id.authenticate(&all_roles).await.unwrap().roles, strings(&["editor", "viewer"]));
    // Not more than the owner holds.
    assert!(matches!(id.create_token(spec(Some(&["admin"])), ACTOR).await, Err(IdentityError::Invalid(_))));
    let nobody = NewToken { owner: "nobody".into(), ..spec(None) };
    assert!(matches!(id.create_token(nobody, ACTOR).await, Err(IdentityError::Invalid(_))));

    // Unknown and malformed tokens.
    assert!(is_invalid_token(id.authenticate("tgw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await));
    assert!(is_invalid_token(id.authenticate(&plain[..plain.len() - 1]).await));

    // Revoked: refused at once; revoking again changes nothing.
    let revoked = id.revoke_token(&info.id, ACTOR).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(is_invalid_token(id.authenticate(&plain).await));
    assert_eq!(id.revoke_token(&info.id, ACTOR).await.unwrap(), revoked);
    assert!(matches!(id.revoke_token("nope", ACTOR).await, Err(IdentityError::NotFound { .. })));
    // The other token is unaffected until its owner is disabled.
    assert_eq!(id.authenticate(&all_roles).await.unwrap().username, "ops");
    let upd = UserUpdate { enabled: Some(false), ..Default::default() };
    let ops = id.update_user(&ops.id, ops.version, upd, ACTOR).await.unwrap();
    assert!(is_invalid_token(id.authenticate(&all_roles).await));
    // Deleting the owner deletes its tokens.
    id.delete_user(&ops.id, ops.version, ACTOR).await.unwrap();
    assert!(raw_rows(&url, "SELECT id FROM api_token").await.is_empty());
}

async fn expired_api_tokens_are_refused(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let spec = |secs| NewToken { name: "short".into(), owner: "admin".into(), roles: None, expires_in_secs: secs };
    assert!(matches!(id.create_token(spec(Some(0)), ACTOR).await, Err(IdentityError::Invalid(_))));
    let (plain, info) = id.create_token(spec(Some(1)), ACTOR).await.unwrap();
    assert!(info.expires_at.is_some());
    assert_eq!(id.authenticate(&plain).await.unwrap().roles, strings(&["admin"]));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(is_invalid_token(id.authenticate(&plain).await));
}

async fn token_listings_never_expose_secrets(s: Store, url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let mut secrets = Vec::new();
    for i in 0..3 {
        let t = NewToken { name: format!("t{i}"), owner: "admin".into(), roles: None, expires_in_secs: Some(3600) };
        let (plain, info) = id.create_token(t, ACTOR).await.unwrap();
        let shown = format!("{} {:?}", serde_json::to_string(&info).unwrap(), info);
        assert!(!shown.contains(&plain) && !shown.contains(&hash_api_token(&plain)));
        secrets.push(plain);
    }
    let page = id.list_tokens(1, 2, None).await.unwrap();
    assert_eq!((page.total, page.items.len()), (3, 2));
    let all = id.list_tokens(1, 100, Some("admin")).await.unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(id.list_tokens(1, 100, Some("nobody")).await.unwrap().total, 0);
    let shown = format!("{} {:?} {:?}", serde_json::to_string(&all).unwrap(), all, page);
    assert!(!shown.contains("token_hash") && !shown.contains("tokenHash"));
    // The audit log and every stored column hold neither the plaintext; the hash only in token_hash.
    let audit = format!("{:?}", s.audit(1, 1000, None).await.unwrap());
    let stored = everything_stored(&url).await;
    for plain in &secrets {
        let hash = hash_api_token(plain);
        assert!(!shown.contains(plain) && !shown.contains(&hash));
        assert!(!audit.contains(plain) && !audit.contains(&hash));
        assert!(!stored.contains(plain));
        assert_eq!(stored.matches(&hash).count(), 1);
    }
}

async fn users_crud_paging_and_stale_versions(s: Store, url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let erin = id.create_user(new_user("erin", &["viewer", "editor", "viewer"]), ACTOR).await.unwrap();
    assert_eq!((erin.version, erin.roles.clone()), (1, strings(&["editor", "viewer"])));
    assert_eq!(id.get_user(&erin.id).await.unwrap(), erin);
    assert_eq!(id.find_user("erin").await.unwrap(), erin);
    for name in ["frank", "grace", "heidi"] {
        id.create_user(new_user(name, &[]), ACTOR).await.unwrap();
    }
    // Unique regardless of case; roles must exist; names and passwords are checked.
    assert!(matches!(id.create_user(new_user("Erin", &[]), ACTOR).await, Err(IdentityError::AlreadyExists { .. })));
    let e = id.create_user(new_user("ivan", &["viewer", "wizard"]), ACTOR).await.unwrap_err();
    match e {
        IdentityError::Invalid(v) => assert_eq!(v.0[0].path, "roles[1]"),
        other => panic!("{other:?}"),
    }
    let bad = serde_json::from_value::<NewUser>(serde_json::json!({"username": "bad name", "password": "x"})).unwrap();
    match id.create_user(bad, ACTOR).await.unwrap_err() {
        IdentityError::Invalid(v) => assert_eq!(v.0.len(), 2, "{v}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(id.find_user("ivan").await, Err(IdentityError::NotFound { .. })));

    // Paging (by username) and filtering.
    let p1 = id.list_users(1, 2, None).await.unwrap();
    let p3 = id.list_users(3, 2, None).await.unwrap();
    assert_eq!(p1.total, 5);
    let names = |p: &tigateway_admin::store::Page<tigateway_admin::identity::User>| {
        p.items.iter().map(|u| u.username.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&p1), strings(&["admin", "erin"]));
    assert_eq!(names(&p3), strings(&["heidi"]));
    assert_eq!(names(&id.list_users(1, 10, Some("RA")).await.unwrap()), strings(&["frank", "grace"]));
    assert_eq!(id.list_users(1, 10, Some("%")).await.unwrap().total, 0, "wildcards are literal");

    // Update with the current version; then the old one is stale and nothing is written.
    let upd = UserUpdate { password: Some("a brand new password".into()), ..Default::default() };
    let erin2 = id.update_user(&erin.id, 1, upd, ACTOR).await.unwrap();
    assert_eq!(erin2.version, 2);
    let hash_after = raw_rows(&url, "SELECT password_hash FROM admin_user WHERE username = 'erin'").await[0][0].clone();
    assert!(verify_password("a brand new password", hash_after.as_deref().unwrap()));
    let stale = UserUpdate { password: Some("yet another password".into()), enabled: Some(false), roles: Some(vec![]) };
    match id.update_user(&erin.id, 1, stale, ACTOR).await {
        Err(IdentityError::Conflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(id.get_user(&erin.id).await.unwrap(), erin2, "a stale update wrote something");
    let hash_now = raw_rows(&url, "SELECT password_hash FROM admin_user WHERE username = 'erin'").await[0][0].clone();
    assert_eq!(hash_now, hash_after);
    id.login("erin", "a brand new password", ip("10.0.0.1"), &limiter(), Duration::from_secs(60)).await.unwrap();
    let e = id.update_user(&erin.id, 2, UserUpdate { roles: Some(strings(&["ghost"])), ..Default::default() }, ACTOR);
    assert!(matches!(e.await, Err(IdentityError::Invalid(_))));

    // Delete: stale refused, current accepted, then gone.
    assert!(matches!(id.delete_user(&erin.id, 1, ACTOR).await, Err(IdentityError::Conflict { current_version: 2 })));
    id.delete_user(&erin.id, 2, ACTOR).await.unwrap();
    assert!(matches!(id.get_user(&erin.id).await, Err(IdentityError::NotFound { .. })));
    assert!(matches!(id.delete_user(&erin.id, 2, ACTOR).await, Err(IdentityError::NotFound { .. })));

    // Audited with the actor, without password hashes.
    let audit = s.audit(1, 1000, None).await.unwrap();
    let erin_rows: Vec<_> =
        audit.items.iter().filter(|a| a.entity_type == "admin_user" && a.entity_id == erin.id).collect();
    let actions: Vec<&str> = erin_rows.iter().rev().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    assert!(erin_rows.iter().all(|a| a.actor == ACTOR));
    assert!(!format!("{audit:?}").contains("$argon2"));
}

async fn the_last_admin_cannot_be_removed(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let admin = id.find_user("admin").await.unwrap();
    let disable = || UserUpdate { enabled: Some(false), ..Default::default() };
    assert!(matches!(id.update_user(&admin.id, admin.version, disable(), ACTOR).await, Err(IdentityError::Invalid(_))));
    let demote = UserUpdate { roles: Some(strings(&["viewer"])), ..Default::default() };
    assert!(matches!(id.update_user(&admin.id, admin.version, demote, ACTOR).await, Err(IdentityError::Invalid(_))));
    assert!(matches!(id.delete_user(&admin.id, admin.version, ACTOR).await, Err(IdentityError::Invalid(_))));
    assert_eq!(id.find_user("admin").await.unwrap(), admin, "a refused change wrote something");
    // With a second admin, the first may go.
    id.create_user(new_user("root2", &["admin"]), ACTOR).await.unwrap();
    id.delete_user(&admin.id, admin.version, ACTOR).await.unwrap();
}

async fn builtin_roles_are_protected(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    for name in ["admin", "editor", "viewer"] {
        let r = id.get_role(name).await.unwrap();
        assert!(r.builtin);
        assert!(matches!(id.delete_role(name, r.version, ACTOR).await, Err(IdentityError::Invalid(_))));
        let upd = id.update_role(name, r.version, &[perm("users", "write")], ACTOR).await;
        assert!(matches!(upd, Err(IdentityError::Invalid(_))));
        assert_eq!(id.get_role(name).await.unwrap(), r);
    }
    let admin = id.get_role("admin").await.unwrap();
    assert_eq!(admin.permissions.len(), Resource::ALL.len());

    // Custom roles: names unique, permissions checked, no deleting a held role, stale versions.
    let ops = id.create_role("ops", &[perm("routes", "write")], ACTOR).await.unwrap();
    assert!(!ops.builtin);
    assert!(matches!(id.create_role("OPS", &[], ACTOR).await, Err(IdentityError::AlreadyExists { .. })));
    match id.create_role("x", &[perm("routes", "delete"), perm("root", "read")], ACTOR).await {
        Err(IdentityError::Invalid(v)) => assert_eq!(v.0.len(), 2, "{v}"),
        other => panic!("{other:?}"),
    }
    let u = id.create_user(new_user("pat", &["ops"]), ACTOR).await.unwrap();
    assert!(matches!(id.delete_role("ops", ops.version, ACTOR).await, Err(IdentityError::Invalid(_))));
    id.update_user(&u.id, u.version, UserUpdate { roles: Some(vec![]), ..Default::default() }, ACTOR).await.unwrap();
    assert!(matches!(id.delete_role("ops", 7, ACTOR).await, Err(IdentityError::Conflict { current_version: 1 })));
    id.delete_role("ops", ops.version, ACTOR).await.unwrap();
    assert!(matches!(id.get_role("ops").await, Err(IdentityError::NotFound { .. })));
}

async fn rbac_reflects_custom_roles(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let auditor = id.create_role("auditor", &[perm("audit", "read"), perm("appAuth", "write")], ACTOR).await.unwrap();
    let who = strings(&["auditor"]);
    let rbac = id.rbac().await.unwrap();
    assert!(rbac.allows(&who, Resource::Audit, Action::Read));
    assert!(rbac.allows(&who, Resource::AppAuth, Action::Read), "write implies read");
    assert!(rbac.allows(&who, Resource::AppAuth, Action::Write));
    assert!(!rbac.allows(&who, Resource::Audit, Action::Write));
    assert!(!rbac.allows(&who, Resource::Users, Action::Read));
    // Built-ins come from the store as well.
    assert!(rbac.allows(&strings(&["admin"]), Resource::Users, Action::Write));
    assert!(!rbac.allows(&strings(&["viewer"]), Resource::Rules, Action::Write));

    // An update shows at once; a stale one is refused.
    let updated = id.update_role("auditor", auditor.version, &[perm("users", "read")], ACTOR).await.unwrap();
    assert_eq!(updated.version, 2);
    let stale = id.update_role("auditor", auditor.version, &[perm("users", "write")], ACTOR).await;
    assert!(matches!(stale, Err(IdentityError::Conflict { current_version: 2 })));
    let rbac = id.rbac().await.unwrap();
    assert!(rbac.allows(&who, Resource::Users, Action::Read));
    assert!(!rbac.allows(&who, Resource::Audit, Action::Read));
    assert!(!rbac.allows(&who, Resource::Users, Action::Write));

    id.delete_role("auditor", 2, ACTOR).await.unwrap();
    assert!(!id.rbac().await.unwrap().allows(&who, Resource::Users, Action::Read));
}

async fn rbac_is_answered_from_the_cache(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let first = id.rbac().await.unwrap();
    assert!(Arc::ptr_eq(&first, &id.rbac().await.unwrap()), "the second call loaded the roles again");
    assert!(Arc::ptr_eq(&first, &id.clone().rbac().await.unwrap()), "a clone does not share the cache");

    // Past the refresh bound with nothing written: the store is asked whether anything changed,
    // and the copy is kept (not loaded again).
    tokio::time::sleep(RBAC_REFRESH + Duration::from_millis(100)).await;
    assert!(Arc::ptr_eq(&first, &id.rbac().await.unwrap()), "an unchanged store made the roles load again");

    // With the store gone, the copy answers until the bound; after it, the store's error comes
    // through (the websocket re-check treats that as "unavailable" and disconnects nobody).
    s.close().await;
    let cached = id.rbac().await.expect("the cached roles answer without the store");
    assert!(cached.allows(&strings(&["admin"]), Resource::Users, Action::Write));
    tokio::time::sleep(RBAC_REFRESH + Duration::from_millis(100)).await;
    assert!(matches!(id.rbac().await, Err(IdentityError::Unavailable(_))));
}

async fn rbac_sees_a_role_change_of_this_process_at_once(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let who = strings(&["auditor"]);
    assert!(!id.rbac().await.unwrap().allows(&who, Resource::Audit, Action::Read), "unknown roles grant nothing");

    let auditor = id.create_role("auditor", &[perm("audit", "read")], ACTOR).await.unwrap();
    assert!(id.rbac().await.unwrap().allows(&who, Resource::Audit, Action::Read), "a new role is not seen");
    // Through a clone (as the API's state holds one): the same cache is invalidated.
    let clone = id.clone();
    clone.update_role("auditor", auditor.version, &[perm("users", "read")], ACTOR).await.unwrap();
    let rbac = id.rbac().await.unwrap();
    assert!(rbac.allows(&who, Resource::Users, Action::Read) && !rbac.allows(&who, Resource::Audit, Action::Read));
    clone.delete_role("auditor", auditor.version + 1, ACTOR).await.unwrap();
    assert!(!id.rbac().await.unwrap().allows(&who, Resource::Users, Action::Read), "a deleted role still grants");
    // A refused write changes nothing that is seen.
    assert!(id.update_role("viewer", 1, &[perm("users", "write")], ACTOR).await.is_err());
    assert!(!id.rbac().await.unwrap().allows(&strings(&["viewer"]), Resource::Users, Action::Write));
}

async fn rbac_sees_another_process_within_the_refresh_bound(s: Store, url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let auditor = id.create_role("auditor", &[perm("audit", "read")], ACTOR).await.unwrap();
    let who = strings(&["auditor"]);
    // Another admin process: its own pool on the same database (the same SQLite file).
    let s2 = Store::open(&url).await.unwrap();
    let other = Identity::new(&s2);

    let loaded = Instant::now();
    assert!(id.rbac().await.unwrap().allows(&who, Resource::Audit, Action::Read));
    other.update_role("auditor", auditor.version, &[perm("users", "read")], ACTOR).await.unwrap();
    let written = Instant::now();
    let first = id.rbac().await.unwrap();
    if loaded.elapsed() < RBAC_REFRESH {
        // By design this process has not asked the store yet.
        assert!(first.allows(&who, Resource::Audit, Action::Read), "the cache was not used");
    }
    loop {
        let rbac = id.rbac().await.unwrap();
        if rbac.allows(&who, Resource::Users, Action::Read) {
            assert!(!rbac.allows(&who, Resource::Audit, Action::Read));
            break;
        }
        // The bound, plus room for one query on a busy machine.
        assert!(written.elapsed() < RBAC_REFRESH + Duration::from_secs(1), "not seen within {RBAC_REFRESH:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s2.close().await;
}

#[test]
fn base64url_helper_matches_known_vectors() {
    assert_eq!(b64url(b""), "");
    assert_eq!(b64url(b"f"), "Zg");
    assert_eq!(b64url(b"fo"), "Zm8");
    assert_eq!(b64url(b"foo"), "Zm9v");
    assert_eq!(b64url(b"foob"), "Zm9vYg");
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}

async fn sessions_are_revoked_by_logout_password_change_and_rotation(s: Store, _url: String) {
    let id = Identity::new(&s);
    id.bootstrap(Some(PASSWORD.into())).await.unwrap();
    let erin = id.create_user(new_user("erin", &["viewer"]), ACTOR).await.unwrap();
    let l = limiter();
    let ttl = Duration::from_secs(900);
    let login = || async { id.login("erin", PASSWORD, ip("10.0.0.1"), &l, ttl).await.unwrap().0 };

    // Logout ends that session only.
    let (a, b) = (login().await, login().await);
    let pa = id.authenticate(&a).await.unwrap();
    id.logout(&pa).await.unwrap();
    assert!(is_invalid_token(id.authenticate(&a).await), "a logged-out session still works");
    assert_eq!(id.authenticate(&b).await.unwrap().username, "erin");

    // Revoking a user's sessions ends all of them; a login right after (same second) works.
    id.revoke_sessions(&erin.id, ACTOR).await.unwrap();
    assert!(is_invalid_token(id.authenticate(&b).await), "revoke_sessions left a session working");
    let c = login().await;
    assert_eq!(id.authenticate(&c).await.unwrap().username, "erin");

    // A password change does the same; API tokens are not sessions and keep working.
    let (api_token, _) = id
        .create_token(NewToken { name: "ci".into(), owner: "erin".into(), roles: None, expires_in_secs: None }, ACTOR)
        .await
        .unwrap();
    let upd = UserUpdate { password: Some("another long password".into()), ..Default::default() };
    let erin = id.update_user(&erin.id, erin.version, upd, ACTOR).await.unwrap();
    assert!(is_invalid_token(id.authenticate(&c).await), "a session survived a password change");
    assert_eq!(id.authenticate(&api_token).await.unwrap().username, "erin");

    // Rotating the secret ends every session, but not API tokens.
    let d = id.login("erin", "another long password", ip("10.0.0.1"), &l, ttl).await.unwrap().0;
    assert!(id.authenticate(&d).await.is_ok());
    id.rotate_session_secret(ACTOR).await.unwrap();
    assert!(is_invalid_token(id.authenticate(&d).await), "a session survived secret rotation");
    assert!(id.authenticate(&api_token).await.is_ok());
    // Another process on the same database picks up the new secret within KEYS_REFRESH.
    let other = Identity::new(&s);
    let e = id.login("erin", "another long password", ip("10.0.0.1"), &l, ttl).await.unwrap().0;
    assert!(other.authenticate(&e).await.is_ok());
    let audit = s.audit(1, 1000, None).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|a| a.operation.as_str()).collect();
    assert!(actions.contains(&"revoke-sessions") && actions.contains(&"rotate"), "{actions:?}");
    let _ = erin;
}

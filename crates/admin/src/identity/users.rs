//! Admin users. A user's password hash never leaves this module.

use serde::{Deserialize, Serialize};
use tigateway_model::{ValidationError, ValidationErrors};

use super::{
    audit, check_name, check_password, finish_write, hash_blocking, new_id, Cols, Identity, IdentityError, Result,
};
use crate::store::db::{Col, Db, Tx, Val};
use crate::store::{contains_pattern, now, Page};

const KIND: &str = "admin_user";

/// A user as the API shows it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    pub enabled: bool,
    /// Sorted by name.
    pub roles: Vec<String>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub roles: Vec<String>,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("roles", &self.roles)
            .finish()
    }
}

/// What to change; `None` keeps the current value. `roles` replaces the whole set.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserUpdate {
    pub password: Option<String>,
    pub enabled: Option<bool>,
    pub roles: Option<Vec<String>>,
}

impl std::fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserUpdate")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("enabled", &self.enabled)
            .field("roles", &self.roles)
            .finish()
    }
}

const USER_COLS: &str = "id, username, enabled, version, created_at, updated_at";
const USER_COL_TYPES: [Col; 6] = [Col::Text, Col::Text, Col::Int, Col::Int, Col::Text, Col::Text];

fn user_from_row(row: Vec<Val>, roles: Vec<String>) -> User {
    let mut c = Cols::new(row);
    User {
        id: c.text(),
        username: c.text(),
        enabled: c.int() != 0,
        version: c.int(),
        created_at: c.text(),
        updated_at: c.text(),
        roles,
    }
}

pub(super) async fn roles_of(db: &Db, user_id: &str) -> Result<Vec<String>> {
    Ok(db
        .fetch(
            "SELECT role_name FROM admin_user_role WHERE user_id = ? ORDER BY role_name",
            &[user_id.into()],
            &[Col::Text],
        )
        .await?
        .into_iter()
        .map(|r| Cols::new(r).text())
        .collect())
}

async fn roles_of_tx(tx: &mut Tx, user_id: &str) -> Result<Vec<String>> {
    Ok(tx
        .fetch(
            "SELECT role_name FROM admin_user_role WHERE user_id = ? ORDER BY role_name",
            &[user_id.into()],
            &[Col::Text],
        )
        .await?
        .into_iter()
        .map(|r| Cols::new(r).text())
        .collect())
}

pub(super) async fn get_tx(tx: &mut Tx, id: &str) -> Result<User> {
    let row = tx
        .fetch(&format!("SELECT {USER_COLS} FROM admin_user WHERE id = ?"), &[id.into()], &USER_COL_TYPES)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: id.into() })?;
    let roles = roles_of_tx(tx, id).await?;
    Ok(user_from_row(row, roles))
}

/// Sorted, deduplicated role names, each of which must exist.
async fn check_roles(tx: &mut Tx, roles: &[String]) -> Result<Vec<String>> {
    let mut errs = ValidationErrors::default();
    for (i, r) in roles.iter().enumerate() {
        let found = !tx
            .fetch("SELECT name FROM admin_role WHERE name = ?", &[r.as_str().into()], &[Col::Text])
            .await?
            .is_empty();
        if !found {
            errs.0.push(ValidationError::new(format!("roles[{i}]"), format!("role {r:?} does not exist")));
        }
    }
    errs.into_result().map_err(IdentityError::Invalid)?;
    let mut out = roles.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Enabled users holding the `admin` role.
async fn enabled_admins(tx: &mut Tx) -> Result<i64> {
    let rows = tx
        .fetch(
            "SELECT COUNT(*) FROM admin_user u JOIN admin_user_role r ON r.user_id = u.id \
             WHERE r.role_name = 'admin' AND u.enabled = 1",
            &[],
            &[Col::Int],
        )
        .await?;
    Ok(rows.into_iter().next().map(|r| Cols::new(r).int()).unwrap_or(0))
}

fn lockout() -> IdentityError {
    super::invalid("roles", "the change would leave no enabled user with the admin role")
}

/// Inserts a user with an already hashed password and existing roles.
pub(super) async fn insert(
    tx: &mut Tx,
    username: &str,
    password_hash: &str,
    enabled: bool,
    roles: &[String],
    now_s: &str,
) -> Result<User> {
    let id = new_id();
    tx.exec(
        "INSERT INTO admin_user (id, username, password_hash, enabled, version, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 1, ?, ?)",
        &[
            id.as_str().into(),
            username.into(),
            password_hash.into(),
            Val::Int(enabled as i64),
            now_s.into(),
            now_s.into(),
        ],
    )
    .await?;
    for r in roles {
        tx.exec(
            "INSERT INTO admin_user_role (user_id, role_name) VALUES (?, ?)",
            &[id.as_str().into(), r.as_str().into()],
        )
        .await?;
    }
    get_tx(tx, &id).await
}

impl Identity {
    /// Creates a user; usernames are unique regardless of case.
    pub async fn create_user(&self, new: NewUser, actor: &str) -> Result<User> {
        let mut errs = ValidationErrors::default();
        check_name("username", &new.username, &mut errs);
        check_password("password", &new.password, &mut errs);
        errs.into_result().map_err(IdentityError::Invalid)?;
        let hash = hash_blocking(new.password).await?;
        let mut tx = self.begin_write().await?;
        let r = async {
            let taken = !tx
                .fetch(
                    "SELECT id FROM admin_user WHERE LOWER(username) = LOWER(?)",
                    &[new.username.as_str().into()],
                    &[Col::Text],
                )
                .await?
                .is_empty();
            if taken {
                return Err(IdentityError::AlreadyExists { kind: KIND, id: new.username.clone() });
            }
            let roles = check_roles(&mut tx, &new.roles).await?;
            let now_s = now();
            let user = insert(&mut tx, &new.username, &hash, new.enabled, &roles, &now_s).await?;
            audit(&mut tx, actor, "create", "create", KIND, &user.id, None, Some(&user), &now_s).await?;
            Ok(user)
        }
        .await;
        finish_write(tx, r).await
    }

    pub async fn get_user(&self, id: &str) -> Result<User> {
        let row = self
            .db
            .fetch(&format!("SELECT {USER_COLS} FROM admin_user WHERE id = ?"), &[id.into()], &USER_COL_TYPES)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: id.into() })?;
        let roles = roles_of(&self.db, id).await?;
        Ok(user_from_row(row, roles))
    }

    /// By exact username.
    pub async fn find_user(&self, username: &str) -> Result<User> {
        let row = self
            .db
            .fetch(
                &format!("SELECT {USER_COLS} FROM admin_user WHERE username = ?"),
                &[username.into()],
                &USER_COL_TYPES,
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: username.into() })?;
        let id = row.first().cloned().and_then(Val::text).unwrap_or_default();
        let roles = roles_of(&self.db, &id).await?;
        Ok(user_from_row(row, roles))
    }

    /// Pages are 1-based, `page_size` is clamped to 1..=1000; `username` filters case-insensitively
    /// by substring. Ordered by username.
    pub async fn list_users(&self, page: u32, page_size: u32, username: Option<&str>) -> Result<Page<User>> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, 1000);
        let filter = "LOWER(username) LIKE ? ESCAPE '!'";
        let pattern = Val::Text(contains_pattern(username));
        let total = self
            .db
            .fetch(
                &format!("SELECT COUNT(*) FROM admin_user WHERE {filter}"),
                std::slice::from_ref(&pattern),
                &[Col::Int],
            )
            .await?
            .into_iter()
            .next()
            .map(|r| Cols::new(r).int())
            .unwrap_or(0);
        let rows = self
            .db
            .fetch(
                &format!("SELECT {USER_COLS} FROM admin_user WHERE {filter} ORDER BY username LIMIT ? OFFSET ?"),
                &[pattern, Val::Int(page_size as i64), Val::Int((page as i64 - 1) * page_size as i64)],
                &USER_COL_TYPES,
            )
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.first().cloned().and_then(Val::text).unwrap_or_default();
            let roles = roles_of(&self.db, &id).await?;
            items.push(user_from_row(row, roles));
        }
        Ok(Page { items, total, page, page_size })
    }

    /// Changes password, enabled flag and/or roles if `expected_version` is current. Refused when it
    /// would leave no enabled user with the `admin` role.
    pub async fn update_user(&self, id: &str, expected_version: i64, update: UserUpdate, actor: &str) -> Result<User> {
        if let Some(p) = &update.password {
            let mut errs = ValidationErrors::default();
            check_password("password", p, &mut errs);
            errs.into_result().map_err(IdentityError::Invalid)?;
        }
        let hash = match update.password {
            Some(p) => Some(hash_blocking(p).await?),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        let r = async {
            let before = get_tx(&mut tx, id).await?;
            if before.version != expected_version {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            let admins_before = enabled_admins(&mut tx).await?;
            let roles = match &update.roles {
                Some(r) => Some(check_roles(&mut tx, r).await?),
                None => None,
            };
            let now_s = now();
            let enabled = update.enabled.unwrap_or(before.enabled);
            let mut sql = String::from("UPDATE admin_user SET enabled = ?, version = ?, updated_at = ?");
            let mut args = vec![Val::Int(enabled as i64), Val::Int(before.version + 1), now_s.as_str().into()];
            if let Some(h) = &hash {
                // A new password ends every session opened with the old one.
                sql.push_str(", password_hash = ?, sessions_after = ");
                sql.push_str(super::NEXT_CUTOFF);
                args.push(h.as_str().into());
                args.push(Val::Int(super::unix_now() as i64));
                args.push(Val::Int(super::unix_now() as i64));
            }
            sql.push_str(" WHERE id = ? AND version = ?");
            args.push(id.into());
            args.push(Val::Int(before.version));
            if tx.exec(&sql, &args).await? != 1 {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            if let Some(roles) = roles {
                tx.exec("DELETE FROM admin_user_role WHERE user_id = ?", &[id.into()]).await?;
                for r in &roles {
                    tx.exec(
                        "INSERT INTO admin_user_role (user_id, role_name) VALUES (?, ?)",
                        &[id.into(), r.as_str().into()],
                    )
                    .await?;
                }
            }
            if admins_before > 0 && enabled_admins(&mut tx).await? == 0 {
                return Err(lockout());
            }
            let after = get_tx(&mut tx, id).await?;
            audit(&mut tx, actor, "update", "update", KIND, id, Some(&before), Some(&after), &now_s).await?;
            Ok(after)
        }
        .await;
        finish_write(tx, r).await
    }

    /// Deletes a user with their role grants and API tokens. Refused when it would leave no enabled
    /// user with the `admin` role.
    pub async fn delete_user(&self, id: &str, expected_version: i64, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = async {
            let before = get_tx(&mut tx, id).await?;
            if before.version != expected_version {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            let admins_before = enabled_admins(&mut tx).await?;
            tx.exec("DELETE FROM api_token WHERE owner_id = ?", &[id.into()]).await?;
            tx.exec("DELETE FROM admin_user_role WHERE user_id = ?", &[id.into()]).await?;
            if tx
                .exec("DELETE FROM admin_user WHERE id = ? AND version = ?", &[id.into(), Val::Int(before.version)])
                .await?
                != 1
            {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            if admins_before > 0 && enabled_admins(&mut tx).await? == 0 {
                return Err(lockout());
            }
            audit(&mut tx, actor, "delete", "delete", KIND, id, Some(&before), None, &now()).await?;
            Ok(())
        }
        .await;
        finish_write(tx, r).await
    }
}

//! Roles: named sets of (resource, action) grants. The built-in ones are read-only.

use std::collections::BTreeSet;

use serde::Serialize;
use tigateway_auth::{Action, Resource, Role};
use tigateway_model::{ValidationError, ValidationErrors};

use super::{audit, check_name, finish_write, Cols, Identity, IdentityError, Result, BUILTIN_ROLES};
use crate::store::db::{Col, Db, Tx, Val};
use crate::store::{now, Page};

const KIND: &str = "admin_role";

/// A stored role. `permissions` serialise as `[["rules", "write"], …]`, the form they are given in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRecord {
    pub name: String,
    pub permissions: Vec<(Resource, Action)>,
    pub builtin: bool,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

const ROLE_COLS: &str = "name, permissions, builtin, version, created_at, updated_at";
const ROLE_COL_TYPES: [Col; 6] = [Col::Text, Col::Text, Col::Int, Col::Int, Col::Text, Col::Text];

fn role_from_row(row: Vec<Val>) -> Result<RoleRecord> {
    let mut c = Cols::new(row);
    let name = c.text();
    let permissions: BTreeSet<(Resource, Action)> = serde_json::from_str(&c.text())
        .map_err(|e| IdentityError::Database(format!("stored permissions of role {name:?} are not readable: {e}")))?;
    Ok(RoleRecord {
        name,
        permissions: permissions.into_iter().collect(),
        builtin: c.int() != 0,
        version: c.int(),
        created_at: c.text(),
        updated_at: c.text(),
    })
}

/// Checks `[resource, action]` pairs given by name (`"appAuth"`, `"write"`); duplicates collapse.
pub fn parse_permissions(permissions: &[(String, String)]) -> Result<BTreeSet<(Resource, Action)>, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let mut out = BTreeSet::new();
    for (i, (res, act)) in permissions.iter().enumerate() {
        let r = serde_json::from_value::<Resource>(serde_json::Value::String(res.clone()));
        let a = serde_json::from_value::<Action>(serde_json::Value::String(act.clone()));
        if r.is_err() {
            errs.0.push(ValidationError::new(format!("permissions[{i}][0]"), format!("unknown resource {res:?}")));
        }
        if a.is_err() {
            errs.0.push(ValidationError::new(
                format!("permissions[{i}][1]"),
                format!("unknown action {act:?} (read, write)"),
            ));
        }
        if let (Ok(r), Ok(a)) = (r, a) {
            out.insert((r, a));
        }
    }
    errs.into_result().map(|_| out)
}

fn permissions_json(p: &BTreeSet<(Resource, Action)>) -> Result<String> {
    serde_json::to_string(p).map_err(|e| IdentityError::Database(format!("cannot encode JSON: {e}")))
}

pub(super) async fn all(db: &Db) -> Result<Vec<RoleRecord>> {
    db.fetch(&format!("SELECT {ROLE_COLS} FROM admin_role ORDER BY name"), &[], &ROLE_COL_TYPES)
        .await?
        .into_iter()
        .map(role_from_row)
        .collect()
}

async fn get_tx(tx: &mut Tx, name: &str) -> Result<RoleRecord> {
    let row = tx
        .fetch(&format!("SELECT {ROLE_COLS} FROM admin_role WHERE name = ?"), &[name.into()], &ROLE_COL_TYPES)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: name.into() })?;
    role_from_row(row)
}

pub(super) async fn insert_builtin_if_missing(tx: &mut Tx, role: &Role, now_s: &str) -> Result<()> {
    let exists = !tx
        .fetch("SELECT name FROM admin_role WHERE name = ?", &[role.name.as_str().into()], &[Col::Text])
        .await?
        .is_empty();
    if !exists {
        insert(tx, &role.name, &role.permissions, true, now_s).await?;
    }
    Ok(())
}

async fn insert(
    tx: &mut Tx,
    name: &str,
    permissions: &BTreeSet<(Resource, Action)>,
    builtin: bool,
    now_s: &str,
) -> Result<()> {
    tx.exec(
        "INSERT INTO admin_role (name, permissions, builtin, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
        &[name.into(), permissions_json(permissions)?.into(), Val::Int(builtin as i64), now_s.into(), now_s.into()],
    )
    .await?;
    Ok(())
}

fn builtin_refused(name: &str) -> IdentityError {
    super::invalid("name", format!("{name:?} is a built-in role and cannot be changed or deleted"))
}

impl Identity {
    /// `permissions` as `[resource, action]` names, e.g. `("rules", "write")`; `write` implies `read`.
    pub async fn create_role(&self, name: &str, permissions: &[(String, String)], actor: &str) -> Result<RoleRecord> {
        let mut errs = ValidationErrors::default();
        check_name("name", name, &mut errs);
        let perms = match parse_permissions(permissions) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.0.extend(e.0);
                None
            }
        };
        errs.into_result().map_err(IdentityError::Invalid)?;
        let perms = perms.unwrap_or_default();
        let mut tx = self.begin_write().await?;
        let r = async {
            let taken = !tx
                .fetch("SELECT name FROM admin_role WHERE LOWER(name) = LOWER(?)", &[name.into()], &[Col::Text])
                .await?
                .is_empty();
            if taken {
                return Err(IdentityError::AlreadyExists { kind: KIND, id: name.into() });
            }
            let now_s = now();
            insert(&mut tx, name, &perms, false, &now_s).await?;
            let role = get_tx(&mut tx, name).await?;
            audit(&mut tx, actor, "create", "create", KIND, name, None, Some(&role), &now_s).await?;
            Ok(role)
        }
        .await;
        finish_write(tx, r).await
    }

    pub async fn get_role(&self, name: &str) -> Result<RoleRecord> {
        let row = self
            .db
            .fetch(&format!("SELECT {ROLE_COLS} FROM admin_role WHERE name = ?"), &[name.into()], &ROLE_COL_TYPES)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: name.into() })?;
        role_from_row(row)
    }

    /// Ordered by name; paging as for users.
    pub async fn list_roles(&self, page: u32, page_size: u32) -> Result<Page<RoleRecord>> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, 1000);
        let total = self
            .db
            .fetch("SELECT COUNT(*) FROM admin_role", &[], &[Col::Int])
            .await?
            .into_iter()
            .next()
            .map(|r| Cols::new(r).int())
            .unwrap_or(0);
        let items = self
            .db
            .fetch(
                &format!("SELECT {ROLE_COLS} FROM admin_role ORDER BY name LIMIT ? OFFSET ?"),
                &[Val::Int(page_size as i64), Val::Int((page as i64 - 1) * page_size as i64)],
                &ROLE_COL_TYPES,
            )
            .await?
            .into_iter()
            .map(role_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, page, page_size })
    }

    /// Replaces a custom role's permissions if `expected_version` is current.
    pub async fn update_role(
        &self,
        name: &str,
        expected_version: i64,
        permissions: &[(String, String)],
        actor: &str,
    ) -> Result<RoleRecord> {
        let perms = parse_permissions(permissions).map_err(IdentityError::Invalid)?;
        let mut tx = self.begin_write().await?;
        let r = async {
            let before = get_tx(&mut tx, name).await?;
            if before.builtin {
                return Err(builtin_refused(name));
            }
            if before.version != expected_version {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            let now_s = now();
            let n = tx
                .exec(
                    "UPDATE admin_role SET permissions = ?, version = ?, updated_at = ? WHERE name = ? AND version = ?",
                    &[
                        permissions_json(&perms)?.into(),
                        Val::Int(before.version + 1),
                        now_s.as_str().into(),
                        name.into(),
                        Val::Int(before.version),
                    ],
                )
                .await?;
            if n != 1 {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            let after = get_tx(&mut tx, name).await?;
            audit(&mut tx, actor, "update", "update", KIND, name, Some(&before), Some(&after), &now_s).await?;
            Ok(after)
        }
        .await;
        finish_write(tx, r).await
    }

    /// Deletes a custom role that no user holds.
    pub async fn delete_role(&self, name: &str, expected_version: i64, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = async {
            let before = get_tx(&mut tx, name).await?;
            if before.builtin || BUILTIN_ROLES.contains(&name) {
                return Err(builtin_refused(name));
            }
            if before.version != expected_version {
                return Err(IdentityError::Conflict { current_version: before.version });
            }
            let holders = tx
                .fetch("SELECT COUNT(*) FROM admin_user_role WHERE role_name = ?", &[name.into()], &[Col::Int])
                .await?
                .into_iter()
                .next()
                .map(|r| Cols::new(r).int())
                .unwrap_or(0);
            if holders > 0 {
                return Err(super::invalid("name", format!("role {name:?} is held by {holders} user(s)")));
            }
            tx.exec("DELETE FROM admin_role WHERE name = ? AND version = ?", &[name.into(), Val::Int(before.version)])
                .await?;
            audit(&mut tx, actor, "delete", "delete", KIND, name, Some(&before), None, &now()).await?;
            Ok(())
        }
        .await;
        finish_write(tx, r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_checked_by_name() {
        let p = |r: &str, a: &str| (r.to_string(), a.to_string());
        let ok = parse_permissions(&[p("appAuth", "write"), p("rules", "read"), p("rules", "read")]).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok.contains(&(Resource::AppAuth, Action::Write)));
        let err = parse_permissions(&[p("rules", "read"), p("nukes", "launch"), p("Rules", "read")]).unwrap_err();
        let paths: Vec<_> = err.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["permissions[1][0]", "permissions[1][1]", "permissions[2][0]"]);
    }
}

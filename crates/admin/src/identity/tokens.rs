//! API tokens for automation: shown once, stored as SHA-256 hex, revocable, optionally expiring.
//! A token acts for its owner with the owner's current roles, narrowed to `roles` when given.

use serde::{Deserialize, Serialize};
use tigateway_auth::{hash_api_token, new_api_token, AuthError};
use tigateway_model::{ValidationError, ValidationErrors};

use super::{
    audit, finish_write, format_time, new_id, parse_time, Cols, Identity, IdentityError, Principal, Result, Via,
    LAST_USED_GRANULARITY,
};
use crate::store::db::{Col, Db, Tx, Val};
use crate::store::{now, Page};

const KIND: &str = "api_token";
/// Ten years.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 366 * 24 * 3600;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (free text, 1–255 characters).
    pub name: String,
    /// The owner's username.
    pub owner: String,
    /// A subset of the owner's roles; `None` acts with all of them.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// `None`: until revoked.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A token as listings show it: never the plaintext or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    /// The owner's username.
    pub owner: String,
    pub roles: Option<Vec<String>>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

const TOKEN_SELECT: &str = "SELECT t.id, t.name, u.username, t.roles, t.created_at, t.expires_at, t.revoked_at, \
                            t.last_used_at FROM api_token t JOIN admin_user u ON u.id = t.owner_id";
const TOKEN_COL_TYPES: [Col; 8] =
    [Col::Text, Col::Text, Col::Text, Col::OptText, Col::Text, Col::OptText, Col::OptText, Col::OptText];

fn roles_from_json(s: Option<String>) -> Result<Option<Vec<String>>> {
    s.map(|s| {
        serde_json::from_str(&s)
            .map_err(|e| IdentityError::Database(format!("stored token roles are not readable: {e}")))
    })
    .transpose()
}

fn token_from_row(row: Vec<Val>) -> Result<TokenInfo> {
    let mut c = Cols::new(row);
    Ok(TokenInfo {
        id: c.text(),
        name: c.text(),
        owner: c.text(),
        roles: roles_from_json(c.opt())?,
        created_at: c.text(),
        expires_at: c.opt(),
        revoked_at: c.opt(),
        last_used_at: c.opt(),
    })
}

async fn get_tx(tx: &mut Tx, id: &str) -> Result<TokenInfo> {
    let row = tx
        .fetch(&format!("{TOKEN_SELECT} WHERE t.id = ?"), &[id.into()], &TOKEN_COL_TYPES)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: id.into() })?;
    token_from_row(row)
}

/// Whether `at` (a stored time) has passed; an unreadable time counts as passed.
fn passed(at: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    match parse_time(at) {
        Some(t) => t <= now,
        None => true,
    }
}

pub(super) async fn authenticate(db: &Db, bearer: &str) -> Result<Principal> {
    let refused = || IdentityError::Auth(AuthError::InvalidToken);
    let row = db
        .fetch(
            "SELECT t.id, t.owner_id, t.roles, t.expires_at, t.revoked_at, t.last_used_at, u.username, u.enabled \
             FROM api_token t JOIN admin_user u ON u.id = t.owner_id WHERE t.token_hash = ?",
            &[hash_api_token(bearer).into()],
            &[Col::Text, Col::Text, Col::OptText, Col::OptText, Col::OptText, Col::OptText, Col::Text, Col::Int],
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(refused)?;
    let mut c = Cols::new(row);
    let (id, owner_id, roles) = (c.text(), c.text(), roles_from_json(c.opt())?);
    let (expires_at, revoked_at, last_used_at) = (c.opt(), c.opt(), c.opt());
    let (username, enabled) = (c.text(), c.int() != 0);
    let now_t = chrono::Utc::now();
    if revoked_at.is_some() || !enabled || expires_at.as_deref().is_some_and(|e| passed(e, now_t)) {
        return Err(refused());
    }
    let held = super::users::roles_of(db, &owner_id).await?;
    let roles = match roles {
        Some(subset) => held.into_iter().filter(|r| subset.contains(r)).collect(),
        None => held,
    };
    let stale = match last_used_at.as_deref().and_then(parse_time) {
        Some(t) => (now_t - t).to_std().map(|d| d >= LAST_USED_GRANULARITY).unwrap_or(false),
        None => true,
    };
    if stale {
        // Best effort: a failure here must not fail the request.
        if let Ok(mut tx) = db.begin().await {
            match tx
                .exec(
                    "UPDATE api_token SET last_used_at = ? WHERE id = ?",
                    &[format_time(now_t).into(), id.as_str().into()],
                )
                .await
            {
                Ok(_) => {
                    let _ = tx.commit().await;
                }
                Err(_) => {
                    let _ = tx.rollback().await;
                }
            }
        }
    }
    Ok(Principal { username, roles, via: Via::ApiToken { id } })
}

impl Identity {
    /// Creates a token and returns its plaintext, which is not stored and cannot be shown again.
    pub async fn create_token(&self, new: NewToken, actor: &str) -> Result<(String, TokenInfo)> {
        let mut errs = ValidationErrors::default();
        let name_len = new.name.chars().count();
        if name_len == 0 || name_len > 255 || new.name.chars().any(char::is_control) {
            errs.0.push(ValidationError::new("name", "must be 1-255 characters without control characters"));
        }
        match new.expires_in_secs {
            Some(0) => errs.0.push(ValidationError::new("expiresInSecs", "must be positive")),
            Some(s) if s > MAX_EXPIRES_IN_SECS => {
                errs.0.push(ValidationError::new("expiresInSecs", format!("must be at most {MAX_EXPIRES_IN_SECS}")))
            }
            _ => {}
        }
        errs.into_result().map_err(IdentityError::Invalid)?;
        let mut tx = self.begin_write().await?;
        let r = async {
            let owner = tx
                .fetch("SELECT id FROM admin_user WHERE username = ?", &[new.owner.as_str().into()], &[Col::Text])
                .await?
                .into_iter()
                .next()
                .map(|r| Cols::new(r).text())
                .ok_or_else(|| super::invalid("owner", format!("user {:?} does not exist", new.owner)))?;
            let roles = match &new.roles {
                Some(subset) => {
                    let held: Vec<String> = tx
                        .fetch(
                            "SELECT role_name FROM admin_user_role WHERE user_id = ?",
                            &[owner.as_str().into()],
                            &[Col::Text],
                        )
                        .await?
                        .into_iter()
                        .map(|r| Cols::new(r).text())
                        .collect();
                    let mut errs = ValidationErrors::default();
                    for (i, r) in subset.iter().enumerate() {
                        if !held.contains(r) {
                            errs.0.push(ValidationError::new(
                                format!("roles[{i}]"),
                                format!("the owner does not hold role {r:?}"),
                            ));
                        }
                    }
                    errs.into_result().map_err(IdentityError::Invalid)?;
                    let mut s = subset.clone();
                    s.sort();
                    s.dedup();
                    Some(s)
                }
                None => None,
            };
            let now_t = chrono::Utc::now();
            let now_s = format_time(now_t);
            let expires_at = new
                .expires_in_secs
                .map(|s| format_time(now_t + chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))));
            let roles_json = roles
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| IdentityError::Database(format!("cannot encode JSON: {e}")))?;
            let (plaintext, hash) = new_api_token();
            let id = new_id();
            tx.exec(
                "INSERT INTO api_token (id, name, token_hash, owner_id, roles, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    id.as_str().into(),
                    new.name.as_str().into(),
                    hash.into(),
                    owner.into(),
                    roles_json.into(),
                    now_s.as_str().into(),
                    expires_at.into(),
                ],
            )
            .await?;
            let info = get_tx(&mut tx, &id).await?;
            audit(&mut tx, actor, "create", "create", KIND, &id, None, Some(&info), &now_s).await?;
            Ok((plaintext, info))
        }
        .await;
        finish_write(tx, r).await
    }

    pub async fn get_token(&self, id: &str) -> Result<TokenInfo> {
        let row = self
            .db
            .fetch(&format!("{TOKEN_SELECT} WHERE t.id = ?"), &[id.into()], &TOKEN_COL_TYPES)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| IdentityError::NotFound { kind: KIND, id: id.into() })?;
        token_from_row(row)
    }

    /// Newest first; `owner` narrows to one user's tokens (by exact username).
    pub async fn list_tokens(&self, page: u32, page_size: u32, owner: Option<&str>) -> Result<Page<TokenInfo>> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, 1000);
        let (filter, mut args) = match owner {
            Some(o) => (" WHERE u.username = ?", vec![Val::from(o)]),
            None => ("", vec![]),
        };
        let total = self
            .db
            .fetch(
                &format!("SELECT COUNT(*) FROM api_token t JOIN admin_user u ON u.id = t.owner_id{filter}"),
                &args,
                &[Col::Int],
            )
            .await?
            .into_iter()
            .next()
            .map(|r| Cols::new(r).int())
            .unwrap_or(0);
        args.push(Val::Int(page_size as i64));
        args.push(Val::Int((page as i64 - 1) * page_size as i64));
        let items = self
            .db
            .fetch(
                &format!("{TOKEN_SELECT}{filter} ORDER BY t.created_at DESC, t.id LIMIT ? OFFSET ?"),
                &args,
                &TOKEN_COL_TYPES,
            )
            .await?
            .into_iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, page, page_size })
    }

    /// Revokes a token at once; revoking a revoked token changes nothing.
    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<TokenInfo> {
        let mut tx = self.begin_write().await?;
        let r = async {
            let before = get_tx(&mut tx, id).await?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            let now_s = now();
            tx.exec("UPDATE api_token SET revoked_at = ? WHERE id = ?", &[now_s.as_str().into(), id.into()]).await?;
            let after = get_tx(&mut tx, id).await?;
            audit(&mut tx, actor, "revoke", "update", KIND, id, Some(&before), Some(&after), &now_s).await?;
            Ok(after)
        }
        .await;
        finish_write(tx, r).await
    }
}

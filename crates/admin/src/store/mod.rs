//! The admin's persistent config: SQLite, PostgreSQL or MySQL/MariaDB behind one [`Store`].
//!
//! Every write runs in one transaction that first bumps the single `config_head` row. That row
//! lock serialises writers across processes, so the config loaded next is the latest, the revision
//! number is gapless and monotonic, and a failed write (stale version, invalid result, database
//! error) rolls back the entity rows, the revision and the audit rows together.
//!
//! Reads of the whole config come from the newest `config_revision` row: one statement, hence one
//! consistent snapshot even on PostgreSQL's READ COMMITTED, where reading six tables could mix two
//! commits.

pub(crate) mod db;
mod entity;
mod state;

use serde::{Deserialize, Serialize};
use tigateway_model::{Config, Plugin, ValidationErrors, BUILTIN_PLUGINS, IMPLEMENTED_PLUGINS};

pub use db::{Backend, PoolSettings};
pub use entity::{Change, Entity, EntityKind, Item};

use db::{Col, Db, Tx, Val};
use state::{RowMeta, State};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: EntityKind, id: String },
    #[error("revision {revision} does not exist")]
    RevisionNotFound { revision: i64 },
    #[error("{kind} {id:?} already exists")]
    AlreadyExists { kind: EntityKind, id: String },
    /// The caller's version is stale; nothing was written.
    #[error("version conflict: the current version is {current_version}")]
    Conflict { current_version: i64 },
    /// The config after the change does not validate; nothing was written.
    #[error("invalid config:\n{0}")]
    Invalid(ValidationErrors),
    /// The database cannot be reached or the pool is closed (the API answers 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An object as stored, with what optimistic locking and listings need.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored<T> {
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub value: T,
}

/// Paging is 1-based; `page_size` is clamped to 1..=1000. Filters match case-insensitively as
/// substrings (see [`Entity::name`] for what "name" is per kind).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListQuery {
    pub page: u32,
    pub page_size: u32,
    pub name: Option<String>,
    pub plugin_name: Option<String>,
    /// Exact match on a rule's selector.
    pub selector_id: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery { page: 1, page_size: 20, name: None, plugin_name: None, selector_id: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// What a committed (or, for a dry run, would-be) write did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOutcome {
    /// The revision written; for a dry run, the one that would have been written.
    pub revision: i64,
    pub changes: Vec<tigateway_model::Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    pub revision: i64,
    pub actor: String,
    pub operation: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionDetail {
    #[serde(flatten)]
    pub summary: RevisionSummary,
    pub config: Config,
    /// From the previous revision (an empty config before revision 1).
    pub changes: Vec<tigateway_model::Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub revision: i64,
    pub at: String,
    pub actor: String,
    /// `create`, `update`, `delete`, `batch`, `import`, `rollback` or `seed`.
    pub operation: String,
    /// `create`, `update` or `delete` of this one object.
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Whose write it is when the store writes on its own (seeding).
pub const SYSTEM_ACTOR: &str = "system";

pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Database(format!("cannot encode JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Database(format!("stored {what} is not readable: {e}")))
}

fn clip(s: &str) -> String {
    s.chars().take(state::MAX_KEY_CHARS).collect()
}

/// `LIKE` pattern for a case-insensitive substring match, with `!` escaping the wildcards.
pub(crate) fn contains_pattern(needle: Option<&str>) -> String {
    let mut p = String::from("%");
    for c in needle.unwrap_or("").to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// The newest committed revision, for in-process followers (standalone mode's gateway).
    committed: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
}

impl Store {
    /// Opens `sqlite://path?mode=rwc`, `postgres://…` or `mysql://…`, migrates the schema and, on
    /// a new database, seeds the built-in plugins as revision 1.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, &PoolSettings::default()).await
    }

    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<Store> {
        let db = Db::connect(url, settings).await?;
        db::migrate(&db).await?;
        let store = Store { db, committed: std::sync::Arc::new(tokio::sync::watch::channel(0).0) };
        store.seed().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The pool, for the identity tables (`crate::identity`), which share the database.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the pool; every later call answers [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.db.close().await
    }

    /// Built-in plugins: those this build implements start enabled, the others disabled, so a
    /// fresh install routes nothing through a plugin that would refuse the config.
    async fn seed(&self) -> Result<()> {
        let now_s = now();
        let mut tx = self.db.begin().await?;
        let rev = lock_head(&mut tx).await?;
        if rev != 1 {
            return tx.rollback().await;
        }
        let old = State::default();
        let mut st = State::default();
        for (name, sort) in BUILTIN_PLUGINS {
            let p = Plugin {
                id: (*name).to_string(),
                name: (*name).to_string(),
                enabled: IMPLEMENTED_PLUGINS.contains(name),
                sort: Some(*sort),
                ..Default::default()
            };
            st.create(p, &now_s)?;
        }
        st.validate()?;
        persist(&mut tx, &old, &st, rev, SYSTEM_ACTOR, "seed", &now_s).await?;
        tx.commit().await
    }

    /// The shared write path: lock, load, change, validate, write rows + revision + audit.
    async fn write<R>(
        &self,
        actor: &str,
        operation: &str,
        dry_run: bool,
        change: impl FnOnce(&mut State, &str) -> Result<R>,
    ) -> Result<(R, WriteOutcome)> {
        let now_s = now();
        let mut tx = self.db.begin().await?;
        let result = async {
            let rev = lock_head(&mut tx).await?;
            let old = load_state(&mut tx).await?;
            let mut next = old.clone();
            let r = change(&mut next, &now_s)?;
            next.validate()?;
            let changes = tigateway_model::diff(&old.cfg, &next.cfg);
            if !dry_run {
                persist(&mut tx, &old, &next, rev, actor, operation, &now_s).await?;
            }
            Ok((r, WriteOutcome { revision: rev, changes }))
        }
        .await;
        match result {
            Ok(out) if !dry_run => {
                tx.commit().await?;
                self.committed.send_replace(out.1.revision);
                Ok(out)
            }
            other => {
                // Dropping the transaction would roll back too; saying so keeps a dead connection
                // from being returned to the pool mid-transaction.
                let _ = tx.rollback().await;
                other
            }
        }
    }

    /// Changes every time this process commits a config write; the value is the new revision.
    /// Writes by other processes on the same database are not seen here (poll
    /// [`Store::current_revision`] for those).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.subscribe()
    }

    pub async fn create<E: Entity>(&self, value: E, actor: &str) -> Result<Stored<E>> {
        let (id, _) = self.write(actor, "create", false, |st, now| st.create(value, now)).await?;
        self.get(&id).await
    }

    pub async fn get<E: Entity>(&self, id: &str) -> Result<Stored<E>> {
        let sql = format!("SELECT version, created_at, updated_at, body FROM {} WHERE id = ?", E::KIND.table());
        let rows = self.db.fetch(&sql, &[id.into()], &[Col::Int, Col::Text, Col::Text, Col::Text]).await?;
        let row = rows.into_iter().next().ok_or_else(|| StoreError::NotFound { kind: E::KIND, id: id.into() })?;
        stored_from_row(row)
    }

    pub async fn list<E: Entity>(&self, q: &ListQuery) -> Result<Page<Stored<E>>> {
        let page = q.page.max(1);
        let page_size = q.page_size.clamp(1, 1000);
        let mut filter = String::from("LOWER(name) LIKE ? ESCAPE '!' AND LOWER(plugin_name) LIKE ? ESCAPE '!'");
        let mut args =
            vec![Val::Text(contains_pattern(q.name.as_deref())), Val::Text(contains_pattern(q.plugin_name.as_deref()))];
        if let Some(sel) = &q.selector_id {
            filter.push_str(" AND parent_id = ?");
            args.push(sel.as_str().into());
        }
        let table = E::KIND.table();
        let total = self.db.count(&format!("SELECT COUNT(*) FROM {table} WHERE {filter}"), &args).await?;
        args.push(Val::Int(page_size as i64));
        args.push(Val::Int((page as i64 - 1) * page_size as i64));
        let rows = self
            .db
            .fetch(
                &format!(
                    "SELECT version, created_at, updated_at, body FROM {table} WHERE {filter} ORDER BY seq, id LIMIT ? OFFSET ?"
                ),
                &args,
                &[Col::Int, Col::Text, Col::Text, Col::Text],
            )
            .await?;
        let items = rows.into_iter().map(stored_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, page, page_size })
    }

    pub async fn update<E: Entity>(&self, id: &str, expected_version: i64, value: E, actor: &str) -> Result<Stored<E>> {
        self.write(actor, "update", false, |st, now| st.update(id, expected_version, value, now)).await?;
        self.get(id).await
    }

    pub async fn delete<E: Entity>(&self, id: &str, expected_version: i64, actor: &str) -> Result<WriteOutcome> {
        Ok(self.write(actor, "delete", false, |st, _| st.delete::<E>(id, expected_version)).await?.1)
    }

    /// All changes or none: the first failing step (stale version, unknown id) or an invalid
    /// result aborts the whole batch.
    pub async fn apply_batch(&self, changes: Vec<Change>, actor: &str) -> Result<WriteOutcome> {
        let out = self
            .write(actor, "batch", false, |st, now| {
                for c in changes {
                    st.apply(c, now)?;
                }
                Ok(())
            })
            .await?;
        Ok(out.1)
    }

    /// The whole current config (what the gateway should run).
    pub async fn load_config(&self) -> Result<Config> {
        let rows = self
            .db
            .fetch("SELECT config FROM config_revision ORDER BY revision DESC LIMIT 1", &[], &[Col::Text])
            .await?;
        match rows.into_iter().next() {
            Some(r) => from_json(&r[0].clone().text().unwrap_or_default(), "config revision"),
            None => Ok(Config::default()),
        }
    }

    pub async fn current_revision(&self) -> Result<i64> {
        let rows = self.db.fetch("SELECT revision FROM config_head WHERE id = 1", &[], &[Col::Int]).await?;
        Ok(rows.first().map(|r| r[0].int()).unwrap_or(0))
    }

    /// The backup document: the same value as [`Store::load_config`].
    pub async fn export(&self) -> Result<Config> {
        self.load_config().await
    }

    /// Replaces everything with `cfg` after validating it whole. Objects whose content is
    /// unchanged keep their version. With `dry_run`, reports the changes and writes nothing.
    pub async fn import(&self, cfg: Config, dry_run: bool, actor: &str) -> Result<WriteOutcome> {
        // Validating before the transaction answers a bad document without touching the database.
        let mut probe = State::default();
        probe.replace_all(cfg.clone(), "");
        probe.validate()?;
        Ok(self
            .write(actor, "import", dry_run, |st, now| {
                st.replace_all(cfg, now);
                Ok(())
            })
            .await?
            .1)
    }

    /// Newest first.
    pub async fn revisions(&self, page: u32, page_size: u32) -> Result<Page<RevisionSummary>> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, 1000);
        let total = self.db.count("SELECT COUNT(*) FROM config_revision", &[]).await?;
        let rows = self
            .db
            .fetch(
                "SELECT revision, actor, operation, created_at FROM config_revision ORDER BY revision DESC LIMIT ? OFFSET ?",
                &[Val::Int(page_size as i64), Val::Int((page as i64 - 1) * page_size as i64)],
                &[Col::Int, Col::Text, Col::Text, Col::Text],
            )
            .await?;
        let items = rows.into_iter().map(summary_from_row).collect();
        Ok(Page { items, total, page, page_size })
    }

    pub async fn revision(&self, n: i64) -> Result<RevisionDetail> {
        let rows = self
            .db
            .fetch(
                "SELECT revision, actor, operation, created_at, config FROM config_revision WHERE revision IN (?, ?) ORDER BY revision",
                &[Val::Int(n - 1), Val::Int(n)],
                &[Col::Int, Col::Text, Col::Text, Col::Text, Col::Text],
            )
            .await?;
        let mut prev = Config::default();
        for mut row in rows {
            let config: Config = from_json(&row.pop().and_then(Val::text).unwrap_or_default(), "config revision")?;
            let summary = summary_from_row(row);
            if summary.revision == n {
                let changes = tigateway_model::diff(&prev, &config);
                return Ok(RevisionDetail { summary, config, changes });
            }
            prev = config;
        }
        Err(StoreError::RevisionNotFound { revision: n })
    }

    /// Writes a new revision whose config equals revision `n`'s.
    pub async fn rollback(&self, n: i64, actor: &str) -> Result<WriteOutcome> {
        let target = self.revision(n).await?.config;
        Ok(self
            .write(actor, "rollback", false, |st, now| {
                st.replace_all(target, now);
                Ok(())
            })
            .await?
            .1)
    }

    /// Newest first; `entity` narrows to one kind and, with an id, to one object.
    pub async fn audit(
        &self,
        page: u32,
        page_size: u32,
        entity: Option<(EntityKind, Option<&str>)>,
    ) -> Result<Page<AuditEntry>> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, 1000);
        let mut filter = String::from("1 = 1");
        let mut args = Vec::new();
        if let Some((kind, id)) = entity {
            filter.push_str(" AND entity_type = ?");
            args.push(Val::from(kind.as_str()));
            if let Some(id) = id {
                filter.push_str(" AND entity_id = ?");
                args.push(id.into());
            }
        }
        let total = self.db.count(&format!("SELECT COUNT(*) FROM audit WHERE {filter}"), &args).await?;
        args.push(Val::Int(page_size as i64));
        args.push(Val::Int((page as i64 - 1) * page_size as i64));
        let rows = self
            .db
            .fetch(
                &format!(
                    "SELECT id, revision, at, actor, operation, action, entity_type, entity_id, before_json, after_json \
                     FROM audit WHERE {filter} ORDER BY id DESC LIMIT ? OFFSET ?"
                ),
                &args,
                &[Col::Int, Col::Int, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::Text, Col::OptText, Col::OptText],
            )
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let mut it = r.into_iter();
            let mut next = || it.next().unwrap_or(Val::NullText);
            let id = next().int();
            let revision = next().int();
            let [at, actor, operation, action, entity_type, entity_id] =
                std::array::from_fn(|_| next().text().unwrap_or_default());
            let before = next().text().map(|s| from_json(&s, "audit before")).transpose()?;
            let after = next().text().map(|s| from_json(&s, "audit after")).transpose()?;
            items.push(AuditEntry {
                id,
                revision,
                at,
                actor,
                operation,
                action,
                entity_type,
                entity_id,
                before,
                after,
            });
        }
        Ok(Page { items, total, page, page_size })
    }
}

fn stored_from_row<E: Entity>(row: Vec<Val>) -> Result<Stored<E>> {
    let mut it = row.into_iter();
    let version = it.next().map(|v| v.int()).unwrap_or(0);
    let created_at = it.next().and_then(Val::text).unwrap_or_default();
    let updated_at = it.next().and_then(Val::text).unwrap_or_default();
    let body = it.next().and_then(Val::text).unwrap_or_default();
    let value: E = from_json(&body, E::KIND.as_str())?;
    Ok(Stored { version, created_at, updated_at, value })
}

fn summary_from_row(row: Vec<Val>) -> RevisionSummary {
    let mut it = row.into_iter();
    let revision = it.next().map(|v| v.int()).unwrap_or(0);
    let mut text = || it.next().and_then(Val::text).unwrap_or_default();
    RevisionSummary { revision, actor: text(), operation: text(), created_at: text() }
}

/// Bumps the head row (taking its lock until commit) and returns the revision this write creates.
async fn lock_head(tx: &mut Tx) -> Result<i64> {
    let n = tx.exec("UPDATE config_head SET revision = revision + 1 WHERE id = 1", &[]).await?;
    if n != 1 {
        return Err(StoreError::Database("config_head row is missing; the schema is damaged".into()));
    }
    let rows = tx.fetch("SELECT revision FROM config_head WHERE id = 1", &[], &[Col::Int]).await?;
    Ok(rows.first().map(|r| r[0].int()).unwrap_or(0))
}

async fn load_state(tx: &mut Tx) -> Result<State> {
    let mut st = State::default();
    load_kind::<Plugin>(tx, &mut st).await?;
    load_kind::<tigateway_model::Selector>(tx, &mut st).await?;
    load_kind::<tigateway_model::Rule>(tx, &mut st).await?;
    load_kind::<tigateway_model::MetaData>(tx, &mut st).await?;
    load_kind::<tigateway_model::AppAuth>(tx, &mut st).await?;
    load_kind::<tigateway_model::RouteDefinition>(tx, &mut st).await?;
    Ok(st)
}

async fn load_kind<E: Entity>(tx: &mut Tx, st: &mut State) -> Result<()> {
    let sql =
        format!("SELECT id, version, seq, created_at, updated_at, body FROM {} ORDER BY seq, id", E::KIND.table());
    let rows = tx.fetch(&sql, &[], &[Col::Text, Col::Int, Col::Int, Col::Text, Col::Text, Col::Text]).await?;
    for row in rows {
        let mut it = row.into_iter();
        let id = it.next().and_then(Val::text).unwrap_or_default();
        let version = it.next().map(|v| v.int()).unwrap_or(0);
        let seq = it.next().map(|v| v.int()).unwrap_or(0);
        let created_at = it.next().and_then(Val::text).unwrap_or_default();
        let updated_at = it.next().and_then(Val::text).unwrap_or_default();
        let value: E = from_json(&it.next().and_then(Val::text).unwrap_or_default(), E::KIND.as_str())?;
        st.next_seq = st.next_seq.max(seq);
        st.meta.insert((E::KIND, id), RowMeta { version, seq, created_at, updated_at });
        E::items_mut(&mut st.cfg).push(value);
    }
    Ok(())
}

/// Writes the rows that differ between `old` and `new`, the revision, and one audit row per object
/// whose content changed.
async fn persist(
    tx: &mut Tx,
    old: &State,
    new: &State,
    rev: i64,
    actor: &str,
    operation: &str,
    now_s: &str,
) -> Result<()> {
    persist_kind::<Plugin>(tx, old, new, rev, actor, operation, now_s).await?;
    persist_kind::<tigateway_model::Selector>(tx, old, new, rev, actor, operation, now_s).await?;
    persist_kind::<tigateway_model::Rule>(tx, old, new, rev, actor, operation, now_s).await?;
    persist_kind::<tigateway_model::MetaData>(tx, old, new, rev, actor, operation, now_s).await?;
    persist_kind::<tigateway_model::AppAuth>(tx, old, new, rev, actor, operation, now_s).await?;
    persist_kind::<tigateway_model::RouteDefinition>(tx, old, new, rev, actor, operation, now_s).await?;
    tx.exec(
        "INSERT INTO config_revision (revision, config, actor, operation, created_at) VALUES (?, ?, ?, ?, ?)",
        &[Val::Int(rev), to_json(&new.cfg)?.into(), actor.into(), operation.into(), now_s.into()],
    )
    .await?;
    Ok(())
}

async fn persist_kind<E: Entity>(
    tx: &mut Tx,
    old: &State,
    new: &State,
    rev: i64,
    actor: &str,
    operation: &str,
    now_s: &str,
) -> Result<()> {
    let table = E::KIND.table();
    let new_items = E::items(&new.cfg);
    let old_items = E::items(&old.cfg);
    let audit =
        |action: &'static str, id: String, before: Option<String>, after: Option<String>| (action, id, before, after);
    let mut audits = Vec::new();
    for o in old_items {
        if !new_items.iter().any(|n| n.id() == o.id()) {
            let meta = old.meta_of(E::KIND, o.id()).expect("loaded rows have meta");
            let n = tx
                .exec(
                    &format!("DELETE FROM {table} WHERE id = ? AND version = ?"),
                    &[o.id().into(), Val::Int(meta.version)],
                )
                .await?;
            if n != 1 {
                return Err(StoreError::Conflict { current_version: meta.version });
            }
            audits.push(audit("delete", o.id().to_string(), Some(to_json(o)?), None));
        }
    }
    for v in new_items {
        let meta = new.meta_of(E::KIND, v.id()).expect("every object in a state has meta");
        let body = to_json(v)?;
        match old.meta_of(E::KIND, v.id()) {
            None => {
                tx.exec(
                    &format!(
                        "INSERT INTO {table} (id, name, plugin_name, parent_id, sort, enabled, seq, version, body, created_at, updated_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    &[
                        v.id().into(),
                        clip(v.name()).into(),
                        clip(v.plugin_name()).into(),
                        clip(v.parent_id()).into(),
                        Val::Int(v.sort()),
                        Val::Int(v.enabled() as i64),
                        Val::Int(meta.seq),
                        Val::Int(meta.version),
                        body.clone().into(),
                        meta.created_at.as_str().into(),
                        meta.updated_at.as_str().into(),
                    ],
                )
                .await?;
                audits.push(audit("create", v.id().to_string(), None, Some(body)));
            }
            Some(prev) if prev != meta => {
                let n = tx
                    .exec(
                        &format!(
                            "UPDATE {table} SET name = ?, plugin_name = ?, parent_id = ?, sort = ?, enabled = ?, seq = ?, version = ?, \
                             body = ?, updated_at = ? WHERE id = ? AND version = ?"
                        ),
                        &[
                            clip(v.name()).into(),
                            clip(v.plugin_name()).into(),
                            clip(v.parent_id()).into(),
                            Val::Int(v.sort()),
                            Val::Int(v.enabled() as i64),
                            Val::Int(meta.seq),
                            Val::Int(meta.version),
                            body.clone().into(),
                            meta.updated_at.as_str().into(),
                            v.id().into(),
                            Val::Int(prev.version),
                        ],
                    )
                    .await?;
                if n != 1 {
                    return Err(StoreError::Conflict { current_version: prev.version });
                }
                if prev.version != meta.version {
                    let before = E::items(&old.cfg).iter().find(|o| o.id() == v.id()).map(to_json).transpose()?;
                    audits.push(audit("update", v.id().to_string(), before, Some(body)));
                }
            }
            Some(_) => {}
        }
    }
    for (action, id, before, after) in audits {
        tx.exec(
            "INSERT INTO audit (revision, at, actor, operation, action, entity_type, entity_id, before_json, after_json) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Val::Int(rev),
                now_s.into(),
                actor.into(),
                operation.into(),
                action.into(),
                E::KIND.as_str().into(),
                id.into(),
                before.into(),
                after.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_pattern_escapes_wildcards() {
        assert_eq!(contains_pattern(None), "%%");
        assert_eq!(contains_pattern(Some("A_b%")), "%a!_b!%%");
    }
}

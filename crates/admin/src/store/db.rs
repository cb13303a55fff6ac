//! A thin layer over the three sqlx drivers.
//!
//! sqlx's `Any` driver would give one code path, but it cannot read MySQL `TEXT` columns as strings
//! (it reports them as blobs), and the JSON documents this store keeps do not fit in a `VARCHAR`. So
//! the store holds a typed pool per backend and funnels every statement through [`Db::fetch`] /
//! [`Tx::fetch`] with the two value types it needs (integers and text). Statements are written once
//! with `?` placeholders and rewritten to `$n` for PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{MySql, Postgres, Row as _, Sqlite, Transaction};

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// A bound parameter or a decoded column.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(i64),
    Text(String),
    /// A NULL in a text column (PostgreSQL wants the parameter's type even for NULL).
    NullText,
}

impl Val {
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            _ => 0,
        }
    }
    pub fn text(self) -> Option<String> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        v.map(Val::Text).unwrap_or(Val::NullText)
    }
}

/// The type a result column is read as.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    Int,
    Text,
    OptText,
}

pub type Row = Vec<Val>;

#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
}

/// Pool settings. A short acquire timeout makes a dead database show up as `Unavailable` quickly
/// instead of hanging an API request.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: 8, acquire_timeout: Duration::from_secs(5) }
    }
}

pub fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolClosed
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Database(other.to_string()),
    }
}

/// `?` → `$1, $2, …` for PostgreSQL. The store's statements never hold a `?` inside a literal.
fn placeholders(backend: Backend, sql: &str) -> std::borrow::Cow<'_, str> {
    if backend != Backend::Postgres || !sql.contains('?') {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out.into()
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Val::Int(i) => q.bind(*i),
                Val::Text(s) => q.bind(s.clone()),
                Val::NullText => q.bind(None::<String>),
            };
        }
        q
    }};
}

/// MySQL reports columns with a binary collation (`utf8mb4_bin`, chosen so ids compare
/// case-sensitively as on the other backends) as binary, so text is read there as bytes.
fn utf8(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|e| StoreError::Database(format!("stored text is not UTF-8: {e}")))
}

macro_rules! decode_rows {
    ($rows:expr, $cols:expr) => {
        decode_rows!($rows, $cols, String, Ok::<String, StoreError>)
    };
    ($rows:expr, $cols:expr, $raw:ty, $conv:expr) => {{
        let mut out = Vec::with_capacity($rows.len());
        for r in &$rows {
            let mut row = Vec::with_capacity($cols.len());
            for (i, c) in $cols.iter().enumerate() {
                row.push(match c {
                    Col::Int => Val::Int(r.try_get::<i64, _>(i).map_err(map_err)?),
                    Col::Text => Val::Text($conv(r.try_get::<$raw, _>(i).map_err(map_err)?)?),
                    Col::OptText => match r.try_get::<Option<$raw>, _>(i).map_err(map_err)? {
                        Some(v) => Val::Text($conv(v)?),
                        None => Val::NullText,
                    },
                });
            }
            out.push(row);
        }
        out
    }};
}

impl Db {
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Db, StoreError> {
        let bad_url = |e: sqlx::Error| StoreError::Database(format!("bad database URL: {e}"));
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                // Every connection to an in-memory database is a database of its own.
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let max = if in_memory { 1 } else { settings.max_connections };
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(map_err)?;
                Ok(Db::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url).map_err(bad_url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(map_err)?;
                Ok(Db::Postgres(pool))
            }
            "mysql" | "mariadb" => {
                let url = if scheme == "mariadb" { format!("mysql{}", &url["mariadb".len()..]) } else { url.into() };
                let opts = MySqlConnectOptions::from_str(&url).map_err(bad_url)?.charset("utf8mb4");
                let pool = MySqlPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(map_err)?;
                Ok(Db::MySql(pool))
            }
            other => Err(StoreError::Database(format!(
                "unsupported database URL scheme {other:?} (sqlite://, postgres://, mysql://)"
            ))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
            Db::MySql(_) => Backend::MySql,
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
            Db::MySql(p) => p.close().await,
        }
    }

    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await.map_err(map_err)?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await.map_err(map_err)?),
            Db::MySql(p) => Tx::MySql(p.begin().await.map_err(map_err)?),
        })
    }

    /// A `SELECT COUNT(*) …` query's number (0 when it returns no row).
    pub async fn count(&self, sql: &str, args: &[Val]) -> Result<i64, StoreError> {
        Ok(self.fetch(sql, args, &[Col::Int]).await?.first().map(|r| r[0].int()).unwrap_or(0))
    }

    pub async fn fetch(&self, sql: &str, args: &[Val], cols: &[Col]) -> Result<Vec<Row>, StoreError> {
        let sql = placeholders(self.backend(), sql);
        Ok(match self {
            Db::Sqlite(p) => {
                let rows = bind_all!(sqlx::query(&sql), args).fetch_all(p).await.map_err(map_err)?;
                decode_rows!(rows, cols)
            }
            Db::Postgres(p) => {
                let rows = bind_all!(sqlx::query(&sql), args).fetch_all(p).await.map_err(map_err)?;
                decode_rows!(rows, cols)
            }
            Db::MySql(p) => {
                let rows = bind_all!(sqlx::query(&sql), args).fetch_all(p).await.map_err(map_err)?;
                decode_rows!(rows, cols, Vec<u8>, utf8)
            }
        })
    }
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
            Tx::MySql(_) => Backend::MySql,
        }
    }

    pub async fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, StoreError> {
        let sql = placeholders(self.backend(), sql);
        Ok(match self {
            Tx::Sqlite(t) => {
                bind_all!(sqlx::query(&sql), args).execute(&mut **t).await.map_err(map_err)?.rows_affected()
            }
            Tx::Postgres(t) => {
                bind_all!(sqlx::query(&sql), args).execute(&mut **t).await.map_err(map_err)?.rows_affected()
            }
            Tx::MySql(t) => {
                bind_all!(sqlx::query(&sql), args).execute(&mut **t).await.map_err(map_err)?.rows_affected()
            }
        })
    }

    pub async fn fetch(&mut self, sql: &str, args: &[Val], cols: &[Col]) -> Result<Vec<Row>, StoreError> {
        let sql = placeholders(self.backend(), sql);
        Ok(match self {
            Tx::Sqlite(t) => {
                let rows = bind_all!(sqlx::query(&sql), args).fetch_all(&mut **t).await.map_err(map_err)?;
                decode_rows!(rows, cols)
            }
            Tx::Postgres(t) => {
                let rows = bind_all!(sqlx::query(&sql), args).fetch_all(&mut **t).await.map_err(map_err)?;
                decode_rows!(rows, cols)
            }
            Tx::MySql(t) => {
                let rows = bind_all!(sqlx::query(&sql), args).fetch_all(&mut **t).await.map_err(map_err)?;
                decode_rows!(rows, cols, Vec<u8>, utf8)
            }
        })
    }

    /// Runs a statement without preparing it: DDL in MySQL cannot be prepared in every form.
    pub async fn exec_raw(&mut self, sql: &str) -> Result<(), StoreError> {
        use sqlx::Executor as _;
        match self {
            Tx::Sqlite(t) => {
                t.execute(sql).await.map_err(map_err)?;
            }
            Tx::Postgres(t) => {
                t.execute(sql).await.map_err(map_err)?;
            }
            Tx::MySql(t) => {
                t.execute(sql).await.map_err(map_err)?;
            }
        };
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
            Tx::MySql(t) => t.commit().await,
        }
        .map_err(map_err)
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
            Tx::MySql(t) => t.rollback().await,
        }
        .map_err(map_err)
    }
}

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
    mysql: &'static str,
}

/// Embedded, append-only. A database records the versions it has applied in `tigw_schema_migrations`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
        mysql: include_str!("../../migrations/mysql/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../../migrations/sqlite/0002_identity.sql"),
        postgres: include_str!("../../migrations/postgres/0002_identity.sql"),
        mysql: include_str!("../../migrations/mysql/0002_identity.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../../migrations/sqlite/0003_sessions.sql"),
        postgres: include_str!("../../migrations/postgres/0003_sessions.sql"),
        mysql: include_str!("../../migrations/mysql/0003_sessions.sql"),
    },
];

/// Applies the migrations a database lacks, each in its own transaction (atomic on SQLite and
/// PostgreSQL; MySQL commits DDL implicitly, so there a failed migration must be repaired by hand).
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    tx.exec_raw(
        "CREATE TABLE IF NOT EXISTS tigw_schema_migrations (version BIGINT PRIMARY KEY, applied_at VARCHAR(40) NOT NULL)",
    )
    .await?;
    tx.commit().await?;
    let applied: Vec<i64> = db
        .fetch("SELECT version FROM tigw_schema_migrations ORDER BY version", &[], &[Col::Int])
        .await?
        .into_iter()
        .map(|r| r[0].int())
        .collect();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let script = match db.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
            Backend::MySql => m.mysql,
        };
        let mut tx = db.begin().await?;
        for stmt in split_statements(script) {
            tx.exec_raw(&stmt).await?;
        }
        tx.exec(
            "INSERT INTO tigw_schema_migrations (version, applied_at) VALUES (?, ?)",
            &[Val::Int(m.version), Val::Text(super::now())],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Splits a script on `;` at line ends; comment lines (`--`) are dropped.
fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("--") {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').to_string();
            out.push(stmt);
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        assert_eq!(placeholders(Backend::Postgres, "a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(placeholders(Backend::MySql, "a = ?"), "a = ?");
    }

    #[test]
    fn scripts_split_on_statement_ends() {
        let s = split_statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE TABLE b (\n y INT\n);\n");
        assert_eq!(s, vec!["CREATE TABLE a (x INT)", "CREATE TABLE b (\n y INT\n)"]);
    }
}

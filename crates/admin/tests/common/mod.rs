//! The per-database test harness shared by the store and identity suites.
//!
//! SQLite uses a temp file per test. PostgreSQL and MySQL get a fresh database per test
//! (`tigw_test_<random>`, created through `TIGATEWAY_TEST_PG_URL` / `TIGATEWAY_TEST_MYSQL_URL` and
//! dropped afterwards), so tests run in parallel without seeing each other. Without the variable a
//! test is skipped with a note, unless `CI` is set: a missing database in CI is a failure.
#![allow(dead_code)]

use std::future::Future;

use sqlx::Executor as _;
use tigateway_admin::store::Store;

#[derive(Clone, Copy, Debug)]
pub enum Target {
    Sqlite,
    Postgres,
    MySql,
}

struct TestDb {
    url: String,
    server: Option<(Target, String, String)>,
    _dir: Option<tempfile::TempDir>,
}

pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..].find('/').map(|i| i + after_scheme).unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..host_end])
}

fn server_url(target: Target) -> Option<String> {
    let var = match target {
        Target::Sqlite => return None,
        Target::Postgres => "TIGATEWAY_TEST_PG_URL",
        Target::MySql => "TIGATEWAY_TEST_MYSQL_URL",
    };
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set but CI is: the {target:?} store tests must run")
        }
        _ => {
            eprintln!("note: {var} is not set; skipping the {target:?} store test");
            None
        }
    }
}

async fn admin_exec(target: Target, server: &str, sql: &str) {
    match target {
        Target::Postgres => {
            let pool = sqlx::PgPool::connect(server).await.expect("connect to PostgreSQL");
            pool.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        }
        Target::MySql => {
            let pool = sqlx::MySqlPool::connect(server).await.expect("connect to MySQL");
            pool.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        }
        Target::Sqlite => unreachable!(),
    }
}

async fn setup(target: Target) -> Option<TestDb> {
    if let Target::Sqlite = target {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("store.db").display());
        return Some(TestDb { url, server: None, _dir: Some(dir) });
    }
    let server = server_url(target)?;
    let name = format!("tigw_test_{:016x}", rand::random::<u64>());
    let create = match target {
        Target::MySql => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
        _ => format!("CREATE DATABASE {name}"),
    };
    admin_exec(target, &server, &create).await;
    Some(TestDb { url: with_database(&server, &name), server: Some((target, server, name)), _dir: None })
}

async fn teardown(db: TestDb) {
    if let Some((target, server, name)) = db.server {
        let drop = match target {
            Target::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        };
        admin_exec(target, &server, &drop).await;
    }
}

/// Runs one test body on a fresh database and always drops it, even when the body panics.
pub async fn run<F, Fut>(target: Target, body: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = setup(target).await else { return };
    let store = Store::open(&db.url).await.expect("open store");
    let outcome = tokio::spawn(body(store.clone(), db.url.clone())).await;
    store.close().await;
    teardown(db).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[macro_export]
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::run(super::Target::Sqlite, super::$name).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::run(super::Target::Postgres, super::$name).await } )*
        }
        mod mysql {
            $( #[tokio::test] async fn $name() { super::run(super::Target::MySql, super::$name).await } )*
        }
    };
}

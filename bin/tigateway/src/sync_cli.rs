//! CLI wiring for admin → gateway sync: `tigateway gateway --sync websocket|http --admin …` on the
//! gateway side, `--sync-publish` on the admin side.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use tigateway_model::sync_wire::DEFAULT_NAMESPACE;
use tigateway_proxy::SnapshotStore;
use tigateway_sync::cache::{CacheLevels, DiskCache, RedisCache};
use tigateway_sync::shenyu::{Applier, SyncStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyncMethod {
    /// ShenYu websocket sync (`ws://admin:9095/websocket`).
    Websocket,
    /// ShenYu HTTP long polling (`http://admin:9095`).
    Http,
    /// A ShenYu-layout tree in ZooKeeper (`--zookeeper host:port`).
    Zookeeper,
    /// A ShenYu-layout tree in etcd (`--etcd http://host:port`).
    Etcd,
}

/// Gateway flags for following an admin instead of a file.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewaySync {
    /// Follow an admin instead of a config file.
    #[arg(long, value_enum)]
    pub sync: Option<SyncMethod>,
    /// Admin URLs, comma-separated, tried in order with failover: `ws://a1:9095/websocket,…` for
    /// websocket, `http://a1:9095,…` for http.
    #[arg(long, value_delimiter = ',', requires = "sync")]
    pub admin: Vec<String>,
    #[command(flatten)]
    pub node: crate::sync_zk_etcd::NodeSyncArgs,
    /// The admin's `--sync-token` (websocket; sent as the `x-tigateway-sync-token` header). Websocket
    /// needs it or `--sync-username`/`--sync-password`.
    #[arg(long, env = "TIGATEWAY_SYNC_TOKEN")]
    pub sync_token: Option<String>,
    /// `Origin` header for the websocket handshake (for ShenYu admins with `allowOrigins` set).
    #[arg(long)]
    pub sync_origin: Option<String>,
    /// Admin user (one whose roles may read the config) for `/platform/login`, used by long polling
    /// and, before each connection, by websocket; ZooKeeper digest / etcd user.
    #[arg(long, env = "TIGATEWAY_SYNC_USERNAME")]
    pub sync_username: Option<String>,
    #[arg(long, env = "TIGATEWAY_SYNC_PASSWORD", hide_env_values = true)]
    pub sync_password: Option<String>,
    /// ShenYu namespace id.
    #[arg(long, env = "TIGATEWAY_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Where the last good config from the admin is kept, for starts without a reachable admin.
    #[arg(long, default_value = "./data")]
    pub cache_dir: PathBuf,
    /// Shared cache level written by the admin (`redis://host:6379/0`): a gateway starting while no
    /// admin answers loads the newest published config from there before trying its disk cache.
    #[arg(long)]
    pub cache_redis: Option<String>,
    /// How long start-up waits for the admin (or ZooKeeper / etcd) before serving from the cache.
    #[arg(long, default_value_t = 10_000)]
    pub sync_wait_ms: u64,
}

/// Admin flags for publishing to gateways.
#[derive(clap::Args, Debug, Clone)]
pub struct AdminPublish {
    /// Sync methods to publish through, comma-separated: `websocket`, `http` (served by the admin
    /// itself), `zookeeper`, `etcd` (written into the tree; needs `--zookeeper` / `--etcd`).
    #[arg(long, value_delimiter = ',', default_value = "websocket,http")]
    pub sync_publish: Vec<String>,
    /// A shared secret websocket clients may present (header `x-tigateway-sync-token` or
    /// `?token=`) instead of an admin token that may read the config (`X-Access-Token` or
    /// `?token=`). Without one of the two a client gets 401.
    #[arg(long, env = "TIGATEWAY_SYNC_TOKEN")]
    pub sync_token: Option<String>,
    /// The ShenYu namespace id published.
    #[arg(long = "namespace", alias = "sync-namespace", env = "TIGATEWAY_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// ZooKeeper digest / etcd user (with `--sync-password`) for the published tree.
    #[arg(long, env = "TIGATEWAY_SYNC_USERNAME")]
    pub sync_username: Option<String>,
    #[arg(long, env = "TIGATEWAY_SYNC_PASSWORD", hide_env_values = true)]
    pub sync_password: Option<String>,
    #[command(flatten)]
    pub node: crate::sync_zk_etcd::NodeSyncArgs,
    /// How often the database is checked for commits by other admins (admin HA), in ms.
    #[arg(long, default_value_t = 250)]
    pub sync_poll_ms: u64,
    /// Also write each published config to Redis (`redis://host:6379/0`), for gateways that start
    /// while no admin answers (`tigateway gateway --cache-redis`).
    #[arg(long)]
    pub cache_redis: Option<String>,
}

impl AdminPublish {
    /// Starts the ZooKeeper / etcd publishers named in `--sync-publish` (on the current runtime).
    pub fn start_node_publishers(&self, store: &tigateway_admin::store::Store) -> anyhow::Result<()> {
        let access = crate::sync_zk_etcd::Access {
            namespace: &self.namespace,
            username: self.sync_username.as_deref(),
            password: self.sync_password.as_deref(),
        };
        crate::sync_zk_etcd::start_publishers(store, &self.sync_publish, &self.node, &access)
    }

    fn settings(&self) -> anyhow::Result<tigateway_admin::sync::SyncSettings> {
        let mut s = tigateway_admin::sync::SyncSettings {
            websocket: false,
            http: false,
            token: self.sync_token.clone().filter(|t| !t.is_empty()),
            namespace: self.namespace.clone(),
            poll_interval: Duration::from_millis(self.sync_poll_ms.max(10)),
            ..Default::default()
        };
        for m in &self.sync_publish {
            match m.trim() {
                "websocket" => s.websocket = true,
                "http" => s.http = true,
                // Written into the tree by their publishers (`sync_zk_etcd::start_publishers`).
                "zookeeper" | "etcd" | "" | "none" => {}
                other => anyhow::bail!("--sync-publish: unknown method {other:?} (websocket, http, zookeeper, etcd)"),
            }
        }
        Ok(s)
    }
}

/// The admin router with the sync endpoints merged in, and the publisher following `store`.
pub async fn with_sync_routes(
    app: axum::Router,
    state: tigateway_admin::api::AppState,
    publish: &AdminPublish,
) -> anyhow::Result<axum::Router> {
    let settings = publish.settings()?;
    let redis = redis_cache(publish.cache_redis.as_deref(), &settings.namespace)?;
    if !settings.websocket && !settings.http && redis.is_none() {
        return Ok(app);
    }
    let publisher = tigateway_admin::sync::Publisher::start(state.store.clone(), settings.clone())
        .await
        .map_err(|e| anyhow::anyhow!("starting the sync publisher: {e}"))?;
    tracing::info!(websocket = settings.websocket, http = settings.http, "publishing config to gateways");
    if let Some(redis) = redis {
        let mut changes = publisher.watch();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let p = changes.borrow_and_update().clone();
                match redis.save(&p.config, &format!("admin revision {}", p.revision)).await {
                    Ok(()) => {
                        if failing {
                            tracing::info!(key = redis.key(), "writing the config to Redis works again");
                        }
                        failing = false;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "the shared Redis cache is not updated");
                    }
                    Err(_) => {}
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    Ok(app.merge(tigateway_admin::sync::router(publisher, state)))
}

impl SyncMethod {
    /// The source name in logs, `/ready` and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            SyncMethod::Websocket => "websocket",
            SyncMethod::Http => "http",
            SyncMethod::Zookeeper => "zookeeper",
            SyncMethod::Etcd => "etcd",
        }
    }
}

/// `tigateway gateway --sync …`: follows the admin (or the ZooKeeper / etcd tree) into `store`.
/// Every method hands whole configs to one `Applier` (compile, swap, disk cache, status reported
/// to readiness and metrics as it changes) and starts through the same cache fallback. The
/// returned value keeps it running.
pub fn start_source(
    args: GatewaySync,
    store: &Arc<SnapshotStore>,
    control: &tokio::runtime::Runtime,
    client_port: u16,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let method = args.sync.context("--sync is required")?;
    let name = method.name();
    if matches!(method, SyncMethod::Websocket | SyncMethod::Http) {
        anyhow::ensure!(!args.admin.is_empty(), "--admin URL[,URL…] is required with --sync websocket|http");
    }
    let ws_login = if method == SyncMethod::Websocket { websocket_login(&args)? } else { None };
    let redis = redis_cache(args.cache_redis.as_deref(), &args.namespace)?;
    let sources = store.observe().sources.clone();
    sources.register(name);
    let status = Arc::new(SyncStatus::new(name, Some(Box::new(crate::observe::SourceReport::new(sources, name)))));
    let cache = DiskCache::new(&args.cache_dir);
    let (prepare_store, swap_store) = (store.clone(), store.clone());
    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let applier = Applier::start(
        move |c| prepare_store.prepare(c).map_err(|e| e.to_string()),
        move |snap| {
            let gen = generation.fetch_add(1, Ordering::Relaxed) + 1;
            swap_store.swap_from(name, gen, snap);
        },
        Some(cache.clone()),
        status,
        Duration::from_millis(50),
    );
    let running: Box<dyn std::any::Any> = match method {
        SyncMethod::Websocket => {
            let mut o = tigateway_sync::websocket::WsOptions::new(args.admin.clone());
            o.token = args.sync_token.clone().filter(|t| !t.is_empty());
            o.login = ws_login;
            o.origin = args.sync_origin.clone();
            o.namespace = args.namespace.clone();
            o.client_port = client_port;
            Box::new(tigateway_sync::websocket::spawn(o, applier.clone()))
        }
        SyncMethod::Http => {
            let user = args.sync_username.clone().context("--sync-username is required with --sync http")?;
            let password = args.sync_password.clone().context("--sync-password is required with --sync http")?;
            let mut o = tigateway_sync::http_poll::HttpOptions::new(args.admin.clone(), user, password);
            o.namespace = args.namespace.clone();
            o.client_port = client_port;
            Box::new(tigateway_sync::http_poll::spawn(o, applier.clone()))
        }
        SyncMethod::Zookeeper | SyncMethod::Etcd => {
            let access = crate::sync_zk_etcd::Access {
                namespace: &args.namespace,
                username: args.sync_username.as_deref(),
                password: args.sync_password.as_deref(),
            };
            Box::new(crate::sync_zk_etcd::spawn_source(name, &args.node, &access, applier.clone())?)
        }
    };
    // Until the source answers (or once it has failed everywhere), serve a cached config; the
    // source keeps trying and replaces it when it answers.
    let levels = CacheLevels { redis, disk: Some(cache) };
    control.block_on(applier.first_config(&levels, Duration::from_millis(args.sync_wait_ms)));
    Ok(Box::new((applier, running)))
}

/// The admin login a websocket gateway uses, after checking it has some credential: the admin
/// serves nobody anonymously, so starting without one would only fail forever.
fn websocket_login(args: &GatewaySync) -> anyhow::Result<Option<tigateway_sync::http_poll::Credentials>> {
    let user = args.sync_username.clone().filter(|u| !u.is_empty());
    let password = args.sync_password.clone().filter(|p| !p.is_empty());
    let has_token = args.sync_token.as_deref().is_some_and(|t| !t.is_empty());
    match (user, password) {
        (Some(username), Some(password)) => Ok(Some(tigateway_sync::http_poll::Credentials { username, password })),
        (None, None) if has_token => Ok(None),
        (None, None) => anyhow::bail!(
            "--sync websocket needs a credential: --sync-token T (the admin's --sync-token) or \
             --sync-username U --sync-password P (an admin user whose roles may read the config)"
        ),
        (Some(_), None) => anyhow::bail!("--sync-username needs --sync-password"),
        (None, Some(_)) => anyhow::bail!("--sync-password needs --sync-username"),
    }
}

/// The shared Redis cache level of `--cache-redis` (admins write it, gateways read it at start).
fn redis_cache(url: Option<&str>, namespace: &str) -> anyhow::Result<Option<RedisCache>> {
    url.map(|u| RedisCache::new(u, namespace)).transpose().map_err(anyhow::Error::msg)
}

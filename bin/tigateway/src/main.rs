//! The `tigateway` command. `anyhow` lives here only, at the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tigateway_proxy::{listener_specs, Gateway, SnapshotStore};
use tigateway_upstream::Registry;

mod explain_cmd;
mod sync_cli;
mod sync_zk_etcd;
mod trace_args;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tigateway",
    version,
    about = "TiGateway: a fast, Kubernetes-native, ShenYu- and Spring Cloud Gateway-compatible API gateway"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TIGATEWAY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Write the whole stored config to FILE (`.json` for JSON, anything else YAML).
    Export { file: PathBuf },
    /// Replace the stored config with FILE (native, Spring `application.yml` routes or
    /// `routes.json`), validated whole before anything is written.
    Import {
        file: PathBuf,
        /// Validate and show what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Settings of the admin API (in `admin` and `standalone`).
#[derive(clap::Args, Clone)]
struct AdminOptions {
    /// Proxies (IPs or CIDRs, comma-separated) in front of the admin whose `X-Forwarded-For` names
    /// the client; login throttling per address uses it. Default: none (the peer address counts).
    #[arg(long, value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a login session lasts, in seconds.
    #[arg(long, default_value_t = 3600)]
    session_ttl_secs: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway on a config file or directory (native YAML/JSON, Spring `application.yml`,
    /// `routes.json`, or a ConfigMap directory). The file is watched and reloaded when it changes.
    Gateway {
        /// Config file or directory (or follow an admin with `--sync`).
        #[arg(short = 'c', long = "config", required_unless_present = "sync", conflicts_with = "sync")]
        config: Option<PathBuf>,
        /// Listen address, overriding the config's listeners (default 0.0.0.0:9195).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Worker threads (default: number of cores).
        #[arg(long)]
        workers: Option<usize>,
        #[command(flatten)]
        trace: trace_args::TraceArgs,
        #[command(flatten)]
        observe: ObserveArgs,
        #[command(flatten)]
        follow: sync_cli::GatewaySync,
    },
    /// Admin API and gateway in one process, everything stored in an embedded SQLite file: no other
    /// service needed. A change made through the API is served by the gateway at once.
    Standalone {
        /// Where the SQLite database lives.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Admin API address (loopback by default: expose it deliberately).
        #[arg(long, default_value = "127.0.0.1:9095")]
        admin_listen: SocketAddr,
        /// Gateway address.
        #[arg(long, default_value = "0.0.0.0:9195")]
        listen: SocketAddr,
        /// Worker threads (default: number of cores).
        #[arg(long)]
        workers: Option<usize>,
        #[command(flatten)]
        admin: AdminOptions,
        #[command(flatten)]
        trace: trace_args::TraceArgs,
        #[command(flatten)]
        observe: ObserveArgs,
        #[command(flatten)]
        publish: sync_cli::AdminPublish,
    },
    /// Run the admin API alone against PostgreSQL, MySQL/MariaDB or SQLite; or, with `export` /
    /// `import`, back up and restore its whole config.
    Admin {
        /// `postgres://…`, `mysql://…` or `sqlite://path?mode=rwc`.
        #[arg(long, env = "TIGATEWAY_DATABASE_URL")]
        database_url: String,
        /// Admin API address (loopback by default).
        #[arg(long, default_value = "127.0.0.1:9095")]
        listen: SocketAddr,
        #[command(flatten)]
        admin: AdminOptions,
        /// Metrics listener (`/metrics`, `/health`, `/ready`) of the admin, or `off`.
        #[arg(long, default_value = "127.0.0.1:9096", env = "TIGATEWAY_ADMIN_METRICS")]
        metrics: String,
        #[command(flatten)]
        publish: sync_cli::AdminPublish,
        #[command(subcommand)]
        action: Option<AdminAction>,
    },
    /// Explain how a config handles a request: the plugins in chain order, the selector and rule
    /// each chose, the condition that failed for every other candidate, Spring routes, and the
    /// outcome (proxied where, redirect, 404). Exit 0 when explained, 1 for a bad config, 2 for a
    /// malformed request description.
    Explain(explain_cmd::ExplainArgs),
    /// Check a config: exit 0 if valid, else print every error with its location and exit 1.
    Validate {
        /// Config file or directory.
        file: PathBuf,
    },
}

/// Observability switches shared by `gateway` and `standalone`.
#[derive(clap::Args)]
struct ObserveArgs {
    /// Metrics listener serving `/metrics` (Prometheus/OpenMetrics), `/health` and `/ready`; `off`
    /// disables it.
    #[arg(long, default_value = "127.0.0.1:9196", env = "TIGATEWAY_METRICS")]
    metrics: String,
    /// Access log: `stdout`, a file path (rotated by size), or `off`. Overrides
    /// `server.accessLog.enabled` / `output`.
    #[arg(long, env = "TIGATEWAY_ACCESS_LOG")]
    access_log: Option<String>,
}

mod observe;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Gateway { config, follow, listen, workers, trace, observe } => {
            let source = match config {
                Some(path) => GatewaySource::File(path),
                None => GatewaySource::Sync(follow),
            };
            run_gateway(source, listen, workers, trace, observe)
        }
        Command::Validate { file } => return validate(&file),
        Command::Explain(args) => return explain_cmd::run(args),
        Command::Standalone { data_dir, admin_listen, listen, workers, admin, trace, observe, publish } => {
            run_standalone(data_dir, admin_listen, listen, workers, admin, trace, observe, publish)
        }
        Command::Admin { database_url, listen, admin, metrics, publish, action: None } => {
            run_admin(database_url, listen, admin, metrics, publish)
        }
        Command::Admin { database_url, action: Some(action), .. } => admin_action(&database_url, action),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn validate(path: &std::path::Path) -> std::process::ExitCode {
    let cfg = match tigateway_sync::file::load_path(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let registry = Arc::new(Registry::new(&cfg.server.upstream));
    match tigateway_proxy::build_snapshot(Arc::new(cfg), &registry, 0) {
        Ok(_) => {
            println!("{}: ok", path.display());
            std::process::ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{}: {e}", path.display());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Control tasks (admin API, config sources, metrics listener, health checks, demo upstream) get
/// their own small runtime, away from the workers' request loops.
fn control_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("tigw-control").enable_all().build()
}

/// Where `tigateway gateway` takes its config from.
enum GatewaySource {
    File(PathBuf),
    Sync(sync_cli::GatewaySync),
}

fn run_gateway(
    source: GatewaySource,
    listen: Option<SocketAddr>,
    workers: Option<usize>,
    trace: trace_args::TraceArgs,
    args: ObserveArgs,
) -> anyhow::Result<()> {
    let control = control_runtime()?;
    let _guard = control.enter();
    let obs = observe::start(&control, &args)?;

    // The store starts empty; the watcher's first read (synchronous, before `start_with` returns)
    // loads, validates, compiles and swaps in the file's config, so the file is read and compiled
    // once at start. An invalid file at start is an error here.
    let registry = Arc::new(Registry::new(&tigateway_model::UpstreamConfig::default()));
    let store = SnapshotStore::new_observed(tigateway_model::Config::default(), registry, obs.clone())
        .map_err(|e| anyhow::anyhow!("empty config did not compile: {e}"))?;
    // Every source applies through the same prepare/swap pair and reports to readiness; the
    // returned value keeps it running.
    let _source: Box<dyn std::any::Any> = match source {
        GatewaySource::File(path) => Box::new(
            observe::watch_file(&store, path.clone())
                .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", path.display()))?,
        ),
        GatewaySource::Sync(follow) => {
            let port = listen.map(|a| a.port()).unwrap_or(9195);
            sync_cli::start_source(follow, &store, &control, port)?
        }
    };
    let cfg = store.load().config.clone();
    observe::start_access_log(&obs, &args, &cfg.server.access_log)?;
    let listeners = listener_specs(&cfg, listen).map_err(anyhow::Error::msg)?;

    let _tracing = trace.start(cfg.server.tracing.clone())?;
    for addr in &cfg.demo_upstreams {
        let addr: SocketAddr = addr.parse().context("demoUpstreams address")?;
        control.spawn(async move {
            if let Err(e) = tigateway_proxy::demo::run_echo(addr).await {
                tracing::error!(%addr, error = %e, "demo upstream failed");
            }
        });
    }
    let health_store = store.clone();
    control.spawn(async move { tigateway_proxy::spawn_health_checks(health_store).await.ok() });
    drop(cfg);

    serve_until_signal(&control, store, listeners, workers)
}

/// Opens the store, creates the first admin if there is none, and serves the admin API. The first
/// admin's password comes from `TIGATEWAY_ADMIN_PASSWORD`, or is generated and logged once.
async fn start_admin(
    url: &str,
    listen: SocketAddr,
    opts: AdminOptions,
    metrics: Arc<tigateway_observe::AdminMetrics>,
    publish: &sync_cli::AdminPublish,
) -> anyhow::Result<tigateway_admin::store::Store> {
    let store =
        tigateway_admin::store::Store::open(url).await.map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
    let identity = tigateway_admin::identity::Identity::new(&store);
    let initial = std::env::var("TIGATEWAY_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    match identity.bootstrap(initial).await.map_err(|e| anyhow::anyhow!("creating the first admin: {e}"))? {
        Some(generated) => tracing::warn!(
            "created the admin user `admin` with the one-time password {generated} (shown only now; set \
             TIGATEWAY_ADMIN_PASSWORD to choose it, and change it through the API)"
        ),
        None => tracing::info!("admin users present"),
    }
    let mut state = tigateway_admin::api::AppState::new(store.clone(), identity);
    state.session_ttl = std::time::Duration::from_secs(opts.session_ttl_secs.max(1));
    state.trusted_proxies = Arc::from(opts.trusted_proxies);
    let app = sync_cli::with_sync_routes(tigateway_admin::api::router(state.clone()), state, publish).await?;
    let app = observe::count_admin_requests(app, metrics);
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding the admin API on {listen}"))?;
    tracing::info!(address = %listen, "admin API listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(store)
}

fn admin_action(url: &str, action: AdminAction) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let store =
            tigateway_admin::store::Store::open(url).await.map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
        match action {
            AdminAction::Export { file } => {
                let cfg = store.export().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let text = if file.extension().is_some_and(|e| e == "json") {
                    serde_json::to_string_pretty(&cfg)?
                } else {
                    serde_yaml::to_string(&cfg)?
                };
                std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
                println!(
                    "exported revision {} to {}",
                    store.current_revision().await.map_err(|e| anyhow::anyhow!("{e}"))?,
                    file.display()
                );
            }
            AdminAction::Import { file, dry_run } => {
                let mut cfg = tigateway_sync::file::load_path(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
                if cfg.plugins.is_empty() {
                    // A file without a `plugins` section (a routes.json, a Spring file) is about
                    // routes and selectors: the stored plugin list stays as it is.
                    cfg.plugins = store.export().await.map_err(|e| anyhow::anyhow!("{e}"))?.plugins;
                }
                let out = store
                    .import(cfg, dry_run, "cli")
                    .await
                    .map_err(|e| anyhow::anyhow!("import refused, nothing written:\n{e}"))?;
                for c in &out.changes {
                    println!("{:?} {} {}", c.kind, c.group, c.id);
                }
                if dry_run {
                    println!("dry run: {} change(s), nothing written", out.changes.len());
                } else {
                    println!("imported as revision {} ({} change(s))", out.revision, out.changes.len());
                }
            }
        }
        store.close().await;
        Ok(())
    })
}

fn run_admin(
    url: String,
    listen: SocketAddr,
    opts: AdminOptions,
    metrics: String,
    publish: sync_cli::AdminPublish,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let _guard = rt.enter();
    let obs = observe::start(&rt, &ObserveArgs { metrics, access_log: Some("off".into()) })?;
    // The admin alone has no snapshot: it is ready once its store answers.
    obs.sources.register("store");
    rt.block_on(async {
        let store = start_admin(&url, listen, opts, obs.admin.clone(), &publish).await?;
        publish.start_node_publishers(&store)?;
        obs.sources.set_connected("store", true, false);
        obs.sources.applied("store", 0, 0, std::time::Duration::ZERO);
        shutdown_signal().await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn run_standalone(
    data_dir: PathBuf,
    admin_listen: SocketAddr,
    listen: SocketAddr,
    workers: Option<usize>,
    opts: AdminOptions,
    trace: trace_args::TraceArgs,
    args: ObserveArgs,
    publish: sync_cli::AdminPublish,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let url = format!("sqlite://{}?mode=rwc", data_dir.join("tigateway.db").display());
    let control = control_runtime()?;
    let _guard = control.enter();
    let obs = observe::start(&control, &args)?;
    obs.sources.register(observe::STORE_SOURCE);
    let store = control.block_on(start_admin(&url, admin_listen, opts, obs.admin.clone(), &publish))?;
    obs.sources.set_connected(observe::STORE_SOURCE, true, false);
    publish.start_node_publishers(&store)?;

    // The gateway takes the store's config through the same snapshot path as every other source:
    // each committed change becomes one new snapshot, swapped atomically.
    let registry = Arc::new(Registry::new(&tigateway_model::UpstreamConfig::default()));
    let snapshots = SnapshotStore::new_observed(tigateway_model::Config::default(), registry, obs.clone())
        .map_err(|e| anyhow::anyhow!("empty config did not compile: {e}"))?;
    let revision = control.block_on(store.current_revision()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let initial = control.block_on(store.load_config()).map_err(|e| anyhow::anyhow!("loading the config: {e}"))?;
    let _tracing = trace.start(initial.server.tracing.clone())?;
    observe::start_access_log(&obs, &args, &initial.server.access_log)?;
    let snap = snapshots.prepare(initial).map_err(|e| anyhow::anyhow!("the stored config does not compile:\n{e}"))?;
    snapshots.swap_from(observe::STORE_SOURCE, revision as u64, snap);
    let follower = snapshots.clone();
    let mut changes = store.subscribe();
    control.spawn(async move {
        while changes.changed().await.is_ok() {
            let revision = *changes.borrow_and_update();
            let sources = &follower.observe().sources;
            sources.change_seen(observe::STORE_SOURCE);
            match store.load_config().await {
                Ok(cfg) => match follower.prepare(cfg) {
                    Ok(snap) => {
                        follower.swap_from(observe::STORE_SOURCE, revision as u64, snap);
                        tracing::info!(revision, "admin change applied");
                    }
                    Err(e) => {
                        sources.rejected(observe::STORE_SOURCE, &e.to_string());
                        tracing::error!(revision, "admin change does not compile; previous config keeps serving:\n{e}")
                    }
                },
                Err(e) => {
                    sources.rejected(observe::STORE_SOURCE, &e.to_string());
                    tracing::error!(revision, error = %e, "reading the admin change failed")
                }
            }
        }
    });
    let health = snapshots.clone();
    control.spawn(async move { tigateway_proxy::spawn_health_checks(health).await.ok() });

    let listeners = vec![tigateway_proxy::ListenerSpec { addr: listen, tls: None, http2: true }];
    serve_until_signal(&control, snapshots, listeners, workers)
}

/// Starts the data plane's workers and serves until SIGTERM/SIGINT, then drains in-flight requests.
fn serve_until_signal(
    control: &tokio::runtime::Runtime,
    store: Arc<SnapshotStore>,
    listeners: Vec<tigateway_proxy::ListenerSpec>,
    workers: Option<usize>,
) -> anyhow::Result<()> {
    let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let gateway = Gateway::start(store, listeners, workers).context("starting listeners")?;
    for a in &gateway.local_addrs {
        tracing::info!(address = %a, workers, "gateway listening");
    }
    control.block_on(shutdown_signal());
    tracing::info!("shutting down: draining in-flight requests");
    gateway.shutdown();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

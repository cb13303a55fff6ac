//! The `tigateway` command. `anyhow` lives here only, at the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tigateway_proxy::{listener_specs, Gateway, SnapshotStore};
use tigateway_upstream::Registry;

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
enum Command {
    /// Run the gateway on a config file or directory (native YAML/JSON, Spring `application.yml`,
    /// `routes.json`, or a ConfigMap directory). The file is watched and reloaded when it changes.
    Gateway {
        /// Config file or directory.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Listen address, overriding the config's listeners (default 0.0.0.0:9195).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Worker threads (default: number of cores).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Check a config: exit 0 if valid, else print every error with its location and exit 1.
    Validate {
        /// Config file or directory.
        file: PathBuf,
    },
}

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
        Command::Gateway { config, listen, workers } => run_gateway(config, listen, workers),
        Command::Validate { file } => return validate(&file),
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

fn run_gateway(path: PathBuf, listen: Option<SocketAddr>, workers: Option<usize>) -> anyhow::Result<()> {
    // The store starts empty; the watcher's first read (synchronous, before `start_with` returns)
    // loads, validates, compiles and swaps in the file's config, so the file is read and compiled
    // once at start. An invalid file at start is an error here.
    let registry = Arc::new(Registry::new(&tigateway_model::UpstreamConfig::default()));
    let store = SnapshotStore::new(tigateway_model::Config::default(), registry)
        .map_err(|e| anyhow::anyhow!("empty config did not compile: {e}"))?;
    let prepare_store = store.clone();
    let swap_store = store.clone();
    let _watch = tigateway_sync::file::FileWatcher::new(path.clone())
        .start_with(
            move |c| prepare_store.prepare(c).map_err(|e| e.to_string()),
            move |snap| {
                swap_store.swap(snap);
            },
        )
        .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", path.display()))?;
    let cfg = store.load().config.clone();
    let listeners = listener_specs(&cfg, listen).map_err(anyhow::Error::msg)?;

    // Control tasks (file watch, health checks, demo upstream) get their own small runtime, away
    // from the workers' request loops.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tigw-control")
        .enable_all()
        .build()?;
    let _guard = control.enter();
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

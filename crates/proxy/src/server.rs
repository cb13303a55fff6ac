//! Listeners and workers: thread-per-core, one current-thread runtime per worker, each with its own
//! SO_REUSEPORT listening socket so the kernel spreads connections and nothing is shared per request
//! but the snapshot pointer. Graceful shutdown stops accepting and drains in-flight requests.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::pool::Pool;
use crate::service::{handle, ConnInfo, Worker};
use crate::snapshot::SnapshotStore;
use crate::sniff::Sniff;

#[derive(Clone)]
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub http2: bool,
}

/// Listener specs from the config, or one plain listener on `default_listen`.
pub fn listener_specs(
    cfg: &tigateway_model::Config,
    default_listen: Option<SocketAddr>,
) -> Result<Vec<ListenerSpec>, String> {
    if let Some(addr) = default_listen {
        return Ok(vec![ListenerSpec { addr, tls: None, http2: true }]);
    }
    if cfg.server.listeners.is_empty() {
        return Ok(vec![ListenerSpec { addr: ([0, 0, 0, 0], 9195).into(), tls: None, http2: true }]);
    }
    cfg.server
        .listeners
        .iter()
        .map(|l| {
            let addr = l.address.parse().map_err(|_| format!("bad listener address {:?}", l.address))?;
            let tls = l.tls.as_ref().map(|t| crate::tls::server_config(t, l.http2)).transpose()?;
            Ok(ListenerSpec { addr, tls, http2: l.http2 })
        })
        .collect()
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.set_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A running gateway data plane.
pub struct Gateway {
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub local_addrs: Vec<SocketAddr>,
}

impl Gateway {
    /// Binds every listener once per worker and starts the workers.
    pub fn start(store: Arc<SnapshotStore>, listeners: Vec<ListenerSpec>, workers: usize) -> std::io::Result<Gateway> {
        let workers = workers.max(1);
        let (tx, rx) = watch::channel(false);
        // Bind the first worker's sockets here, so a port-0 listener's real port is known and every
        // worker joins the same port.
        let mut addrs = Vec::new();
        let mut per_worker: Vec<Vec<(std::net::TcpListener, ListenerSpec)>> =
            (0..workers).map(|_| Vec::new()).collect();
        for spec in &listeners {
            let first = bind(spec.addr)?;
            let addr = first.local_addr()?;
            addrs.push(addr);
            per_worker[0].push((first, spec.clone()));
            for w in per_worker.iter_mut().skip(1) {
                w.push((bind(addr)?, spec.clone()));
            }
        }
        let mut threads = Vec::new();
        for (i, socks) in per_worker.into_iter().enumerate() {
            let store = store.clone();
            let rx = rx.clone();
            let t = std::thread::Builder::new().name(format!("tigw-worker-{i}")).spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                rt.block_on(run_worker(store, socks, rx));
            })?;
            threads.push(t);
        }
        Ok(Gateway { shutdown: tx, threads, local_addrs: addrs })
    }

    /// Stops accepting, waits for in-flight requests up to the config's shutdown timeout, then returns.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// How far ahead the worker's timer always has an entry (see [`timer_heartbeat`]).
const TIMER_HEARTBEAT: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`TIMER_HEARTBEAT`] on this worker's runtime. Tokio's time driver
/// writes the runtime's eventfd whenever a timer is armed earlier than the driver's next planned
/// wake-up — also when it is armed by the runtime's own thread, which is awake anyway. Every
/// request arms two (hyper's header-read timeout, the upstream response timeout), and without an
/// earlier timer pending that cost a `write` syscall on ~60 % of requests plus the spurious
/// `epoll_wait` return it causes. With this heartbeat pending, request timers (seconds away) are
/// never the earliest and arm without a syscall; the price is one wake-up per second per worker.
async fn timer_heartbeat() {
    let mut tick = tokio::time::interval(TIMER_HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

async fn run_worker(
    store: Arc<SnapshotStore>,
    socks: Vec<(std::net::TcpListener, ListenerSpec)>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(timer_heartbeat());
    let up = store.load().upstream.clone();
    let pool = Pool::new(up.pool_max_idle_per_host, Duration::from_millis(up.pool_idle_timeout_ms));
    let worker = Arc::new(Worker { store: store.clone(), pool });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut accept_tasks = Vec::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<(TcpStream, SocketAddr, ListenerSpec)>();
    for (sock, spec) in socks {
        let listener = match TcpListener::from_std(sock) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "listener setup failed");
                continue;
            }
        };
        let tx = conn_tx.clone();
        let mut stop = shutdown.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, peer)) => { if tx.send((s, peer, spec.clone())).is_err() { break; } }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    drop(conn_tx);
    loop {
        tokio::select! {
            c = conn_rx.recv() => match c {
                Some((stream, peer, spec)) => serve_conn(&worker, &graceful, stream, peer, spec),
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    for t in accept_tasks {
        t.abort();
    }
    let timeout = Duration::from_millis(store.load().config.server.shutdown_timeout_ms);
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("graceful shutdown timed out; closing remaining connections");
    }
}

fn builder(store: &SnapshotStore, http2: bool) -> auto::Builder<TokioExecutor> {
    let snap = store.load();
    let limits = &snap.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size((limits.max_header_bytes + limits.max_uri_bytes + 1024).max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    b.http2().timer(TokioTimer::new()).max_header_list_size((limits.max_header_bytes + limits.max_uri_bytes) as u32);
    if !http2 {
        b = b.http1_only();
    }
    b
}

/// Counts a client connection as open (`tigateway_active_connections`) while alive.
struct ConnOpen(Arc<tigateway_observe::GatewayMetrics>);

impl ConnOpen {
    fn new(m: &Arc<tigateway_observe::GatewayMetrics>) -> ConnOpen {
        m.connection_opened();
        ConnOpen(m.clone())
    }
}

impl Drop for ConnOpen {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Best-effort 408 on a connection whose request head did not arrive in time.
fn send_408(sock: socket2::Socket) {
    use std::io::Write;
    const RESP: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 47\r\n\r\n{\"code\":408,\"message\":\"request head timed out\"}";
    // The socket is non-blocking (shared with the runtime's copy); a 150-byte answer fits the send
    // buffer of a connection that has not been answered yet.
    let _ = (&sock).write(RESP);
    let _ = sock.shutdown(std::net::Shutdown::Write);
}

fn serve_conn(
    worker: &Arc<Worker>,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    stream: TcpStream,
    peer: SocketAddr,
    spec: ListenerSpec,
) {
    let _ = stream.set_nodelay(true);
    let b = builder(&worker.store, spec.http2);
    let conflict = Arc::new(AtomicU64::new(0));
    let conn_info = Arc::new(ConnInfo {
        peer,
        peer_value: crate::forwarded::peer_header_value(peer.ip()),
        tls: spec.tls.is_some(),
        framing_conflict: conflict.clone(),
        requests: AtomicU64::new(0),
    });
    let w = worker.clone();
    let svc = service_fn(move |req| handle(req, w.clone(), conn_info.clone()));
    let open = ConnOpen::new(&worker.store.observe().gateway);
    match spec.tls {
        None => {
            // hyper only closes a connection whose request head is too slow; a duplicate of the
            // socket lets the server still answer 408 (one dup per connection, nothing per request).
            let spare = socket2::SockRef::from(&stream).try_clone().ok();
            let sniff = Sniff::new(stream, conflict);
            let head_in_progress = sniff.head_in_progress();
            let conn = b.serve_connection_with_upgrades(TokioIo::new(sniff), svc).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _open = open;
                if let Err(e) = conn.await {
                    let timed_out = e.downcast_ref::<hyper::Error>().is_some_and(|h| h.is_timeout());
                    if timed_out && head_in_progress.load(std::sync::atomic::Ordering::Relaxed) {
                        if let Some(s) = spare {
                            send_408(s);
                        }
                    }
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
        }
        Some(tls) => {
            let acceptor = TlsAcceptor::from(tls);
            let watcher = graceful.watcher();
            let timeout = Duration::from_millis(worker.store.load().limits.header_read_timeout_ms);
            tokio::spawn(async move {
                let _open = open;
                let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let conn = b.serve_connection_with_upgrades(TokioIo::new(Sniff::new(tls, conflict)), svc).into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, %peer, "TLS connection ended with an error");
                }
            });
        }
    }
}

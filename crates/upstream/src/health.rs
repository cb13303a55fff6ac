//! Active health checks: a background task probes every target with an HTTP GET and marks peers down
//! or up after runs of equal results. Balancers skip a peer marked down until probes bring it back,
//! however long ago its passive ejection ended.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tigateway_model::{HealthCheckConfig, Scheme};
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};

use crate::peer::Peer;
use crate::registry::Registry;

/// Starts probing on the current tokio runtime. Each round probes all of `targets()` concurrently and
/// the next round starts `interval_ms` after the previous one started (or when it ends, if later).
/// Aborting the returned handle stops the checks and clears every verdict they left in `registry`,
/// since nothing would ever mark those peers up again.
pub fn spawn_health_checks(
    registry: Arc<Registry>,
    cfg: HealthCheckConfig,
    targets: impl Fn() -> Vec<Arc<Peer>> + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _reset = ResetOnDrop(registry);
        let cfg = Arc::new(cfg);
        let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut round = JoinSet::new();
            for peer in targets() {
                let cfg = Arc::clone(&cfg);
                round.spawn(async move {
                    let result = check_once(&peer, &cfg).await;
                    if let Err(e) = &result {
                        tracing::debug!(upstream = %peer.key(), error = %e, "health probe failed");
                    }
                    peer.record_probe(result.is_ok(), cfg.healthy_threshold, cfg.unhealthy_threshold);
                });
            }
            while round.join_next().await.is_some() {}
        }
    })
}

struct ResetOnDrop(Arc<Registry>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        for peer in self.0.peers() {
            peer.reset_active();
        }
    }
}

/// One probe: `GET cfg.path` within `cfg.timeout_ms` (connect included); healthy on 2xx or 3xx. Plain
/// HTTP/1.1 for http/ws, HTTP/2 with prior knowledge for h2c. For https/wss only a TCP connect is
/// checked: a TLS handshake would need the proxy's trust settings, which this crate does not own.
pub async fn check_once(peer: &Peer, cfg: &HealthCheckConfig) -> Result<(), String> {
    let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
    match tokio::time::timeout(timeout, probe(peer, &cfg.path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", cfg.timeout_ms)),
    }
}

async fn probe(peer: &Peer, path: &str) -> Result<(), String> {
    let stream = TcpStream::connect(peer.authority()).await.map_err(|e| format!("connect: {e}"))?;
    if peer.scheme().is_tls() {
        return Ok(());
    }
    let _ = stream.set_nodelay(true);
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let io = TokioIo::new(stream);
    let status = if peer.scheme() == Scheme::H2c {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        let conn = AbortOnDrop(tokio::spawn(conn));
        let uri = format!("http://{}{}", peer.authority(), path);
        let req = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad health check path {path:?}: {e}"))?;
        let status = sender.send_request(req).await.map_err(|e| e.to_string())?.status();
        drop(conn);
        status
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("handshake: {e}"))?;
        let conn = AbortOnDrop(tokio::spawn(conn));
        let req = Request::builder()
            .method(Method::GET)
            .uri(path.as_str())
            .header(header::HOST, peer.authority())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad health check path {path:?}: {e}"))?;
        let status = sender.send_request(req).await.map_err(|e| e.to_string())?.status();
        drop(conn);
        status
    };
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

const USER_AGENT: &str = "tigateway-health-check";

/// The connection task must not outlive a probe that timed out or finished.
struct AbortOnDrop(JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicU16, Ordering::SeqCst};
    use std::sync::Mutex;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::spec::UpstreamSpec;

    /// A tiny HTTP/1.1 server answering every request with `status`; remembers the last request head.
    async fn server(status: Arc<AtomicU16>, last_head: Arc<Mutex<String>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let status = status.load(SeqCst);
                let last_head = Arc::clone(&last_head);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    *last_head.lock().unwrap() = String::from_utf8_lossy(&buf).into_owned();
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        addr
    }

    async fn fixed(status: u16) -> String {
        server(Arc::new(AtomicU16::new(status)), Arc::default()).await
    }

    async fn closed_port() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        addr
    }

    fn cfg(timeout_ms: u64) -> HealthCheckConfig {
        HealthCheckConfig {
            path: "/healthz".into(),
            interval_ms: 20,
            timeout_ms,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }

    fn peer(reg: &Registry, url: &str) -> Arc<Peer> {
        reg.get_or_insert(&UpstreamSpec::from_url(url, 1).unwrap())
    }

    async fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn single_probes() {
        let reg = Registry::default();
        let head = Arc::new(Mutex::new(String::new()));
        let ok = server(Arc::new(AtomicU16::new(200)), Arc::clone(&head)).await;
        let ok_peer = peer(&reg, &format!("http://{ok}"));
        assert_eq!(check_once(&ok_peer, &cfg(1_000)).await, Ok(()));
        let head = head.lock().unwrap().clone();
        assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("host: {ok}")), "{head}");

        let redirect = fixed(302).await;
        assert_eq!(check_once(&peer(&reg, &redirect), &cfg(1_000)).await, Ok(()));

        let bad = fixed(500).await;
        let err = check_once(&peer(&reg, &bad), &cfg(1_000)).await.unwrap_err();
        assert!(err.contains("500"), "{err}");

        let closed = closed_port().await;
        let err = check_once(&peer(&reg, &closed), &cfg(1_000)).await.unwrap_err();
        assert!(err.starts_with("connect"), "{err}");

        // Accepts but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        let started = Instant::now();
        let err = check_once(&peer(&reg, &silent_addr), &cfg(100)).await.unwrap_err();
        assert!(err.contains("100 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));

        // TLS peers: TCP reachability only.
        assert_eq!(check_once(&peer(&reg, &format!("https://{silent_addr}")), &cfg(1_000)).await, Ok(()));
        assert!(check_once(&peer(&reg, &format!("https://{closed}")), &cfg(1_000)).await.is_err());
        drop(silent);
    }

    #[tokio::test]
    async fn h2c_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let status = if req.uri().path() == "/healthz" { 204 } else { 404 };
                        Ok::<_, Infallible>(
                            hyper::Response::builder().status(status).body(Empty::<Bytes>::new()).unwrap(),
                        )
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        let reg = Registry::default();
        let p = peer(&reg, &format!("h2c://{addr}"));
        assert_eq!(check_once(&p, &cfg(1_000)).await, Ok(()));
        let mut wrong_path = cfg(1_000);
        wrong_path.path = "other".into();
        let err = check_once(&p, &wrong_path).await.unwrap_err();
        assert!(err.contains("404"), "{err}");
    }

    #[tokio::test]
    async fn background_checks_mark_down_and_up() {
        let reg = Arc::new(Registry::default());
        let flaky_status = Arc::new(AtomicU16::new(500));
        let ok = peer(&reg, &fixed(200).await);
        let flaky = peer(&reg, &server(Arc::clone(&flaky_status), Arc::default()).await);
        let closed = peer(&reg, &closed_port().await);
        let targets_reg = Arc::clone(&reg);
        let handle = spawn_health_checks(Arc::clone(&reg), cfg(500), move || targets_reg.peers());

        wait_for("500 and closed marked down", || flaky.is_active_down() && closed.is_active_down()).await;
        assert!(!ok.is_active_down());
        let specs = [&ok, &flaky, &closed].iter().map(|p| UpstreamSpec::from_url(p.key(), 1).unwrap()).collect();
        let set = crate::UpstreamSet::new(&reg, specs, "roundRobin").unwrap();
        assert!((0..20).all(|_| set.pick(None, &[]) == Some(0)));

        flaky_status.store(200, SeqCst);
        wait_for("recovered upstream marked up", || !flaky.is_active_down()).await;
        assert!(closed.is_active_down());
        assert!(!ok.is_active_down());

        handle.abort();
        let _ = handle.await;
        assert!(!closed.is_active_down(), "stopping the checks clears their verdicts");
    }
}

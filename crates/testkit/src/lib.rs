//! Test helpers. Everything here is real: upstreams are HTTP servers on loopback, gateways are the
//! real data plane (in-process) or the real binary (as a child process), the admin is logged in to
//! over HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod admin;
pub use admin::admin_login;

/// How a test upstream answers.
#[derive(Clone, Debug)]
pub struct UpstreamBehavior {
    pub name: String,
    pub status: u16,
    /// Wait this long before answering (a stalled upstream).
    pub delay: Duration,
}

impl UpstreamBehavior {
    pub fn named(name: &str) -> Self {
        UpstreamBehavior { name: name.to_string(), status: 200, delay: Duration::ZERO }
    }
}

/// A running upstream: answers JSON `{"server", "method", "path", "query", "headers", "body"}`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// Stops accepting and closes the listener (a killed upstream).
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    b: Arc<UpstreamBehavior>,
    hits: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let out = tigateway_proxy::demo::describe(&parts, &body, &b.name);
    let mut resp = Response::new(Full::new(Bytes::from(out.to_string())));
    *resp.status_mut() = StatusCode::from_u16(b.status).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert("content-type", "application/json".parse().expect("static"));
    resp.headers_mut().insert("x-upstream", b.name.parse().expect("name is a valid header value"));
    Ok(resp)
}

/// Accepts connections (through TLS when an acceptor is given) and answers with [`answer`].
async fn serve_upstream(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    b: UpstreamBehavior,
) -> Upstream {
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let b = Arc::new(b);
    let h = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let (b, h, tls) = (b.clone(), h.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |r| answer(r, b.clone(), h.clone()));
                let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    None => server.serve_connection(TokioIo::new(stream), svc).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => server.serve_connection(TokioIo::new(s), svc).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    Upstream { addr, hits, task }
}

/// Starts an HTTP/1.1 + h2c upstream on 127.0.0.1 (random port).
pub async fn upstream(b: UpstreamBehavior) -> Upstream {
    upstream_on("127.0.0.1:0".parse().expect("addr"), b).await
}

pub async fn upstream_on(addr: SocketAddr, b: UpstreamBehavior) -> Upstream {
    serve_upstream(TcpListener::bind(addr).await.expect("bind upstream"), None, b).await
}

/// An HTTP/1.1 upstream that answers every request with a chunked body (no Content-Length): the
/// head at once, then each of `parts` after `gap`; it closes the connection after the last chunk.
pub async fn chunked_upstream(parts: &'static [&'static str], gap: Duration) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                if s.write_all(head).await.is_err() {
                    return;
                }
                for part in parts {
                    tokio::time::sleep(gap).await;
                    if s.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

/// A websocket echo server (tokio-tungstenite) on 127.0.0.1.
pub async fn ws_echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            break;
                        }
                    } else if msg.is_close() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// An in-process gateway (the real server and data plane) on 127.0.0.1:0.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub store: Arc<tigateway_proxy::SnapshotStore>,
    gateway: Option<tigateway_proxy::Gateway>,
    health: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub fn start(config_yaml: &str) -> TestGateway {
        let cfg = tigateway_model::Config::from_yaml_str(config_yaml).expect("test config parses");
        Self::start_config(cfg)
    }

    pub fn start_config(cfg: tigateway_model::Config) -> TestGateway {
        let registry = Arc::new(tigateway_upstream::Registry::new(&cfg.server.upstream));
        let mut listeners = tigateway_proxy::listener_specs(&cfg, None).expect("listeners");
        if cfg.server.listeners.is_empty() {
            listeners[0].addr = "127.0.0.1:0".parse().expect("addr");
        }
        let store =
            tigateway_proxy::SnapshotStore::new(cfg, registry).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let gateway = tigateway_proxy::Gateway::start(store.clone(), listeners, 1).expect("gateway starts");
        // Active health checks run as in the binary, when a runtime is there to run them.
        let health = tokio::runtime::Handle::try_current().ok().map(|h| {
            let _g = h.enter();
            tigateway_proxy::spawn_health_checks(store.clone())
        });
        TestGateway { addr: gateway.local_addrs[0], store, gateway: Some(gateway), health }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful shutdown (blocking: call from spawn_blocking inside async tests).
    pub fn shutdown(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(h) = self.health.take() {
            h.abort();
        }
        if let Some(g) = self.gateway.take() {
            std::thread::spawn(move || g.shutdown());
        }
    }
}

/// Sends raw bytes and reads until the server closes or `wait` passes; returns what came back.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code of the first response in raw HTTP/1.1 output.
pub fn status_of(raw: &str) -> u16 {
    raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// An HTTPS upstream answering like [`upstream`]; it offers ALPN h2 only when `h2` is set.
pub async fn upstream_tls(b: UpstreamBehavior, cert_pem: &str, key_pem: &str, h2: bool) -> Upstream {
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<_, _>>().expect("cert pem");
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes()).expect("key pem").expect("a key");
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
    cfg.alpn_protocols = if h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    serve_upstream(TcpListener::bind("127.0.0.1:0").await.expect("bind upstream"), Some(acceptor), b).await
}

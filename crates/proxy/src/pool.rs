//! Upstream connections: a per-worker pool of keep-alive HTTP/1.1 connections (driven by the
//! hand-written client in `h1.rs`) and shared HTTP/2 connections (hyper), with connect separated
//! from send so that a failed connect can be retried on another upstream without losing a streamed
//! request body.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustc_hash::FxHashMap;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::ReqBody;
use crate::h1::{H1Conn, Stream};
use tigateway_model::Scheme;
use tigateway_upstream::Peer;

pub enum Sender {
    H1(H1Conn),
    H2(http2::SendRequest<ReqBody>),
}

struct Idle {
    conn: H1Conn,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    // Looked up on every request by the peer's key: FxHash, not SipHash (keys come from the
    // config, not from clients, so flooding is not a concern).
    h1: FxHashMap<String, Vec<Idle>>,
    h2: FxHashMap<String, http2::SendRequest<ReqBody>>,
}

pub struct Pool {
    inner: Mutex<Inner>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
pub enum ConnectError {
    Timeout,
    Io(std::io::Error),
    Tls(std::io::Error),
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connect timed out"),
            ConnectError::Io(e) => write!(f, "connect failed: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectError::Handshake(e) => write!(f, "HTTP/2 handshake failed: {e}"),
        }
    }
}

/// TLS settings for upstream connections: the public web roots plus the config's `caFile`.
pub fn client_tls_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("reading caFile {path}: {e}"))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("parsing caFile {path}: {e}"))?;
            roots.add(cert).map_err(|e| format!("caFile {path}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("no certificate in caFile {path}"));
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl Pool {
    pub fn new(max_idle_per_host: usize, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool { inner: Mutex::new(Inner::default()), max_idle_per_host, idle_timeout })
    }

    /// Keeps a finished keep-alive connection for the next request to `key` (`scheme://host:port`).
    pub fn put_h1(&self, key: &str, conn: H1Conn) {
        let mut inner = self.inner.lock().expect("pool lock");
        let idle = Idle { conn, since: Instant::now() };
        match inner.h1.get_mut(key) {
            Some(list) if list.len() < self.max_idle_per_host => list.push(idle),
            Some(_) => {}
            None => {
                inner.h1.insert(key.to_string(), vec![idle]);
            }
        }
    }

    /// A pooled connection, if any (most recently used first: warm connections stay warm).
    fn checkout(&self, key: &str) -> Option<Sender> {
        let mut inner = self.inner.lock().expect("pool lock");
        if !inner.h2.is_empty() {
            if let Some(h2) = inner.h2.get(key) {
                if !h2.is_closed() {
                    return Some(Sender::H2(h2.clone()));
                }
                inner.h2.remove(key);
            }
        }
        let list = inner.h1.get_mut(key)?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() <= self.idle_timeout && idle.conn.looks_alive() {
                return Some(Sender::H1(idle.conn));
            }
        }
        None
    }

    /// A pooled connection or a new one. `tls` comes from the current snapshot, so a changed
    /// `caFile` applies to new connections.
    pub async fn get(
        &self,
        peer: &Peer,
        connect_timeout: Duration,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Sender, ConnectError> {
        if let Some(s) = self.checkout(peer.key()) {
            return Ok(s);
        }
        let sender = tokio::time::timeout(connect_timeout, connect(peer.scheme(), peer.authority(), tls))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        if let Sender::H2(h2) = &sender {
            self.inner.lock().expect("pool lock").h2.insert(peer.key().to_string(), h2.clone());
        }
        Ok(sender)
    }
}

async fn connect(scheme: Scheme, authority: &str, tls: &Arc<rustls::ClientConfig>) -> Result<Sender, ConnectError> {
    let tcp = TcpStream::connect(authority).await.map_err(ConnectError::Io)?;
    let _ = tcp.set_nodelay(true);
    match scheme {
        Scheme::Http | Scheme::Ws => Ok(Sender::H1(H1Conn::new(Stream::Plain(tcp)))),
        Scheme::H2c => h2(TokioIo::new(tcp)).await,
        Scheme::Https | Scheme::Wss => {
            let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| ConnectError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
            let mut cfg = tls.clone();
            if scheme == Scheme::Wss {
                // A websocket upgrade is an HTTP/1.1 affair.
                let mut c = (*cfg).clone();
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                cfg = Arc::new(c);
            }
            let stream = TlsConnector::from(cfg).connect(name, tcp).await.map_err(ConnectError::Tls)?;
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                h2(TokioIo::new(stream)).await
            } else {
                Ok(Sender::H1(H1Conn::new(Stream::Tls(Box::new(stream)))))
            }
        }
    }
}

async fn h2<T>(io: TokioIo<T>) -> Result<Sender, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        http2::Builder::new(TokioExecutor::new()).handshake(io).await.map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream h2 connection ended with an error");
        }
    });
    Ok(Sender::H2(sender))
}

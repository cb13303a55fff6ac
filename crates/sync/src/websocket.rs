//! Following an admin over ShenYu 2.7's websocket sync (a TiGateway admin or a ShenYu one).
//!
//! Each (re)connection is a full resync into an empty working copy: the admin's answer to `MYSELF`
//! ends with a hash-carrying message (TiGateway admin) or after a quiet period (ShenYu admin,
//! which sends only non-empty groups and no end marker). After that, each event edits the copy;
//! a TiGateway admin's batches are applied whole and checked against its hashes, and a revision
//! that does not follow the one held means something was missed: the client resyncs. A message
//! that cannot be read is logged with a summary and skipped, and the client resyncs.
//!
//! With [`WsOptions::login`] the client logs in at the same admin's `/platform/login` before every
//! connection attempt (a fresh token each time, so an expired session never locks it out) and
//! sends the token as `X-Access-Token`; a failed login is that admin failing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tigateway_model::sync_wire::{canonical_hashes, WsMessage, DEFAULT_NAMESPACE, EXTENSIONS_HEADER, TOKEN_HEADER};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::http_poll::Credentials;
use crate::shenyu::{summary, Applier, Backoff, GroupState, Origin, SyncStatus};

#[derive(Debug, Clone)]
pub struct WsOptions {
    /// `ws://admin:9095/websocket`, tried in order; the next one on failure.
    pub urls: Vec<String>,
    /// The admin's `--sync-token`, sent as `x-tigateway-sync-token`.
    pub token: Option<String>,
    /// An admin user whose roles may read the config; logged in before each connection.
    pub login: Option<Credentials>,
    pub namespace: String,
    pub origin: Option<String>,
    /// Reported to the admin as `ClientPort` (the gateway's port).
    pub client_port: u16,
    /// Quiet time that ends a ShenYu admin's full sync (ShenYu sends no end marker).
    pub settle: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// No frame for this long (pings included) → the connection is dead.
    pub idle_timeout: Duration,
}

impl WsOptions {
    pub fn new(urls: Vec<String>) -> WsOptions {
        WsOptions {
            urls,
            token: None,
            login: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            origin: None,
            client_port: 9195,
            settle: Duration::from_secs(1),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
        }
    }
}

/// Why a session ended without a transport error.
enum End {
    /// Something was missed or unreadable: connect again at once and resync.
    Resync,
}

/// Follows the admins until the runtime stops.
pub fn spawn(opts: WsOptions, applier: Applier) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(opts, applier))
}

async fn run(opts: WsOptions, applier: Applier) {
    let status = applier.status().clone();
    let http = match reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "websocket sync: cannot build the HTTP client for the admin login");
            return;
        }
    };
    let mut backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
    let mut idx = 0;
    let mut failed_in_round = 0;
    let mut failures = 0u64;
    loop {
        let url = opts.urls[idx % opts.urls.len()].clone();
        let mut synced = false;
        let result = session(&url, &opts, &http, &applier, &mut synced).await;
        status.set_connected(false);
        if synced {
            backoff.reset();
            failed_in_round = 0;
            failures = 0;
        }
        match result {
            Ok(End::Resync) => {
                status.resynced();
                tokio::time::sleep(backoff.next_delay().min(opts.backoff_min)).await;
            }
            Err(e) => {
                failures += 1;
                // Loud at first and then now and then: an admin down for an hour is one story.
                if failures <= 3 || failures.is_multiple_of(50) {
                    tracing::warn!(admin = %url, error = %e, failures, "websocket sync: admin connection failed");
                }
                idx += 1;
                failed_in_round += 1;
                if failed_in_round >= opts.urls.len() {
                    if !status.synced.load(Ordering::Acquire) {
                        status.unreachable.store(true, Ordering::Release);
                    }
                    failed_in_round = 0;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

fn header(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a valid header value"))
}

/// A credential header: its value never appears in an error, and it is marked sensitive.
fn secret(v: &str, what: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(v).map_err(|_| format!("the {what} is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `http://host:port` for `ws://host:port/…`, `https://` for `wss://`: where the admin that serves
/// the websocket also serves `/platform/login`.
pub fn login_base(url: &str) -> Result<String, String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri =
        url.parse().map_err(|e| format!("bad admin URL {url}: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") => "http",
        Some(s) if s.eq_ignore_ascii_case("wss") => "https",
        _ => return Err(format!("admin URL {url} is not ws:// or wss://")),
    };
    let authority = uri.authority().ok_or_else(|| format!("admin URL {url} has no host"))?;
    Ok(format!("{scheme}://{authority}"))
}

async fn session(
    url: &str,
    opts: &WsOptions,
    http: &reqwest::Client,
    applier: &Applier,
    synced: &mut bool,
) -> Result<End, String> {
    let status = applier.status();
    let mut req = url.into_client_request().map_err(|e| format!("bad admin URL {url}: {e}"))?;
    let access = match &opts.login {
        Some(creds) => {
            let base = login_base(url)?;
            Some(crate::http_poll::login(http, &base, creds, status).await?.token)
        }
        None => None,
    };
    let h = req.headers_mut();
    if let Some(t) = &access {
        h.insert("X-Access-Token", secret(t, "admin's access token")?);
    }
    h.insert("namespaceId", header(&opts.namespace)?);
    h.insert("ClientPort", header(&opts.client_port.to_string())?);
    h.insert(EXTENSIONS_HEADER, HeaderValue::from_static("1"));
    if let Some(t) = &opts.token {
        h.insert(TOKEN_HEADER, secret(t, "sync token")?);
    }
    if let Some(o) = &opts.origin {
        h.insert("Origin", header(o)?);
    }
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    status.set_connected(true);
    *status.admin.lock().unwrap_or_else(|e| e.into_inner()) = url.to_string();
    tracing::info!(admin = %url, "websocket sync connected");
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::Text("RUNNING_MODE".into())).await.map_err(|e| e.to_string())?;
    sink.send(Message::Text("MYSELF".into())).await.map_err(|e| e.to_string())?;

    let origin = Origin::Live(url.to_string());
    // Until the full sync is complete, events go to `fresh`; afterwards to `state`.
    let mut fresh = GroupState::default();
    let mut state: Option<GroupState> = None;
    let mut held: Option<i64> = None;
    let mut batch: Option<i64> = None;
    let mut settle_at = Instant::now() + opts.settle;
    // A TiGateway admin marks the end of its full sync; only a ShenYu admin's end is guessed from
    // a quiet period (which a very large group still in transfer could fool).
    let mut tigateway_admin = false;
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    ping.tick().await;
    let mut last_frame = Instant::now();
    loop {
        let full_pending = state.is_none();
        tokio::select! {
            frame = stream.next() => {
                last_frame = Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => return Err(format!("closed by the admin: {c:?}")),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("connection closed".into()),
                };
                let value: serde_json::Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(e) => return Ok(malformed(status, url, &text, &e.to_string())),
                };
                if value.get("groupType").is_none() && value.get("eventType").and_then(|v| v.as_str()) == Some("RUNNING_MODE") {
                    tracing::debug!(admin = %url, "admin running mode: {}", summary(&text));
                    tigateway_admin |= value.get("tigateway").and_then(|v| v.as_bool()).unwrap_or(false);
                    continue;
                }
                let m: WsMessage = match serde_json::from_value(value) {
                    Ok(m) => m,
                    Err(e) => return Ok(malformed(status, url, &text, &e.to_string())),
                };
                let Some(group) = m.group_type.as_deref() else {
                    return Ok(malformed(status, url, &text, "no groupType"));
                };
                tigateway_admin |= m.revision.is_some();
                match &mut state {
                    None => {
                        if let Err(e) = fresh.apply(group, &m.event_type, &m.data) {
                            return Ok(malformed(status, url, &text, &e));
                        }
                        settle_at = Instant::now() + opts.settle;
                        if let Some(expected) = &m.hashes {
                            held = m.revision;
                            check_hashes(status, url, &fresh, expected, "full sync");
                            applier.offer(fresh.config.clone(), origin.clone());
                            state = Some(std::mem::take(&mut fresh));
                            *synced = true;
                            tracing::info!(admin = %url, revision = ?held, "websocket full sync received");
                        }
                    }
                    Some(st) => {
                        if let Some(rev) = m.revision {
                            if batch != Some(rev) {
                                if m.since != held {
                                    tracing::warn!(admin = %url, held = ?held, since = ?m.since, revision = rev, "websocket sync: revision gap, resyncing");
                                    return Ok(End::Resync);
                                }
                                batch = Some(rev);
                            }
                        }
                        if let Err(e) = st.apply(group, &m.event_type, &m.data) {
                            return Ok(malformed(status, url, &text, &e));
                        }
                        match (&m.hashes, m.revision) {
                            (Some(expected), Some(rev)) => {
                                held = Some(rev);
                                batch = None;
                                if !check_hashes(status, url, st, expected, "event batch") {
                                    return Ok(End::Resync);
                                }
                                applier.offer(st.config.clone(), origin.clone());
                            }
                            // A ShenYu admin: every message stands alone; the applier coalesces.
                            (_, None) => applier.offer(st.config.clone(), origin.clone()),
                            _ => {}
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(settle_at), if full_pending && !tigateway_admin => {
                // A ShenYu admin sent everything it had (or nothing, for an empty config).
                applier.offer(fresh.config.clone(), origin.clone());
                state = Some(std::mem::take(&mut fresh));
                *synced = true;
                tracing::info!(admin = %url, "websocket full sync received (quiet period)");
            }
            _ = ping.tick() => {
                if last_frame.elapsed() > opts.idle_timeout {
                    return Err(format!("nothing heard for {:?}", opts.idle_timeout));
                }
                sink.send(Message::Ping(Vec::new())).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

fn malformed(status: &SyncStatus, url: &str, text: &str, why: &str) -> End {
    SyncStatus::count(&status.malformed);
    tracing::warn!(admin = %url, error = %why, message = %summary(text), "websocket sync: message skipped, resyncing");
    End::Resync
}

/// Compares the working copy with the admin's hashes; logs and counts a mismatch.
fn check_hashes(
    status: &SyncStatus,
    url: &str,
    st: &GroupState,
    expected: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> bool {
    let ours = canonical_hashes(&st.config);
    let differing: Vec<&String> = expected.iter().filter(|(g, h)| ours.get(*g) != Some(*h)).map(|(g, _)| g).collect();
    if differing.is_empty() {
        return true;
    }
    SyncStatus::count(&status.hash_mismatches);
    tracing::error!(admin = %url, groups = ?differing, "websocket sync: hashes differ from the admin's after {what}");
    false
}

#[cfg(test)]
mod tests {
    use super::login_base;

    #[test]
    fn the_login_is_at_the_websocket_admins_host_and_port() {
        assert_eq!(login_base("ws://a1:9095/websocket?token=x").unwrap(), "http://a1:9095");
        assert_eq!(login_base("WSS://[::1]:443/websocket").unwrap(), "https://[::1]:443");
        assert_eq!(login_base("wss://admin.example/websocket").unwrap(), "https://admin.example");
        assert!(login_base("http://a1:9095").is_err());
    }
}

//! Following an admin over ShenYu 2.7's HTTP long polling (a TiGateway admin or a ShenYu one).
//!
//! Log in (`GET /platform/login`), fetch every group, then hold a `POST /configs/listener` with
//! each group's MD5 and last-modified time; the admin answers with the groups that changed, which
//! are fetched and replace their group whole. A fetched group is taken only when its MD5 differs
//! and it is newer than the one held (ShenYu's rule). Each (re)connection starts from nothing and
//! takes every group (a full resync). The `ROUTE` group is listened for too: a TiGateway admin
//! reports it, a ShenYu admin ignores it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use tigateway_model::sync_wire::{Group, DEFAULT_NAMESPACE};

use crate::shenyu::{summary, Applier, Backoff, GroupState, Origin, SyncStatus};

#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `http://admin:9095`, tried in order; the next one on failure.
    pub urls: Vec<String>,
    pub credentials: Credentials,
    pub namespace: String,
    pub client_port: u16,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longer than the admin's 60 s hold.
    pub read_timeout: Duration,
}

impl HttpOptions {
    pub fn new(urls: Vec<String>, username: String, password: String) -> HttpOptions {
        HttpOptions {
            urls,
            credentials: Credentials { username, password },
            namespace: DEFAULT_NAMESPACE.to_string(),
            client_port: 9195,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            read_timeout: Duration::from_secs(90),
        }
    }
}

/// An admin user for ShenYu's `/platform/login`. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"…").finish()
    }
}

/// An access token from the admin, and when to log in again for a fresh one.
pub(crate) struct Login {
    pub token: String,
    pub renew_after: Duration,
}

/// ShenYu 2.7's `GET {base}/platform/login?userName=&password=` (a TiGateway admin answers it the
/// same way); long polling and websocket both log in here. An unreadable reply is counted as
/// malformed.
pub(crate) async fn login(
    client: &reqwest::Client,
    base: &str,
    creds: &Credentials,
    status: &SyncStatus,
) -> Result<Login, String> {
    let malformed = |body: &str, why: &str| {
        SyncStatus::count(&status.malformed);
        tracing::warn!(admin = %base, error = %why, message = %summary(body), "sync login: reply unreadable");
        format!("unreadable login reply: {why}")
    };
    let resp = client
        .get(format!("{base}/platform/login"))
        .query(&[("userName", creds.username.as_str()), ("password", creds.password.as_str())])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        // The URL carries the password: never let it into an error message.
        .map_err(|e| format!("login: {}", e.without_url()))?;
    let body = resp.text().await.map_err(|e| format!("login: {}", e.without_url()))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| malformed(&body, &e.to_string()))?;
    if v["code"].as_i64() != Some(200) {
        return Err(format!("login refused: {}", v["message"].as_str().unwrap_or("no message")));
    }
    let token = v["data"]["token"].as_str().ok_or_else(|| malformed(&body, "no data.token"))?.to_string();
    let ttl = v["data"]["expiredTime"].as_u64().unwrap_or(86_400_000);
    Ok(Login { token, renew_after: Duration::from_millis(ttl).mul_f64(0.9) })
}

/// The groups fetched at every (re)connection: the ones every ShenYu admin serves that a
/// TiGateway config holds.
const INITIAL: [Group; 6] =
    [Group::AppAuth, Group::Plugin, Group::Rule, Group::Selector, Group::MetaData, Group::DiscoverUpstream];

pub fn spawn(opts: HttpOptions, applier: Applier) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(opts, applier))
}

async fn run(opts: HttpOptions, applier: Applier) {
    let status = applier.status().clone();
    let client =
        match reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(opts.read_timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "long-polling sync: cannot build the HTTP client");
                return;
            }
        };
    let mut backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
    let mut idx = 0;
    let mut failed_in_round = 0;
    let mut failures = 0u64;
    loop {
        let base = opts.urls[idx % opts.urls.len()].trim_end_matches('/').to_string();
        let mut synced = false;
        let err = Session { client: &client, base: &base, opts: &opts, applier: &applier, token: String::new() }
            .run(&mut synced)
            .await;
        status.set_connected(false);
        if synced {
            failures = 0;
        }
        failures += 1;
        if failures <= 3 || failures.is_multiple_of(50) {
            tracing::warn!(admin = %base, error = %err, failures, "long-polling sync: admin connection failed");
        }
        if synced {
            backoff.reset();
            failed_in_round = 0;
            status.resynced();
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

struct Session<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    opts: &'a HttpOptions,
    applier: &'a Applier,
    token: String,
}

/// What the gateway holds of one group: the admin's MD5 and time, echoed back when listening.
#[derive(Debug, Clone, Default)]
struct Held {
    md5: String,
    last_modify_time: i64,
}

impl Session<'_> {
    async fn run(mut self, synced: &mut bool) -> String {
        match self.follow(synced).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn malformed(&self, body: &str, why: &str) -> String {
        SyncStatus::count(&self.applier.status().malformed);
        tracing::warn!(admin = %self.base, error = %why, message = %summary(body), "long-polling sync: reply skipped, resyncing");
        format!("unreadable reply: {why}")
    }

    async fn login(&mut self) -> Result<Duration, String> {
        let login = login(self.client, self.base, &self.opts.credentials, self.applier.status()).await?;
        self.token = login.token;
        Ok(login.renew_after)
    }

    async fn fetch(&self, groups: &[Group]) -> Result<BTreeMap<Group, (Held, Vec<Value>)>, String> {
        let mut q: Vec<(&str, &str)> = groups.iter().map(|g| ("groupKeys", g.as_str())).collect();
        q.push(("namespaceId", &self.opts.namespace));
        let resp = self
            .client
            .get(format!("{}/configs/fetch", self.base))
            .header("X-Access-Token", &self.token)
            .query(&q)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err("fetch: the admin refused the token (401)".into());
        }
        let body = resp.text().await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| self.malformed(&body, &e.to_string()))?;
        if v["code"].as_i64() != Some(200) {
            return Err(format!("fetch refused: {}", v["message"].as_str().unwrap_or("no message")));
        }
        let mut out = BTreeMap::new();
        for g in groups {
            let Some(d) = v["data"].get(g.as_str()) else { continue };
            let held = Held {
                md5: d["md5"].as_str().unwrap_or_default().to_string(),
                last_modify_time: d["lastModifyTime"].as_i64().unwrap_or_default(),
            };
            let items = match &d["data"] {
                Value::Array(a) => a.clone(),
                Value::Null => Vec::new(),
                _ => return Err(self.malformed(&body, &format!("{g}.data is not a list"))),
            };
            out.insert(*g, (held, items));
        }
        Ok(out)
    }

    async fn listen(&self, held: &BTreeMap<Group, Held>) -> Result<Vec<Group>, String> {
        let mut q: Vec<(String, String)> = Group::SHENYU
            .iter()
            .chain([Group::Route].iter())
            .map(|g| {
                let h = held.get(g).cloned().unwrap_or_default();
                (g.as_str().to_string(), format!("{},{}", h.md5, h.last_modify_time))
            })
            .collect();
        q.push(("namespaceId".into(), self.opts.namespace.clone()));
        let resp = self
            .client
            .post(format!("{}/configs/listener", self.base))
            .header("X-Access-Token", &self.token)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Real-PORT", self.opts.client_port.to_string())
            .query(&q)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err("listener: the admin refused the token (401)".into());
        }
        let body = resp.text().await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| self.malformed(&body, &e.to_string()))?;
        if v["code"].as_i64() != Some(200) {
            return Err(format!("listener refused: {}", v["message"].as_str().unwrap_or("no message")));
        }
        let Value::Array(names) = &v["data"] else { return Err(self.malformed(&body, "data is not a list")) };
        let mut out = Vec::new();
        for n in names {
            match n.as_str().and_then(Group::parse) {
                Some(g) => out.push(g),
                None => {
                    tracing::debug!(admin = %self.base, group = %n, "listener named a group this gateway does not know")
                }
            }
        }
        Ok(out)
    }

    async fn follow(&mut self, synced: &mut bool) -> Result<std::convert::Infallible, String> {
        let status = self.applier.status().clone();
        let relogin_after = self.login().await?;
        let mut logged_in = Instant::now();
        let origin = Origin::Live(self.base.to_string());
        let mut state = GroupState::default();
        let mut held: BTreeMap<Group, Held> = BTreeMap::new();
        for (g, (h, items)) in self.fetch(&INITIAL).await? {
            state.replace(g, &items).map_err(|e| self.malformed(&format!("{items:?}"), &e))?;
            held.insert(g, h);
        }
        status.set_connected(true);
        *status.admin.lock().unwrap_or_else(|e| e.into_inner()) = self.base.to_string();
        tracing::info!(admin = %self.base, "long-polling sync: full sync received");
        self.applier.offer(state.config.clone(), origin.clone());
        *synced = true;
        loop {
            if logged_in.elapsed() > relogin_after {
                self.login().await?;
                logged_in = Instant::now();
            }
            let changed = self.listen(&held).await?;
            if changed.is_empty() {
                continue;
            }
            let (mut any, mut took) = (false, false);
            for (g, (h, items)) in self.fetch(&changed).await? {
                let old = held.get(&g);
                // ShenYu's rule: a group is taken when its MD5 differs and it is newer.
                if old.is_some_and(|o| o.md5 == h.md5 || o.last_modify_time >= h.last_modify_time) {
                    if old.is_some_and(|o| o.md5 != h.md5) {
                        tracing::warn!(admin = %self.base, group = %g, "long-polling sync: fetched group is not newer than the one held; kept");
                    }
                    continue;
                }
                state.replace(g, &items).map_err(|e| self.malformed(&format!("{items:?}"), &e))?;
                held.insert(g, h);
                any |= g.carried();
                took = true;
            }
            if !took {
                // The admin keeps naming groups it has nothing newer for: do not spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if any {
                self.applier.offer(state.config.clone(), origin.clone());
            }
        }
    }
}

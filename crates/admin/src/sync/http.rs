//! ShenYu 2.7's HTTP long polling, server side: `GET /platform/login`, then with
//! `X-Access-Token`: `GET /configs/fetch` and `POST /configs/listener` (held until something the
//! gateway holds changes, or for the hold time).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tigateway_model::sync_wire::{group_values, Group};

use super::{Publication, Publisher};
use crate::api::AppState;

#[derive(Clone)]
struct HttpState {
    publisher: Publisher,
    app: AppState,
}

pub fn router(publisher: Publisher, app: AppState) -> Router {
    Router::new()
        .route("/platform/login", get(login))
        .route("/configs/fetch", get(fetch))
        .route("/configs/listener", post(listener))
        .with_state(HttpState { publisher, app })
}

fn params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// ShenYu answers application errors as HTTP 200 with a code in the body.
fn fail(message: impl Into<String>) -> Response {
    Json(json!({"code": 500, "message": message.into()})).into_response()
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"code": 600, "message": "token is error"}))).into_response()
}

async fn login(State(st): State<HttpState>, req: axum::extract::Request) -> Response {
    let p = params(req.uri().query());
    let connect = req.extensions().get::<ConnectInfo<SocketAddr>>().copied();
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(user), Some(password)) = (get("userName"), get("password")) else {
        return fail("userName and password are required");
    };
    let ip = connect.map(|c| c.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    match st.app.identity.login(&user, &password, ip, &st.app.limiter, st.app.session_ttl).await {
        Ok((token, _)) => Json(json!({
            "code": 200,
            "message": "login dashboard user success",
            "data": {
                "userName": user,
                "token": token,
                "expiredTime": st.app.session_ttl.as_millis() as u64,
            }
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "sync login refused");
            fail("login failed: wrong user name or password")
        }
    }
}

/// The caller's `X-Access-Token` (or `?token=`) must pass [`super::may_read_config`].
async fn authorized(st: &HttpState, headers: &HeaderMap, p: &[(String, String)]) -> bool {
    let token = headers
        .get("X-Access-Token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| p.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str()));
    super::may_read_config(&st.app, token).await.is_ok()
}

fn namespace_ok(st: &HttpState, p: &[(String, String)]) -> Result<(), Response> {
    match p.iter().find(|(k, _)| k == "namespaceId") {
        Some((_, ns)) if !ns.is_empty() && *ns != st.publisher.settings().namespace => {
            Err(fail(format!("namespace {ns} does not exist")))
        }
        _ => Ok(()),
    }
}

async fn fetch(State(st): State<HttpState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    if !authorized(&st, &headers, &p).await {
        return unauthorized();
    }
    if let Err(r) = namespace_ok(&st, &p) {
        return r;
    }
    let current = st.publisher.current();
    let mut data = serde_json::Map::new();
    for (_, key) in p.iter().filter(|(k, _)| k == "groupKeys") {
        let Some(g) = Group::parse(key) else { return fail(format!("unknown group key {key}")) };
        let stamp = &current.stamps[&g];
        data.insert(
            g.as_str().to_string(),
            json!({"md5": stamp.md5, "lastModifyTime": stamp.last_modify_time, "data": group_values(&current.config, g)}),
        );
    }
    Json(json!({"code": 200, "message": "success", "data": data})).into_response()
}

/// The groups whose MD5 the client holds differently from `current`.
fn changed(client: &BTreeMap<Group, String>, current: &Publication) -> Vec<&'static str> {
    client.iter().filter(|(g, md5)| current.stamps[g].md5 != **md5).map(|(g, _)| g.as_str()).collect()
}

async fn listener(State(st): State<HttpState>, headers: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let mut p = params(raw.as_deref());
    // The ShenYu client sends the groups in the query string; a form body is read too.
    p.extend(form_urlencoded::parse(&body).into_owned());
    if !authorized(&st, &headers, &p).await {
        return unauthorized();
    }
    if let Err(r) = namespace_ok(&st, &p) {
        return r;
    }
    let mut client = BTreeMap::new();
    for (k, v) in &p {
        if let Some(g) = Group::parse(k) {
            client.insert(g, v.split(',').next().unwrap_or("").to_string());
        }
    }
    for required in [Group::AppAuth, Group::Plugin, Group::Rule, Group::Selector, Group::MetaData] {
        if !client.contains_key(&required) {
            return fail(format!("group param invalid: {required} is missing"));
        }
    }
    let mut watch = st.publisher.watch();
    let deadline = tokio::time::Instant::now() + st.publisher.settings().hold;
    loop {
        let current = watch.borrow_and_update().clone();
        let diff = changed(&client, &current);
        if !diff.is_empty() {
            return Json(json!({"code": 200, "message": "success", "data": diff})).into_response();
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                return Json(json!({"code": 200, "message": "success", "data": Value::Array(Vec::new())}))
                    .into_response()
            }
        }
    }
}

//! `POST /api/v1/explain` over real HTTP: the admin served on a loopback port, a SQLite store with
//! a config imported through the store, a reqwest client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tigateway_admin::api::{router, AppState};
use tigateway_admin::identity::{Identity, NewUser};
use tigateway_admin::store::Store;
use tigateway_auth::LoginLimiter;

const CONFIG: &str = r#"
plugins:
  - {name: divide, enabled: true}
  - {name: route, enabled: true}
selectors:
  - id: canary
    name: canary
    pluginName: divide
    sort: 1
    conditionList:
      - {paramType: uri, operator: match, paramValue: "/api/**"}
      - {paramType: header, operator: "=", paramName: x-env, paramValue: canary}
    handle: '[{"upstreamUrl": "10.0.0.2:8080"}]'
  - id: stable
    name: stable
    pluginName: divide
    sort: 2
    conditionList:
      - {paramType: uri, operator: match, paramValue: "/api/**"}
    handle: '[{"upstreamUrl": "10.0.0.1:8080"}]'
rules:
  - {id: canary-all, name: canary-all, selectorId: canary, pluginName: divide, conditionDataList: [{paramType: uri, operator: match, paramValue: "/**"}]}
  - {id: stable-users, name: stable-users, selectorId: stable, pluginName: divide, conditionDataList: [{paramType: uri, operator: match, paramValue: "/api/users/**"}]}
routes:
  - {id: orders, uri: "http://10.0.0.7:9000", order: -1, predicates: ["Path=/api/orders/**", "Cookie=beta,yes"]}
"#;

struct Admin {
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Admin {
    async fn start() -> Admin {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
        let store = Store::open(&url).await.unwrap();
        let identity = Identity::new(&store);
        identity.bootstrap(Some("admin-password-1".into())).await.unwrap();
        identity.create_role("auditor", &[("audit".into(), "read".into())], "test").await.unwrap();
        for (user, role) in [("viewer", "viewer"), ("auditor", "auditor")] {
            let u = NewUser {
                username: user.into(),
                password: format!("{user}-password-1"),
                enabled: true,
                roles: vec![role.into()],
            };
            identity.create_user(u, "test").await.unwrap();
        }
        let cfg: tigateway_model::Config = serde_yaml::from_str(CONFIG).unwrap();
        store.import(cfg, false, "test").await.unwrap();
        let mut state = AppState::new(store, identity);
        state.limiter = Arc::new(LoginLimiter::new(10, Duration::from_secs(60)));
        state.session_ttl = Duration::from_secs(600);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Admin { base: format!("http://{addr}"), client, _dir: dir }
    }

    async fn token(&self, user: &str) -> String {
        tigateway_testkit::admin_login(&format!("{}/api/v1", self.base), user, &format!("{user}-password-1")).await
    }

    async fn explain(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut b = self.client.post(format!("{}/api/v1/explain", self.base)).json(&body);
        if let Some(t) = token {
            b = b.bearer_auth(t);
        }
        let r = b.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn plugin<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()
}

#[tokio::test]
async fn explain_over_http_names_failing_conditions_and_checks_rbac() {
    let admin = Admin::start().await;
    let viewer = admin.token("viewer").await;

    // Overlapping selectors: without the header, canary fails on it and stable wins.
    let (status, v) = admin.explain(Some(&viewer), json!({"method": "GET", "path": "/api/users/42"})).await;
    assert_eq!(status, 200, "{v}");
    let divide = plugin(&v, "divide");
    assert_eq!(divide["result"], "terminal");
    assert_eq!((divide["selector"].as_str(), divide["rule"].as_str()), (Some("stable"), Some("stable-users")));
    let canary = divide["selectors"].as_array().unwrap().iter().find(|s| s["id"] == "canary").unwrap();
    assert_eq!(canary["matched"], false);
    assert_eq!(
        canary["failed"],
        json!({"index": 1, "text": "header[x-env] = canary", "paramType": "header", "paramName": "x-env",
               "operator": "=", "expected": "canary", "actual": null})
    );
    assert_eq!(v["outcome"]["kind"], "proxy");
    assert_eq!(v["outcome"]["upstreams"], json!(["http://10.0.0.1:8080"]));

    // With the header and a cookie: canary wins; the Spring route is tried first and fails on its cookie.
    let (status, v) = admin
        .explain(
            Some(&viewer),
            json!({"path": "/api/orders/1?x=1", "headers": {"X-Env": "canary"}, "cookies": {"beta": "no"}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let route = plugin(&v, "route");
    assert_eq!(route["result"], "noRoute");
    let failed = &route["routes"]["routes"][0]["failed"];
    assert_eq!((failed["text"].as_str(), failed["actual"].as_str()), (Some("Cookie=beta,yes"), Some("no")));
    assert_eq!(plugin(&v, "divide")["selector"], "canary");
    assert_eq!(v["request"]["query"], "x=1");

    // Nothing matches: 404, and every selector says why.
    let (_, v) = admin.explain(Some(&viewer), json!({"path": "/static/app.js"})).await;
    assert_eq!((v["outcome"]["kind"].as_str(), v["outcome"]["status"].as_u64()), (Some("notFound"), Some(404)));
    let sels = plugin(&v, "divide")["selectors"].as_array().unwrap().clone();
    assert_eq!(sels.len(), 2);
    assert!(sels.iter().all(|s| s["failed"]["operator"] == "match" && s["failed"]["actual"] == "/static/app.js"));

    // Malformed description: 400 naming the field.
    let (status, v) = admin.explain(Some(&viewer), json!({"path": "/x", "clientIp": "not-an-ip"})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["path"], "clientIp");

    // RBAC: no token 401; a role without config read 403.
    assert_eq!(admin.explain(None, json!({"path": "/x"})).await.0, 401);
    let auditor = admin.token("auditor").await;
    assert_eq!(admin.explain(Some(&auditor), json!({"path": "/x"})).await.0, 403);
}

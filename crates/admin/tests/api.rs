//! The REST API driven in-process (`tower::ServiceExt::oneshot`) over a real store: each test of
//! the suite runs on SQLite, PostgreSQL and MariaDB/MySQL (see `common`).

mod common;
use common::{run, Target};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tigateway_admin::api::{router, served_routes, AppState};
use tigateway_admin::identity::{Identity, NewUser};
use tigateway_admin::store::Store;
use tigateway_auth::LoginLimiter;
use tigateway_model::{AppAuth, Condition, Rule, Selector};
use tower::ServiceExt as _;

const ADMIN_PASSWORD: &str = "admin-password-1";
const VIEWER_PASSWORD: &str = "viewer-password-1";
const EDITOR_PASSWORD: &str = "editor-password-1";

struct Api {
    app: Router,
    store: Store,
    identity: Identity,
    _dir: Option<tempfile::TempDir>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    /// On a SQLite file of its own, for tests that are about the HTTP layer, not the database.
    async fn sqlite() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
        let mut api = Api::open(Store::open(&url).await.unwrap(), Duration::from_secs(600)).await;
        api._dir = Some(dir);
        api
    }

    async fn open(store: Store, session_ttl: Duration) -> Api {
        let identity = Identity::new(&store);
        identity.bootstrap(Some(ADMIN_PASSWORD.into())).await.unwrap();
        for (name, password) in [("viewer", VIEWER_PASSWORD), ("editor", EDITOR_PASSWORD)] {
            identity
                .create_user(
                    NewUser {
                        username: name.into(),
                        password: password.into(),
                        enabled: true,
                        roles: vec![name.into()],
                    },
                    "test",
                )
                .await
                .unwrap();
        }
        let mut state = AppState::new(store.clone(), identity.clone());
        state.limiter = Arc::new(LoginLimiter::new(3, Duration::from_secs(60)));
        state.session_ttl = session_ttl;
        state.trusted_proxies = Arc::from(vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]);
        Api { store, identity, app: router(state), _dir: None }
    }

    async fn raw(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => {
                b.header(header::CONTENT_TYPE, "application/json").body(Body::from(serde_json::to_vec(&v).unwrap()))
            }
            None => b.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    async fn login(&self, user: &str, password: &str) -> Reply {
        self.call(Method::POST, "/api/v1/login", None, Some(json!({"username": user, "password": password}))).await
    }

    async fn token(&self, user: &str, password: &str) -> String {
        let r = self.login(user, password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }

    async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }
}

suite!(
    login_ok_bad_and_throttled,
    authentication_and_rbac,
    crud_paging_versions_and_validation,
    batch_is_all_or_nothing,
    export_import_revisions_rollback_and_audit,
    users_roles_and_tokens,
    expired_session_is_refused,
    store_down_is_503,
    rbac_matrix_over_every_endpoint,
    sessions_end_by_logout_revocation_and_rotation,
    spring_routes_in_shortcut_form,
    login_throttling_behind_trusted_proxies,
);

fn selector(id: &str, plugin: &str) -> Value {
    serde_json::to_value(Selector {
        id: id.into(),
        plugin_name: plugin.into(),
        name: format!("sel-{id}"),
        selector_type: 1,
        enabled: true,
        continued: true,
        condition_list: vec![Condition::new("uri", "match", None, "/api/**")],
        ..Default::default()
    })
    .unwrap()
}

fn rule(id: &str, selector_id: &str, plugin: &str) -> Value {
    serde_json::to_value(Rule {
        id: id.into(),
        name: format!("rule-{id}"),
        plugin_name: plugin.into(),
        selector_id: selector_id.into(),
        enabled: true,
        condition_data_list: vec![Condition::new("uri", "match", None, "/api/users/**")],
        ..Default::default()
    })
    .unwrap()
}

async fn login_ok_bad_and_throttled(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let ok = api.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(ok.body["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", ok.body);

    for _ in 0..3 {
        let bad = api.login("admin", "wrong-password").await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        assert_eq!(bad.body["code"], 401);
    }
    let throttled = api.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.body);
    let retry: u64 = throttled.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);

    let unknown =
        api.call(Method::POST, "/api/v1/login", None, Some(json!({"username": "a", "password": "b", "x": 1}))).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

async fn authentication_and_rbac(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let none = api.call(Method::GET, "/api/v1/selectors", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body["code"], 401);

    let admin = api.admin().await;
    let mut forged = admin.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = api.call(Method::GET, "/api/v1/selectors", Some(&forged), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api.call(Method::GET, "/api/v1/selectors", Some("tgw_not-a-real-token"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let viewer = api.token("viewer", VIEWER_PASSWORD).await;
    let r = api.call(Method::GET, "/api/v1/selectors", Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.call(Method::POST, "/api/v1/selectors", Some(&viewer), Some(selector("s1", "divide"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["code"], 403);
    let r = api.call(Method::POST, "/api/v1/batch", Some(&viewer), Some(json!([]))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api.call(Method::GET, "/api/v1/export", Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::OK);

    let r = api.call(Method::POST, "/api/v1/selectors", Some(&admin), Some(selector("s1", "divide"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

async fn crud_paging_versions_and_validation(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let tok = api.admin().await;
    let t = Some(tok.as_str());

    let s = api.call(Method::POST, "/api/v1/selectors", t, Some(selector("s1", "divide"))).await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    assert_eq!(s.body["version"], 1);
    assert_eq!(s.body["id"], "s1");
    // No id: the store assigns one.
    let mut anon = selector("", "divide");
    anon.as_object_mut().unwrap().remove("id");
    let s2 = api.call(Method::POST, "/api/v1/selectors", t, Some(anon)).await;
    assert_eq!(s2.status, StatusCode::CREATED, "{}", s2.body);
    assert!(!s2.body["id"].as_str().unwrap().is_empty());
    let dup = api.call(Method::POST, "/api/v1/selectors", t, Some(selector("s1", "divide"))).await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);

    for i in 0..5 {
        let r = api.call(Method::POST, "/api/v1/rules", t, Some(rule(&format!("r{i}"), "s1", "divide"))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let page = api.call(Method::GET, "/api/v1/rules?page=2&pageSize=2&selectorId=s1", t, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["total"], 5);
    assert_eq!(page.body["page"], 2);
    assert_eq!(page.body["pageSize"], 2);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "r2");
    assert_eq!(items[0]["version"], 1);
    let named = api.call(Method::GET, "/api/v1/rules?name=RULE-r4", t, None).await;
    assert_eq!(named.body["total"], 1);
    let plugins = api.call(Method::GET, "/api/v1/plugins?pluginName=divide", t, None).await;
    assert_eq!(plugins.body["total"], 1, "{}", plugins.body);
    let bad_query = api.call(Method::GET, "/api/v1/rules?page=x", t, None).await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);

    let got = api.call(Method::GET, "/api/v1/selectors/s1", t, None).await;
    assert_eq!(got.status, StatusCode::OK);
    let missing = api.call(Method::GET, "/api/v1/selectors/nope", t, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["code"], 404);

    // Update with If-Match, then with a stale ?version=, then with the body's version.
    let mut changed = got.body.clone();
    changed["name"] = json!("renamed");
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/selectors/s1")
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_MATCH, "\"1\"")
        .body(Body::from(serde_json::to_vec(&changed).unwrap()))
        .unwrap();
    let up = api.raw(req).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.body["version"], 2);
    assert_eq!(up.body["name"], "renamed");
    let stale = api.call(Method::PUT, "/api/v1/selectors/s1?version=1", t, Some(selector("s1", "divide"))).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.body["currentVersion"], 2);
    let stale_body = api.call(Method::PUT, "/api/v1/selectors/s1", t, Some(changed.clone())).await;
    assert_eq!(stale_body.status, StatusCode::CONFLICT, "the body still says version 1");
    let no_version = api.call(Method::DELETE, "/api/v1/rules/r0", t, None).await;
    assert_eq!(no_version.status, StatusCode::PRECONDITION_REQUIRED);

    // A rule under a selector of another plugin, with a bad regex: 422 with every path.
    let mut bad = rule("rx", "s1", "rewrite");
    bad["conditionDataList"] = json!([{"paramType": "uri", "operator": "regex", "paramValue": "(["}]);
    let invalid = api.call(Method::POST, "/api/v1/rules", t, Some(bad)).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", invalid.body);
    let errors = invalid.body["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{}", invalid.body);
    assert!(errors
        .iter()
        .all(|e| e["path"].as_str().is_some_and(|p| p.starts_with("rules[")) && e["message"].is_string()));

    // Unknown field, malformed JSON, no content type, oversized body.
    let mut unknown = selector("s9", "divide");
    unknown["colour"] = json!("blue");
    let r = api.call(Method::POST, "/api/v1/selectors", t, Some(unknown)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["message"].as_str().unwrap().contains("colour"), "{}", r.body);
    let malformed = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/selectors")
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"id\": "))
        .unwrap();
    assert_eq!(api.raw(malformed).await.status, StatusCode::BAD_REQUEST);
    let no_type = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/selectors")
        .header(header::AUTHORIZATION, format!("Bearer {tok}"))
        .body(Body::from(serde_json::to_vec(&selector("s8", "divide")).unwrap()))
        .unwrap();
    assert_eq!(api.raw(no_type).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut huge = selector("s7", "divide");
    huge["name"] = json!("x".repeat(2 * 1024 * 1024));
    let r = api.call(Method::POST, "/api/v1/selectors", t, Some(huge)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["code"], 413);

    // Delete with the current version.
    let del = api.call(Method::DELETE, "/api/v1/rules/r0?version=1", t, None).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    let gone = api.call(Method::GET, "/api/v1/rules/r0", t, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let stale_del = api.call(Method::DELETE, "/api/v1/selectors/s1?version=1", t, None).await;
    assert_eq!(stale_del.status, StatusCode::CONFLICT);
    assert_eq!(stale_del.body["currentVersion"], 2);
}

async fn batch_is_all_or_nothing(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let t = api.admin().await;
    let t = Some(t.as_str());
    let bad = json!([
        {"op": "create", "item": {"type": "selector", "value": selector("s1", "divide")}},
        {"op": "create", "item": {"type": "rule", "value": rule("r1", "s1", "divide")}},
        {"op": "create", "item": {"type": "rule", "value": rule("r2", "missing", "divide")}},
    ]);
    let r = api.call(Method::POST, "/api/v1/batch", t, Some(bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let sels = api.call(Method::GET, "/api/v1/selectors", t, None).await;
    assert_eq!(sels.body["total"], 0, "nothing written");

    let good = json!([
        {"op": "create", "item": {"type": "selector", "value": selector("s1", "divide")}},
        {"op": "create", "item": {"type": "rule", "value": rule("r1", "s1", "divide")}},
    ]);
    let r = api.call(Method::POST, "/api/v1/batch", t, Some(good)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["revision"].as_i64().unwrap() > 1);
    let rules = api.call(Method::GET, "/api/v1/rules", t, None).await;
    assert_eq!(rules.body["total"], 1);
}

async fn export_import_revisions_rollback_and_audit(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let t = api.admin().await;
    let t = Some(t.as_str());
    assert_eq!(
        api.call(Method::POST, "/api/v1/selectors", t, Some(selector("s1", "divide"))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call(Method::POST, "/api/v1/rules", t, Some(rule("r1", "s1", "divide"))).await.status,
        StatusCode::CREATED
    );
    let app = serde_json::to_value(AppAuth {
        app_key: "key-1".into(),
        app_secret: "very-secret".into(),
        enabled: true,
        ..Default::default()
    })
    .unwrap();
    let a = api.call(Method::POST, "/api/v1/app-auth", t, Some(app)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    let exported = api.call(Method::GET, "/api/v1/export", t, None).await;
    assert_eq!(exported.status, StatusCode::OK);
    let doc = exported.body.clone();
    assert_eq!(doc["appAuth"][0]["appSecret"], "very-secret", "a backup keeps secrets");

    // Wipe selectors and rules by importing a config without them, then restore.
    let mut wiped = doc.clone();
    wiped["selectors"] = json!([]);
    wiped["rules"] = json!([]);
    let dry = api.call(Method::POST, "/api/v1/import?dryRun=true", t, Some(wiped.clone())).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert!(!dry.body["changes"].as_array().unwrap().is_empty());
    assert_eq!(api.call(Method::GET, "/api/v1/rules", t, None).await.body["total"], 1, "a dry run writes nothing");
    let r = api.call(Method::POST, "/api/v1/import", t, Some(wiped)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let wiped_rev = r.body["revision"].as_i64().unwrap();
    assert_eq!(api.call(Method::GET, "/api/v1/rules", t, None).await.body["total"], 0);
    let r = api.call(Method::POST, "/api/v1/import?dryRun=false", t, Some(doc.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(api.call(Method::GET, "/api/v1/export", t, None).await.body, doc, "round trip");
    let mut broken = doc.clone();
    broken["rules"][0]["selectorId"] = json!("missing");
    let r = api.call(Method::POST, "/api/v1/import", t, Some(broken)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Revisions: newest first; one in detail with secrets redacted; roll back to the wiped one.
    let revs = api.call(Method::GET, "/api/v1/revisions?pageSize=2", t, None).await;
    assert_eq!(revs.status, StatusCode::OK);
    assert_eq!(revs.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(revs.body["items"][0]["operation"], "import");
    let detail = api.call(Method::GET, &format!("/api/v1/revisions/{wiped_rev}"), t, None).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(detail.body["config"]["appAuth"][0]["appSecret"], "***");
    assert!(!detail.body["changes"].as_array().unwrap().is_empty());
    assert_eq!(api.call(Method::GET, "/api/v1/revisions/9999", t, None).await.status, StatusCode::NOT_FOUND);
    let rb = api.call(Method::POST, &format!("/api/v1/revisions/{wiped_rev}/rollback"), t, None).await;
    assert_eq!(rb.status, StatusCode::OK, "{}", rb.body);
    assert_eq!(api.call(Method::GET, "/api/v1/rules", t, None).await.body["total"], 0);
    assert_eq!(api.call(Method::GET, "/api/v1/selectors", t, None).await.body["total"], 0);

    // Audit: who did it, secrets redacted, filterable.
    let audit = api.call(Method::GET, "/api/v1/audit?entityType=app_auth&pageSize=100", t, None).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let items = audit.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["actor"] == "admin" && e["entityType"] == "app_auth"));
    assert!(!audit.body.to_string().contains("very-secret"), "{}", audit.body);
    let all = api.call(Method::GET, "/api/v1/audit", t, None).await;
    assert!(all.body["total"].as_i64().unwrap() > 3);
    assert_eq!(api.call(Method::GET, "/api/v1/audit?entityType=nope", t, None).await.status, StatusCode::BAD_REQUEST);
}

async fn users_roles_and_tokens(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let tok = api.admin().await;
    let t = Some(tok.as_str());
    let viewer = api.token("viewer", VIEWER_PASSWORD).await;
    for uri in ["/api/v1/users", "/api/v1/roles", "/api/v1/tokens"] {
        assert_eq!(api.call(Method::GET, uri, Some(&viewer), None).await.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(api.call(Method::GET, uri, None, None).await.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(api.call(Method::GET, uri, t, None).await.status, StatusCode::OK, "{uri}");
    }

    // Users.
    let new_user = json!({"username": "ops", "password": "ops-password-1", "roles": ["editor"]});
    let u = api.call(Method::POST, "/api/v1/users", t, Some(new_user.clone())).await;
    assert_eq!(u.status, StatusCode::CREATED, "{}", u.body);
    assert!(u.body.get("password").is_none() && u.body.get("passwordHash").is_none());
    let id = u.body["id"].as_str().unwrap().to_string();
    assert_eq!(api.call(Method::POST, "/api/v1/users", t, Some(new_user)).await.status, StatusCode::CONFLICT);
    let short = json!({"username": "x y", "password": "short"});
    let r = api.call(Method::POST, "/api/v1/users", t, Some(short)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2, "{}", r.body);
    let found = api.call(Method::GET, "/api/v1/users?username=OP", t, None).await;
    assert_eq!(found.body["total"], 1);
    let ops = api.token("ops", "ops-password-1").await;
    let r = api.call(Method::POST, "/api/v1/selectors", Some(&ops), Some(selector("s1", "divide"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "an editor writes config");
    let user_uri = format!("/api/v1/users/{id}");
    let r = api.call(Method::PUT, &format!("{user_uri}?version=1"), t, Some(json!({"enabled": false}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    let r = api.call(Method::GET, "/api/v1/selectors", Some(&ops), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a disabled user's session stops working");
    let r = api.call(Method::PUT, &format!("{user_uri}?version=1"), t, Some(json!({"enabled": true}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["currentVersion"], 2);

    // Roles.
    let role = json!({"name": "rules-writer", "permissions": [["rules", "write"]]});
    let r = api.call(Method::POST, "/api/v1/roles", t, Some(role)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bad = json!({"name": "broken", "permissions": [["nothing", "write"]]});
    assert_eq!(api.call(Method::POST, "/api/v1/roles", t, Some(bad)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let upd = json!({"permissions": [["rules", "write"], ["selectors", "read"]]});
    let r = api.call(Method::PUT, "/api/v1/roles/rules-writer?version=1", t, Some(upd)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"].as_array().unwrap().len(), 2);
    let r = api.call(Method::GET, "/api/v1/roles/rules-writer", t, None).await;
    assert_eq!(r.body["version"], 2);
    let r = api.call(Method::DELETE, "/api/v1/roles/rules-writer?version=2", t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::GET, "/api/v1/roles/rules-writer", t, None).await.status, StatusCode::NOT_FOUND);

    // API tokens: usable until revoked.
    let r = api.call(Method::POST, "/api/v1/tokens", t, Some(json!({"name": "ci", "owner": "viewer"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let api_token = r.body["token"].as_str().unwrap().to_string();
    let token_id = r.body["id"].as_str().unwrap().to_string();
    assert!(api_token.starts_with("tgw_"));
    assert_eq!(api.call(Method::GET, "/api/v1/selectors", Some(&api_token), None).await.status, StatusCode::OK);
    let r = api.call(Method::POST, "/api/v1/selectors", Some(&api_token), Some(selector("s2", "divide"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the token acts with its owner's roles");
    let listed = api.call(Method::GET, "/api/v1/tokens?owner=viewer", t, None).await;
    assert_eq!(listed.body["total"], 1);
    assert!(!listed.body.to_string().contains(&api_token));
    let r = api.call(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), t, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["revokedAt"].is_string());
    assert_eq!(
        api.call(Method::GET, "/api/v1/selectors", Some(&api_token), None).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Delete the user.
    let r = api.call(Method::DELETE, &format!("{user_uri}?version=2"), t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(api.call(Method::GET, &user_uri, t, None).await.status, StatusCode::NOT_FOUND);
}

async fn expired_session_is_refused(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(1)).await;
    let tok = api.admin().await;
    assert_eq!(api.call(Method::GET, "/api/v1/rules", Some(&tok), None).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = api.call(Method::GET, "/api/v1/rules", Some(&tok), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

async fn store_down_is_503(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let tok = api.admin().await;
    api.store.close().await;
    let r = api.call(Method::GET, "/api/v1/selectors", Some(&tok), None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["code"], 503);
    let r = api.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
}

/// `GET /api/v1/openapi.json` (no token) is an OpenAPI 3 document listing exactly the (method, path)
/// pairs the router serves, from the one table the router is built from; and every operation it
/// lists is really served (not 404/405) while the methods it does not list on a path are 405.
#[tokio::test]
async fn openapi_document_lists_every_served_route() {
    let api = Api::sqlite().await;
    let r = api.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();

    let served = served_routes();
    assert!(served.len() >= 50, "{served:?}");
    for (method, path) in &served {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} is not documented"))[method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|c| c.starts_with('2')), "{method} {path}: no success response");
        let open = matches!(path.as_str(), "/api/v1/login" | "/api/v1/openapi.json");
        if !open {
            assert_eq!(op["security"][0]["bearer"], json!([]), "{method} {path}: no bearer security");
            for code in ["401", "403"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
        }
        if op.get("requestBody").is_some() {
            for code in ["400", "413"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
        }
        if *method == "PUT" || (*method == "DELETE" && !path.starts_with("/api/v1/tokens")) {
            for code in ["404", "409", "428"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
        }
        for p in path.split('/').filter(|s| s.starts_with('{')) {
            let name = p.trim_matches(|c| c == '{' || c == '}');
            let params = op["parameters"].as_array().unwrap();
            assert!(params.iter().any(|x| x["in"] == "path" && x["name"] == name), "{method} {path}: no {name}");
        }
    }
    let documented: usize = paths.values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, served.len(), "the document lists operations the router does not serve");
    for schema in ["Error", "LoginRequest", "PageRule", "WriteOutcome", "User", "CreatedToken"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "no schema {schema}");
    }
    // Every schema reference resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(doc["components"]["schemas"][name].is_object(), "dangling reference to {name}");
    }

    // Every documented operation is served; the others on a documented path are not.
    let all = [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH];
    for (path, item) in paths {
        let uri = path.replace("{id}", "x").replace("{name}", "x").replace("{n}", "1");
        for m in &all {
            let documented = item.get(m.as_str().to_lowercase()).is_some();
            let r = api.call(m.clone(), &uri, None, None).await;
            if documented {
                assert!(
                    r.status != StatusCode::NOT_FOUND && r.status != StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {uri}: {}",
                    r.status
                );
            } else {
                assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri} is served but not documented");
            }
        }
    }
}

#[tokio::test]
async fn a_malformed_path_parameter_gets_a_json_400() {
    let api = Api::sqlite().await;
    let admin = api.admin().await;
    for (method, uri) in [(Method::GET, "/api/v1/revisions/__dict__"), (Method::POST, "/api/v1/revisions/x1/rollback")]
    {
        let r = api.call(method.clone(), uri, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {uri}");
        assert_eq!(r.body["code"], 400, "{method} {uri}: the error must be the JSON error shape");
    }
}

/// What each endpoint needs, written out here from the documented rules rather than taken from the
/// code under test: config kinds, `config`, `audit`, `users` (with session revocation and secret
/// rotation), `roles`, `tokens`; GET reads, every other method writes. `None`: public.
fn needed(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    let rest = path.strip_prefix("/api/v1/").unwrap_or_else(|| panic!("{path} is outside /api/v1"));
    let first = rest.split('/').next().unwrap();
    let action = if method == "GET" { "read" } else { "write" };
    let resource = match first {
        "openapi.json" | "login" => return None,
        "plugins" | "selectors" | "rules" | "metadata" | "app-auth" | "routes" => match first {
            "plugins" => "plugins",
            "selectors" => "selectors",
            "rules" => "rules",
            "metadata" => "metadata",
            "app-auth" => "appAuth",
            _ => "routes",
        },
        // Explain reads the whole config, so it needs what export needs.
        "batch" | "export" | "import" | "revisions" => "config",
        "explain" => "config_read",
        "audit" => "audit",
        "users" | "session-secret" => "users",
        "roles" => "roles",
        "tokens" => "tokens",
        other => panic!("the RBAC matrix does not know /api/v1/{other}: add it here"),
    };
    if resource == "config_read" {
        return Some(("config", "read"));
    }
    Some((resource, action))
}

/// The built-in roles as documented: viewer reads gateway config and audit; editor writes gateway
/// config and reads audit and roles; admin does everything.
fn role_grants(role: &str, resource: &str, action: &str) -> bool {
    let config = ["plugins", "selectors", "rules", "metadata", "appAuth", "routes", "config"].contains(&resource);
    match role {
        "admin" => true,
        "editor" => config || (action == "read" && ["audit", "roles"].contains(&resource)),
        "viewer" => action == "read" && (config || resource == "audit"),
        other => panic!("unknown role {other}"),
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Every served endpoint × every kind of caller: no token, malformed, forged, expired, `alg: none`,
/// logged out, revoked API token → 401; viewer, editor, admin sessions and a viewer's API token → 403 exactly where their role lacks the grant, otherwise the handler runs (never
/// 401/403). Logout and secret rotation end sessions and are covered by their own test.
async fn rbac_matrix_over_every_endpoint(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let admin = api.admin().await;
    let viewer = api.token("viewer", VIEWER_PASSWORD).await;
    let editor = api.token("editor", EDITOR_PASSWORD).await;
    let logged_out = api.token("viewer", VIEWER_PASSWORD).await;
    let r = api.call(Method::POST, "/api/v1/logout", Some(&logged_out), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let mk_token = |owner: &'static str| {
        let api = &api;
        let admin = admin.clone();
        async move {
            let body = json!({"name": "matrix", "owner": owner});
            let r = api.call(Method::POST, "/api/v1/tokens", Some(&admin), Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            (r.body["token"].as_str().unwrap().to_string(), r.body["id"].as_str().unwrap().to_string())
        }
    };
    let (viewer_api_token, _) = mk_token("viewer").await;
    let (revoked_api_token, revoked_id) = mk_token("admin").await;
    let r = api.call(Method::DELETE, &format!("/api/v1/tokens/{revoked_id}"), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let keys = api.identity.session_keys().await.unwrap();
    let now = unix_now();
    let roles = vec!["admin".to_string()];
    let (expired, _) = keys.issue("admin", &roles, now - 3600, 60).unwrap();
    let other = tigateway_auth::SessionKeys::from_secret(&tigateway_auth::SessionKeys::generate_secret()).unwrap();
    let (forged, _) = other.issue("admin", &roles, now, 600).unwrap();
    let payload = format!(r#"{{"sub":"admin","roles":["admin"],"exp":{},"iat":{now},"jti":"x"}}"#, now + 600);
    let alg_none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(payload.as_bytes()));

    // (label, Authorization header value, role whose grants apply; None = must be refused with 401)
    let callers: Vec<(&str, Option<String>, Option<&str>)> = vec![
        ("no token", None, None),
        ("not a bearer", Some("Basic YWRtaW46eA==".into()), None),
        ("garbage", Some("Bearer not.a.jwt".into()), None),
        ("forged", Some(format!("Bearer {forged}")), None),
        ("expired", Some(format!("Bearer {expired}")), None),
        ("alg none", Some(format!("Bearer {alg_none}")), None),
        ("logged out", Some(format!("Bearer {logged_out}")), None),
        ("revoked API token", Some(format!("Bearer {revoked_api_token}")), None),
        ("viewer", Some(format!("Bearer {viewer}")), Some("viewer")),
        ("viewer API token", Some(format!("Bearer {viewer_api_token}")), Some("viewer")),
        ("editor", Some(format!("Bearer {editor}")), Some("editor")),
        ("admin", Some(format!("Bearer {admin}")), Some("admin")),
    ];

    let mut checked = 0;
    for (method, path) in served_routes() {
        if path == "/api/v1/logout" || path == "/api/v1/session-secret/rotate" {
            continue;
        }
        let uri = path.replace("{id}", "x").replace("{name}", "x").replace("{n}", "1");
        let need = needed(method, &path);
        for (label, auth, role) in &callers {
            let mut b = Request::builder().method(method).uri(&uri);
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a.as_str());
            }
            let req = if method == "GET" || method == "DELETE" {
                b.body(Body::empty()).unwrap()
            } else {
                b.header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap()
            };
            let r = api.raw(req).await;
            let ctx = format!("{method} {uri} as {label}: {} {}", r.status, r.body);
            match (need, role) {
                (None, _) => assert!(r.status.as_u16() != 403, "{ctx}"),
                (Some(_), None) => {
                    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{ctx}");
                    assert_eq!(r.body["code"], 401, "{ctx}");
                }
                (Some((res, act)), Some(role)) if role_grants(role, res, act) => {
                    assert!(![401, 403].contains(&r.status.as_u16()), "{ctx}: should be allowed");
                    assert!(r.status.as_u16() < 500, "{ctx}");
                }
                (Some(_), Some(_)) => {
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "{ctx}: should be forbidden");
                    assert_eq!(r.body["code"], 403, "{ctx}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, (served_routes().len() - 2) * callers.len());
    assert!(checked >= 50 * callers.len(), "only {checked} cases ran");
    // The admin's session still works after all that (nothing above ended it).
    assert_eq!(api.call(Method::GET, "/api/v1/users", Some(&admin), None).await.status, StatusCode::OK);
}

async fn sessions_end_by_logout_revocation_and_rotation(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let admin = api.admin().await;
    let a = Some(admin.as_str());
    let (v1, v2) = (api.token("viewer", VIEWER_PASSWORD).await, api.token("viewer", VIEWER_PASSWORD).await);

    // Logout ends only the session it is called with; it needs no grant, only a session.
    assert_eq!(api.call(Method::POST, "/api/v1/logout", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.call(Method::POST, "/api/v1/logout", Some(&v1), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::GET, "/api/v1/rules", Some(&v1), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.call(Method::GET, "/api/v1/rules", Some(&v2), None).await.status, StatusCode::OK);

    // An admin ends all of a user's sessions; the viewer cannot.
    let users = api.call(Method::GET, "/api/v1/users?username=viewer", a, None).await;
    let viewer_id = users.body["items"][0]["id"].as_str().unwrap().to_string();
    let uri = format!("/api/v1/users/{viewer_id}/revoke-sessions");
    assert_eq!(api.call(Method::POST, &uri, Some(&v2), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.call(Method::POST, &uri, a, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::GET, "/api/v1/rules", Some(&v2), None).await.status, StatusCode::UNAUTHORIZED);
    let missing = api.call(Method::POST, "/api/v1/users/nobody/revoke-sessions", a, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);

    // Logout with an API token is refused (tokens are revoked through their own endpoint).
    let created = api.call(Method::POST, "/api/v1/tokens", a, Some(json!({"name": "ci", "owner": "admin"}))).await;
    let api_token = created.body["token"].as_str().unwrap().to_string();
    let r = api.call(Method::POST, "/api/v1/logout", Some(&api_token), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // Rotation: an editor may not; an admin may, and every session ends, API tokens keep working.
    let editor = api.token("editor", EDITOR_PASSWORD).await;
    let r = api.call(Method::POST, "/api/v1/session-secret/rotate", Some(&editor), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api.call(Method::POST, "/api/v1/session-secret/rotate", a, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    for t in [&admin, &editor] {
        assert_eq!(api.call(Method::GET, "/api/v1/rules", Some(t), None).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(api.call(Method::GET, "/api/v1/users", Some(&api_token), None).await.status, StatusCode::OK);
    let fresh = api.admin().await;
    assert_eq!(api.call(Method::GET, "/api/v1/users", Some(&fresh), None).await.status, StatusCode::OK);
    let audit = api.call(Method::GET, "/api/v1/audit?pageSize=100", Some(&fresh), None).await;
    let ops: Vec<&str> =
        audit.body["items"].as_array().unwrap().iter().filter_map(|e| e["operation"].as_str()).collect();
    assert!(ops.contains(&"rotate") && ops.contains(&"revoke-sessions"), "{ops:?}");
}

/// `/api/v1/routes` takes Spring Cloud Gateway route definitions as a Spring `application.yml`
/// would hold them (shortcut strings) and in the expanded form, stores them as the model and
/// refuses an unknown predicate with the field's path.
async fn spring_routes_in_shortcut_form(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let t = api.admin().await;
    let t = Some(t.as_str());
    let shortcut = json!({
        "id": "users",
        "uri": "lb://user-service",
        "order": 1,
        "predicates": ["Path=/api/users/**", "Method=GET,POST"],
        "filters": ["StripPrefix=2", "AddRequestHeader=X-From, tigateway"],
    });
    let r = api.call(Method::POST, "/api/v1/routes", t, Some(shortcut)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["version"], 1);
    let expanded = json!({
        "id": "orders",
        "uri": "http://127.0.0.1:9000",
        "predicates": [{"name": "Path", "args": {"patterns": "/api/orders/**"}}],
        "filters": [{"name": "RewritePath", "args": {"regexp": "/api/(?<rest>.*)", "replacement": "/${rest}"}}],
    });
    let r = api.call(Method::POST, "/api/v1/routes", t, Some(expanded)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let got = api.call(Method::GET, "/api/v1/routes/users", t, None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let text = got.body.to_string();
    assert!(text.contains("/api/users/**") && text.contains("StripPrefix"), "{text}");
    let list = api.call(Method::GET, "/api/v1/routes", t, None).await;
    assert_eq!(list.body["total"], 2, "{}", list.body);
    let export = api.call(Method::GET, "/api/v1/export", t, None).await;
    assert_eq!(export.body["routes"].as_array().unwrap().len(), 2, "{}", export.body);
    let cfg = api.store.load_config().await.unwrap();
    assert!(cfg.routes.iter().any(|r| r.id == "users" && r.uri == "lb://user-service"), "{:?}", cfg.routes);

    let bad = json!({"id": "bad", "uri": "http://127.0.0.1:1", "predicates": ["Pathh=/x/**"]});
    let r = api.call(Method::POST, "/api/v1/routes", t, Some(bad)).await;
    assert!(matches!(r.status.as_u16(), 400 | 422), "{} {}", r.status, r.body);
    assert!(r.body.to_string().contains("Pathh"), "the error must name the unknown predicate: {}", r.body);
    let bad_filter = json!({"id": "bad2", "uri": "http://127.0.0.1:1", "filters": ["StripPrefix=two"]});
    let r = api.call(Method::POST, "/api/v1/routes", t, Some(bad_filter)).await;
    assert!(matches!(r.status.as_u16(), 400 | 422), "{} {}", r.status, r.body);
    assert_eq!(api.call(Method::GET, "/api/v1/routes", t, None).await.body["total"], 2, "nothing half-written");
}

/// Failed logins are counted per client address. Behind a trusted proxy (10.0.0.0/8 here) the
/// address is the rightmost untrusted `X-Forwarded-For` entry; from anyone else the header is
/// ignored, so a client cannot dodge the limit by writing it.
async fn login_throttling_behind_trusted_proxies(store: Store, _url: String) {
    let api = Api::open(store, Duration::from_secs(600)).await;
    let login = |peer: &'static str, xff: Option<&'static str>, user: &'static str| {
        let api = &api;
        async move {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/login")
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(x) = xff {
                req = req.header("x-forwarded-for", x);
            }
            let mut req =
                req.body(Body::from(json!({"username": user, "password": "wrong-password"}).to_string())).unwrap();
            let addr: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
            req.extensions_mut().insert(axum::extract::ConnectInfo(addr));
            api.raw(req).await.status
        }
    };
    // Three failures from one client behind the proxy (different users, so only the address counts).
    for user in ["u1", "u2", "u3"] {
        assert_eq!(login("10.0.0.2", Some("6.6.6.6, 198.51.100.1"), user).await, StatusCode::UNAUTHORIZED);
    }
    // That client is throttled, whatever it writes further left and whichever proxy it comes through.
    assert_eq!(login("10.0.0.3", Some("1.2.3.4, 198.51.100.1"), "u4").await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not.
    assert_eq!(login("10.0.0.2", Some("198.51.100.2"), "u5").await, StatusCode::UNAUTHORIZED);
    // An untrusted peer's X-Forwarded-For is ignored: its failures count against the peer itself.
    for (xff, user) in [("198.51.100.7", "u6"), ("198.51.100.8", "u7"), ("198.51.100.9", "u8")] {
        assert_eq!(login("203.0.113.5", Some(xff), user).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login("203.0.113.5", Some("198.51.100.10"), "u9").await, StatusCode::TOO_MANY_REQUESTS);
}

/// Single objects are limited to 1 MiB, whole configs (import, batch) to 64 MiB: a ShenYu-sized
/// config of a few MB must go through `POST /api/v1/import` in one request.
#[tokio::test]
async fn whole_configs_may_be_larger_than_single_objects() {
    let api = Api::sqlite().await;
    let t = api.admin().await;
    let t = Some(t.as_str());
    let selectors: Vec<Value> = (0..9000)
        .map(|i| {
            let mut s = selector(&format!("s{i}"), "divide");
            s["name"] = json!(format!("a selector with a longer name to make the document realistic {i}"));
            s
        })
        .collect();
    let doc = json!({"selectors": selectors});
    let size = serde_json::to_vec(&doc).unwrap().len();
    assert!(size > 2 * 1024 * 1024, "the document is only {size} bytes");
    let r = api.call(Method::POST, "/api/v1/import?dryRun=true", t, Some(doc.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{size} bytes: {}", r.body);
    // The same bytes as one object are refused.
    let r = api.call(Method::POST, "/api/v1/selectors", t, Some(doc)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
}

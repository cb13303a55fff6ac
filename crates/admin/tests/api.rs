//! The REST API driven in-process (`tower::ServiceExt::oneshot`) over a SQLite store in a temp dir.

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

struct Api {
    app: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    async fn new() -> Api {
        Api::with_ttl(Duration::from_secs(600)).await
    }

    async fn with_ttl(session_ttl: Duration) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
        let store = Store::open(&url).await.unwrap();
        let identity = Identity::new(&store);
        identity.bootstrap(Some(ADMIN_PASSWORD.into())).await.unwrap();
        identity
            .create_user(
                NewUser {
                    username: "viewer".into(),
                    password: VIEWER_PASSWORD.into(),
                    enabled: true,
                    roles: vec!["viewer".into()],
                },
                "test",
            )
            .await
            .unwrap();
        let state =
            AppState { store, identity, limiter: Arc::new(LoginLimiter::new(3, Duration::from_secs(60))), session_ttl };
        Api { store: state.store.clone(), app: router(state), _dir: dir }
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

#[tokio::test]
async fn login_ok_bad_and_throttled() {
    let api = Api::new().await;
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

#[tokio::test]
async fn authentication_and_rbac() {
    let api = Api::new().await;
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

#[tokio::test]
async fn crud_paging_versions_and_validation() {
    let api = Api::new().await;
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

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let api = Api::new().await;
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

#[tokio::test]
async fn export_import_revisions_rollback_and_audit() {
    let api = Api::new().await;
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

#[tokio::test]
async fn users_roles_and_tokens() {
    let api = Api::new().await;
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

#[tokio::test]
async fn expired_session_is_refused() {
    let api = Api::with_ttl(Duration::from_secs(1)).await;
    let tok = api.admin().await;
    assert_eq!(api.call(Method::GET, "/api/v1/rules", Some(&tok), None).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = api.call(Method::GET, "/api/v1/rules", Some(&tok), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn store_down_is_503() {
    let api = Api::new().await;
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
    let api = Api::new().await;
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
    let api = Api::new().await;
    let admin = api.admin().await;
    for (method, uri) in [(Method::GET, "/api/v1/revisions/__dict__"), (Method::POST, "/api/v1/revisions/x1/rollback")]
    {
        let r = api.call(method.clone(), uri, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {uri}");
        assert_eq!(r.body["code"], 400, "{method} {uri}: the error must be the JSON error shape");
    }
}

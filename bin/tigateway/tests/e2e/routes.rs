//! Spring Cloud Gateway route semantics, end to end.
use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn seed_route_strips_prefix_through_lb() {
    let up = upstream(UpstreamBehavior::named("users")).await;
    let gw = TestGateway::start(&format!(
        r#"
services:
  user-service: [{{url: "{}"}}]
routes:
  - id: user-service
    uri: lb://user-service
    predicates: [Path=/api/users/**]
    filters: [StripPrefix=2]
"#,
        up.url()
    ));
    let (status, body) = get_json(&gw.url("/api/users/42?x=1")).await;
    assert_eq!(status, 200);
    assert_eq!(body["path"], "/42");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["server"], "users");
    let (status, _) = get_json(&gw.url("/api/other")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn overlapping_routes_first_by_order_wins_and_only_its_filters_apply() {
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let gw = TestGateway::start(&format!(
        r#"
routes:
  - id: broad
    uri: {a}
    order: 10
    predicates: [Path=/api/**]
    filters: ["AddRequestHeader=X-Route, broad", "AddResponseHeader=X-Which, broad"]
  - id: narrow
    uri: {b}
    order: 1
    predicates: [Path=/api/users/**]
    filters: ["AddRequestHeader=X-Route, narrow", "StripPrefix=1"]
"#,
        a = a.url(),
        b = b.url()
    ));
    let r = client().get(gw.url("/api/users/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-which").is_none(), "the losing route's response filter ran");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["server"], "b");
    assert_eq!(v["headers"]["x-route"], "narrow");
    assert_eq!(v["path"], "/users/1");

    let r = client().get(gw.url("/api/orders/1")).send().await.unwrap();
    assert_eq!(r.headers()["x-which"], "broad");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["server"], "a");
    assert_eq!(v["headers"]["x-route"], "broad");
    assert_eq!(v["path"], "/api/orders/1");
}

#[tokio::test(flavor = "multi_thread")]
async fn predicates_end_to_end() {
    let up = upstream(UpstreamBehavior::named("p")).await;
    let u = up.url();
    let gw = TestGateway::start(&format!(
        r#"
routes:
  - {{id: header, uri: "{u}", order: 1, predicates: ["Path=/p/**", "Header=X-Env, canary"], filters: ["SetResponseHeader=X-R, header"]}}
  - {{id: query, uri: "{u}", order: 2, predicates: ["Path=/p/**", "Query=debug"], filters: ["SetResponseHeader=X-R, query"]}}
  - {{id: cookie, uri: "{u}", order: 3, predicates: ["Path=/p/**", "Cookie=session, ab.*"], filters: ["SetResponseHeader=X-R, cookie"]}}
  - {{id: method, uri: "{u}", order: 4, predicates: ["Path=/p/**", "Method=POST"], filters: ["SetResponseHeader=X-R, method"]}}
  - {{id: host, uri: "{u}", order: 5, predicates: ["Host=**.example.org"], filters: ["SetResponseHeader=X-R, host"]}}
  - {{id: remote, uri: "{u}", order: 6, predicates: ["Path=/p/**", "RemoteAddr=127.0.0.1/32"], filters: ["SetResponseHeader=X-R, remote"]}}
  - {{id: before, uri: "{u}", order: 7, predicates: ["Path=/t/**", "Before=2000-01-01T00:00:00+00:00"], filters: ["SetResponseHeader=X-R, before"]}}
  - {{id: after, uri: "{u}", order: 8, predicates: ["Path=/t/**", "After=2000-01-01T00:00:00+00:00"], filters: ["SetResponseHeader=X-R, after"]}}
"#
    ));
    let c = client();
    let which = |r: reqwest::Response| r.headers().get("x-r").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(which(c.get(gw.url("/p/1")).header("X-Env", "canary").send().await.unwrap()).as_deref(), Some("header"));
    assert_eq!(which(c.get(gw.url("/p/1?debug=1")).send().await.unwrap()).as_deref(), Some("query"));
    assert_eq!(
        which(c.get(gw.url("/p/1")).header("Cookie", "session=abc").send().await.unwrap()).as_deref(),
        Some("cookie")
    );
    assert_eq!(which(c.post(gw.url("/p/1")).send().await.unwrap()).as_deref(), Some("method"));
    assert_eq!(
        which(c.get(gw.url("/x")).header("Host", "api.example.org").send().await.unwrap()).as_deref(),
        Some("host")
    );
    assert_eq!(which(c.get(gw.url("/p/1")).send().await.unwrap()).as_deref(), Some("remote"));
    assert_eq!(which(c.get(gw.url("/t/1")).send().await.unwrap()).as_deref(), Some("after"));
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_end_to_end() {
    let up = upstream(UpstreamBehavior::named("f")).await;
    let u = up.url();
    let gw = TestGateway::start(&format!(
        r#"
routes:
  - id: rewrite
    uri: "{u}"
    predicates: ["Path=/red/**"]
    filters:
      - "RewritePath=/red/?(?<segment>.*), /blue/$\\{{segment}}"
      - "AddRequestParameter=color, blue"
      - "RemoveRequestHeader=X-Drop"
      - "SetRequestHeader=X-Set, yes"
      - "MapRequestHeader=X-From, X-To"
      - "PrefixPath=/v1"
      - "SecureHeaders"
      - "RemoveResponseHeader=X-Upstream"
  - id: setpath
    uri: "{u}"
    predicates: ["Path=/seg/{{segment}}"]
    filters: ["SetPath=/only/{{segment}}", "SetStatus=201"]
  - id: redirect
    uri: "{u}"
    predicates: ["Path=/old/**"]
    filters: ["RedirectTo=301, https://new.example.org/x"]
  - id: size
    uri: "{u}"
    predicates: ["Path=/upload/**"]
    filters: ["RequestSize=10B"]
"#
    ));
    let c = client();
    let r = c.get(gw.url("/red/a/b?q=1")).header("X-Drop", "1").header("X-From", "v").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().get("x-upstream").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/v1/blue/a/b");
    assert_eq!(v["query"], "q=1&color=blue");
    assert!(v["headers"].get("x-drop").is_none());
    assert_eq!(v["headers"]["x-set"], "yes");
    assert_eq!(v["headers"]["x-to"], "v");

    let r = c.get(gw.url("/seg/abc")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/only/abc");

    let r = c.get(gw.url("/old/thing")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://new.example.org/x");

    let r = c.post(gw.url("/upload/x")).body("0123456789abcdef").send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r = c.post(gw.url("/upload/x")).body("short").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn weight_predicate_splits_traffic() {
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let gw = TestGateway::start(&format!(
        r#"
routes:
  - {{id: heavy, uri: "{}", predicates: ["Path=/w/**", "Weight=g, 8"]}}
  - {{id: light, uri: "{}", predicates: ["Path=/w/**", "Weight=g, 2"]}}
"#,
        a.url(),
        b.url()
    ));
    let c = client();
    for _ in 0..400 {
        assert_eq!(c.get(gw.url("/w/x")).send().await.unwrap().status(), 200);
    }
    let (ha, hb) = (a.hits(), b.hits());
    assert_eq!(ha + hb, 400);
    assert!((260..=370).contains(&ha), "8:2 split gave {ha}:{hb}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_op_route_answers_itself_with_its_filters() {
    let gw = TestGateway::start(
        r#"
routes:
  - {id: teapot, uri: "no://op", predicates: ["Path=/tea"], filters: ["SetStatus=418", "AddResponseHeader=X-Brewed, yes"]}
  - {id: moved, uri: "no://op", predicates: ["Path=/old"], filters: ["RedirectTo=302, https://example.org/new"]}
"#,
    );
    let r = client().get(gw.url("/tea")).send().await.unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["x-brewed"], "yes");
    let r = client().get(gw.url("/old")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://example.org/new");
}

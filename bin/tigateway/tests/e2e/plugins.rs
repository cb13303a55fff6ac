//! ShenYu plugin → selector → rule model, end to end.
use crate::common::*;

fn divide_cfg(upstreams: &[&Upstream], lb: &str, extra: &str) -> String {
    let list: Vec<String> =
        upstreams.iter().map(|u| format!(r#"{{"upstreamUrl":"{}","weight":50}}"#, u.addr)).collect();
    format!(
        r#"
selectors:
  - id: s1
    pluginName: divide
    type: 1
    conditionList: [{{paramType: uri, operator: match, paramValue: "/http/**"}}]
    handle: '[{list}]'
rules:
  - id: r1
    selectorId: s1
    conditionDataList: [{{paramType: uri, operator: match, paramValue: "/http/**"}}]
    handle: {{loadBalance: {lb}, retry: 0, timeout: 3000}}
{extra}
"#,
        list = list.join(",")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn divide_forwards_whole_path_and_round_robins() {
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let c = upstream(UpstreamBehavior::named("c")).await;
    let gw = TestGateway::start(&divide_cfg(&[&a, &b, &c], "roundRobin", ""));
    let (status, v) = get_json(&gw.url("/http/order/1")).await;
    assert_eq!(status, 200);
    assert_eq!(v["path"], "/http/order/1", "divide forwards the full path, as ShenYu");
    for _ in 0..299 {
        assert_eq!(client().get(gw.url("/http/x")).send().await.unwrap().status(), 200);
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (100, 100, 100));
    let (status, v) = get_json(&gw.url("/other")).await;
    assert_eq!(status, 404);
    assert_eq!(v["code"], 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn hash_balancer_is_sticky_per_header() {
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let cfg =
        divide_cfg(&[&a, &b], "hash", "").replace("loadBalance: hash,", "loadBalance: hash, hashKey: 'header:X-User',");
    let gw = TestGateway::start(&cfg);
    let mut seen = std::collections::HashMap::new();
    for user in 0..20 {
        for _ in 0..3 {
            let r = client().get(gw.url("/http/x")).header("X-User", format!("u{user}")).send().await.unwrap();
            let server = r.headers()["x-upstream"].to_str().unwrap().to_string();
            let prev = seen.entry(user).or_insert_with(|| server.clone());
            assert_eq!(*prev, server, "user {user} moved between upstreams");
        }
    }
    assert!(a.hits() > 0 && b.hits() > 0, "hash put every user on one upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn selector_scoring_and_header_conditions() {
    let a = upstream(UpstreamBehavior::named("a")).await;
    let b = upstream(UpstreamBehavior::named("b")).await;
    let gw = TestGateway::start(&format!(
        r#"
selectors:
  - id: general
    pluginName: divide
    sort: 1
    conditionList: [{{paramType: uri, operator: startsWith, paramValue: "/api/"}}]
    handle: '[{{"upstreamUrl":"{a}"}}]'
  - id: canary
    pluginName: divide
    sort: 2
    conditionList:
      - {{paramType: uri, operator: startsWith, paramValue: "/api/"}}
      - {{paramType: header, paramName: X-Env, operator: "=", paramValue: canary}}
    handle: '[{{"upstreamUrl":"{b}"}}]'
    continued: false
rules:
  - {{id: r, selectorId: general, conditionDataList: [{{paramType: req_method, operator: "=", paramValue: GET}}]}}
"#,
        a = a.addr,
        b = b.addr
    ));
    let c = client();
    // Two conditions beat one (ShenYu scores and-selectors by condition count), whatever the sort.
    let r = c.get(gw.url("/api/x")).header("X-Env", "canary").send().await.unwrap();
    assert_eq!(r.headers()["x-upstream"], "b");
    let r = c.get(gw.url("/api/x")).send().await.unwrap();
    assert_eq!(r.headers()["x-upstream"], "a");
    // The general selector's only rule is GET: a POST finds no rule.
    let r = c.post(gw.url("/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn context_path_rewrite_request_and_response_plugins() {
    let up = upstream(UpstreamBehavior::named("u")).await;
    let gw = TestGateway::start(&format!(
        r#"
selectors:
  - {{id: cp, pluginName: contextPath, conditionList: [{{paramType: uri, operator: match, paramValue: "/svc/**"}}]}}
  - {{id: rw, pluginName: rewrite, conditionList: [{{paramType: uri, operator: match, paramValue: "/svc/legacy/**"}}]}}
  - {{id: rq, pluginName: request, type: 0}}
  - {{id: mr, pluginName: modifyResponse, type: 0}}
  - {{id: rd, pluginName: redirect, conditionList: [{{paramType: uri, operator: "=", paramValue: "/moved"}}]}}
  - {{id: d, pluginName: divide, type: 0, handle: '[{{"upstreamUrl":"{addr}"}}]'}}
rules:
  - {{id: cp1, selectorId: cp, conditionDataList: [{{paramType: uri, operator: match, paramValue: "/svc/**"}}], handle: {{contextPath: /svc, addPrefix: /internal}}}}
  - {{id: rw1, selectorId: rw, conditionDataList: [{{paramType: uri, operator: match, paramValue: "/svc/legacy/**"}}], handle: {{regex: "^/internal/legacy/(.*)", replace: "/v2/$1"}}}}
  - {{id: rq1, selectorId: rq, handle: {{header: {{addHeaders: {{X-Added: "1"}}, removeHeaderKeys: [X-Secret]}}, parameter: {{setParameters: {{lang: "en"}}}}}}}}
  - {{id: mr1, selectorId: mr, handle: {{addHeaders: {{X-Resp: "yes"}}, removeHeaderKeys: [X-Upstream]}}}}
  - {{id: rd1, selectorId: rd, conditionDataList: [{{paramType: uri, operator: "=", paramValue: "/moved"}}], handle: {{redirectURI: "https://example.org/new", httpStatusCode: 308}}}}
  - {{id: d1, selectorId: d}}
"#,
        addr = up.addr
    ));
    let c = client();
    let r = c.get(gw.url("/svc/users/1?x=1")).header("X-Secret", "s").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-resp"], "yes");
    assert!(r.headers().get("x-upstream").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/internal/users/1");
    assert_eq!(v["query"], "x=1&lang=en");
    assert_eq!(v["headers"]["x-added"], "1");
    assert!(v["headers"].get("x-secret").is_none());

    let (_, v) = get_json(&gw.url("/svc/legacy/a/b")).await;
    assert_eq!(v["path"], "/v2/a/b");

    let r = c.get(gw.url("/moved")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "https://example.org/new");
}

#[tokio::test(flavor = "multi_thread")]
async fn shenyu_compatible_errors_flag() {
    let gw = TestGateway::start("server: {shenyuCompatibleErrors: true}\nselectors: [{id: s, pluginName: divide, conditionList: [{paramType: uri, operator: match, paramValue: /a/**}]}]");
    let (status, v) = get_json(&gw.url("/nothing")).await;
    assert_eq!(status, 200);
    assert_eq!(v["code"], -107);
}

//! `tigateway explain` run as a process on config files: text for humans, `--json` for tools,
//! exit codes for bad input.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tigateway");

const NATIVE: &str = r#"
selectors:
  - id: canary
    pluginName: divide
    sort: 1
    conditionList:
      - {paramType: uri, operator: match, paramValue: "/api/**"}
      - {paramType: header, operator: "=", paramName: X-Env, paramValue: canary}
    handle: '[{"upstreamUrl": "10.0.0.2:8080"}]'
  - id: stable
    pluginName: divide
    sort: 2
    conditionList:
      - {paramType: uri, operator: startsWith, paramValue: /api/v1/}
    handle: '[{"upstreamUrl": "10.0.0.1:8080"}]'
rules:
  - {id: canary-get, selectorId: canary, conditionDataList: [{paramType: req_method, operator: "=", paramValue: GET}]}
  - {id: stable-all, selectorId: stable, conditionDataList: [{paramType: uri, operator: match, paramValue: /**}]}
"#;

const SPRING: &str = r#"
spring:
  cloud:
    gateway:
      routes:
        - id: users-v2
          uri: http://10.0.0.20:8080
          order: 1
          predicates:
            - Path=/api/users/**
            - Query=version,2
        - id: users
          uri: http://10.0.0.10:8080
          order: 2
          predicates:
            - Path=/api/users/**
        - id: admin
          uri: http://10.0.0.30:8080
          order: 0
          predicates:
            - Path=/admin/**
"#;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run tigateway");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explains_why_a_request_gets_404() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "gw.yaml", NATIVE);
    let cfg = cfg.to_str().unwrap();
    // POST /api/v2/x: canary fails on its header, stable on its startsWith -> 404.
    let (code, out, err) = run(&["explain", "-c", cfg, "POST /api/v2/x", "-H", "X-Env: stable"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#"selector "canary" (and mode, score 2): condition #1 `header[X-Env] = canary` failed: request has "stable""#), "{out}");
    assert!(out.contains(r#"condition #0 `uri startsWith /api/v1/` failed: request has "/api/v2/x""#), "{out}");
    assert!(out.contains("outcome: [404]"), "{out}");

    // The same with --json: the structure the admin endpoint answers.
    let (code, out, _) = run(&["explain", "-c", cfg, "POST /api/v2/x", "-H", "X-Env: stable", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"]["kind"], "notFound");
    let divide = v["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "divide").unwrap();
    assert_eq!(divide["result"], "noSelector");
    assert_eq!(divide["selectors"][0]["failed"]["actual"], "stable");

    // With the canary header the canary selector wins, but its rule wants GET.
    let (_, out, _) = run(&["explain", "-c", cfg, "POST /api/v2/x", "-H", "X-Env: canary", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let divide = v["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "divide").unwrap();
    assert_eq!((divide["result"].as_str(), divide["selector"].as_str()), (Some("noRule"), Some("canary")));
    assert_eq!(divide["rules"][0]["failed"]["text"], "req_method = GET");
    assert_eq!(divide["rules"][0]["failed"]["actual"], "POST");

    let (_, out, _) = run(&["explain", "-c", cfg, "GET /api/v2/x", "-H", "X-Env: canary"]);
    assert!(out.contains("proxies to http://10.0.0.2:8080"), "{out}");
}

#[test]
fn explains_spring_routes_by_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "application.yml", SPRING);
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = run(&["explain", "-c", cfg, "GET /api/users/42"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#"route "users-v2" (order 1, -> http://10.0.0.20:8080): predicate #1 `Query=version,2` failed: request has nothing (absent)"#), "{out}");
    assert!(out.contains(r#"route "users" (order 2, -> http://10.0.0.10:8080): matched"#), "{out}");
    assert!(out.contains(r#"route "admin" (order 0, -> http://10.0.0.30:8080, ruled out by its Path prefix): predicate #0 `Path=/admin/**` failed"#), "{out}");
    assert!(out.contains(r#"outcome: route "users" proxies to http://10.0.0.10:8080"#), "{out}");

    let (_, out, _) = run(&["explain", "-c", cfg, "GET /api/users/42", "--query", "version=2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"]["route"], "users-v2");
}

#[test]
fn bad_input_exits_nonzero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "gw.yaml", NATIVE);
    let cfg = cfg.to_str().unwrap();
    let (code, _, err) = run(&["explain", "-c", cfg, "GET /x", "-H", "no colon here"]);
    assert_eq!(code, 2);
    assert!(err.contains("headers"), "{err}");
    let (code, _, err) = run(&["explain", "-c", cfg, "GET /x", "--client-ip", "300.1.1.1"]);
    assert_eq!(code, 2);
    assert!(err.contains("clientIp"), "{err}");
    let bad = write(
        &dir,
        "bad.yaml",
        "selectors: [{id: s, pluginName: divide, conditionList: [{paramType: nope, operator: match, paramValue: /x}]}]",
    );
    let (code, _, err) = run(&["explain", "-c", bad.to_str().unwrap(), "/x"]);
    assert_eq!(code, 1);
    assert!(err.contains("paramType"), "{err}");
}

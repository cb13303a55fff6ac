use super::*;

fn config(yaml: &str) -> Config {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
}

const CFG: &str = r#"
plugins:
  - {name: divide, enabled: true}
  - {name: redirect, enabled: true}
  - {name: contextPath, enabled: false}
  - {name: route, enabled: true}
  - {name: waf, enabled: true}
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
      - {paramType: uri, operator: match, paramValue: "/api/**"}
    handle: '[{"upstreamUrl": "10.0.0.1:8080"}]'
  - id: admin
    pluginName: divide
    sort: 0
    conditionList:
      - {paramType: uri, operator: match, paramValue: "/admin/**"}
    handle: '[{"upstreamUrl": "10.0.0.9:8080"}]'
  - id: old
    pluginName: redirect
    conditionList:
      - {paramType: uri, operator: "=", paramValue: /old}
rules:
  - {id: canary-get, selectorId: canary, conditionDataList: [{paramType: req_method, operator: "=", paramValue: GET}]}
  - {id: stable-json, selectorId: stable, sort: 1, conditionDataList: [{paramType: uri, operator: endsWith, paramValue: .json}]}
  - {id: stable-q, selectorId: stable, sort: 2, conditionDataList: [{paramType: query, operator: "=", paramName: v, paramValue: "2"}]}
  - {id: old-rule, selectorId: old, handle: '{"redirectURI": "https://new.example/", "httpStatusCode": 301}'}
routes:
  - {id: users, uri: "http://10.0.0.5:9000", order: 0, predicates: ["Path=/users/{id}", "Method=GET"], filters: ["SetPath=/v2/user/{id}"]}
  - {id: moved, uri: "http://10.0.0.6:9000", order: 1, predicates: ["Path=/moved/**"], filters: ["RedirectTo=308, https://elsewhere.example"]}
"#;

fn req(line: &str, headers: &[&str]) -> ExplainRequest {
    let h: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
    request_from_cli(line, &h, None, None, None).unwrap()
}

fn step<'a>(e: &'a Explanation, name: &str) -> &'a PluginStep {
    e.plugins.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn overlapping_selectors_name_the_condition_that_failed() {
    let cfg = config(CFG);
    let e = explain(&cfg, &req("GET /api/users/42.json", &["X-Env: stable"])).unwrap();
    let d = step(&e, "divide");
    assert_eq!(d.result, StepResult::Terminal);
    assert_eq!((d.selector.as_deref(), d.rule.as_deref()), (Some("stable"), Some("stable-json")));
    let canary = d.selectors.iter().find(|c| c.id == "canary").unwrap();
    let f = canary.failed.as_ref().unwrap();
    assert_eq!((f.param_type.as_str(), f.param_name.as_str(), f.operator.as_str()), ("header", "X-Env", "="));
    assert_eq!((f.expected.as_str(), f.actual.as_deref()), ("canary", Some("stable")));
    let admin = d.selectors.iter().find(|c| c.id == "admin").unwrap();
    assert!(!admin.candidate && !admin.matched);
    assert_eq!(e.outcome.kind, OutcomeKind::Proxy);
    assert_eq!(e.outcome.upstreams, ["http://10.0.0.1:8080"]);
    // Chain order: divide (200) after redirect (110) and route (195); contextPath disabled.
    let names: Vec<(&str, bool)> = e.plugins.iter().map(|p| (p.name.as_str(), p.enabled)).collect();
    assert!(names.contains(&("contextPath", false)));
    assert_eq!(step(&e, "waf").detail.split(' ').next(), Some("not"));
    let waf_in_use = config("plugins: [{name: waf}]\nselectors: [{id: w, pluginName: waf, conditionList: [{paramType: uri, operator: match, paramValue: /**}]}]");
    assert!(matches!(explain(&waf_in_use, &req("/x", &[])), Err(ExplainError::InvalidConfig(_))));
    let pos = |n: &str| e.plugins.iter().position(|p| p.name == n).unwrap();
    assert!(pos("redirect") < pos("route") && pos("route") < pos("divide"));
}

#[test]
fn no_rule_lists_every_failing_rule_condition() {
    let cfg = config(CFG);
    let e = explain(&cfg, &req("POST /api/x?v=1", &[])).unwrap();
    let d = step(&e, "divide");
    assert_eq!(d.result, StepResult::NoRule);
    assert_eq!(d.selector.as_deref(), Some("stable"));
    let texts: Vec<(&str, Option<&str>)> = d
        .rules
        .iter()
        .map(|r| {
            let f = r.failed.as_ref().unwrap();
            (f.text.as_str(), f.actual.as_deref())
        })
        .collect();
    assert_eq!(texts, [("uri endsWith .json", Some("/api/x")), ("query[v] = 2", Some("1"))]);
    assert_eq!(e.outcome.kind, OutcomeKind::NotFound);
    assert_eq!(e.outcome.status, Some(404));
}

#[test]
fn canary_header_wins_by_score_and_rules_are_checked() {
    let cfg = config(CFG);
    let e = explain(&cfg, &req("GET /api/users/42", &["X-Env: canary"])).unwrap();
    let d = step(&e, "divide");
    assert_eq!((d.selector.as_deref(), d.rule.as_deref()), (Some("canary"), Some("canary-get")));
    assert_eq!(e.outcome.upstreams, ["http://10.0.0.2:8080"]);
}

#[test]
fn spring_route_and_redirect() {
    let cfg = config(CFG);
    let e = explain(&cfg, &req("GET /users/7", &[])).unwrap();
    let r = step(&e, "route");
    assert_eq!(r.result, StepResult::Terminal);
    assert_eq!(e.outcome.route.as_deref(), Some("users"));
    assert_eq!(e.outcome.upstreams, ["http://10.0.0.5:9000"]);
    assert!(e.outcome.message.ends_with("which gets /v2/user/7"), "{}", e.outcome.message);
    assert_eq!(step(&e, "divide").result, StepResult::NotReached);

    // A filter that answers by itself is the outcome, not the route's uri.
    let e = explain(&cfg, &req("GET /moved/a", &[])).unwrap();
    assert_eq!(e.outcome.kind, OutcomeKind::Redirect);
    assert_eq!((e.outcome.status, e.outcome.location.as_deref()), (Some(308), Some("https://elsewhere.example")));

    let e = explain(&cfg, &req("DELETE /users/7", &[])).unwrap();
    let routes = step(&e, "route").routes.as_ref().unwrap();
    let f = routes.routes[0].failed.as_ref().unwrap();
    assert_eq!((f.text.as_str(), f.actual.as_deref()), ("Method=GET", Some("DELETE")));
    assert_eq!(e.outcome.kind, OutcomeKind::NotFound);

    let e = explain(&cfg, &req("/old", &[])).unwrap();
    assert_eq!(e.outcome.kind, OutcomeKind::Redirect);
    assert_eq!((e.outcome.status, e.outcome.location.as_deref()), (Some(301), Some("https://new.example/")));
}

#[test]
fn paths_are_normalised_as_the_data_plane_does() {
    let cfg = config(CFG);
    let e = explain(&cfg, &req("GET /api/../admin/x", &[])).unwrap();
    assert_eq!(e.request.path, "/admin/x");
    assert_eq!(step(&e, "divide").selector.as_deref(), Some("admin"));
    let e = explain(&cfg, &req("GET /a%2Fb", &[])).unwrap();
    assert_eq!((e.outcome.kind, e.outcome.status), (OutcomeKind::BadRequest, Some(400)));
}

#[test]
fn bad_input_names_the_field() {
    let cfg = config(CFG);
    let err = request_from_cli("GET", &[], None, None, None).unwrap_err();
    assert!(matches!(err, ExplainError::BadRequest { field: "request", .. }));
    let err = request_from_cli("GET /x", &["no-colon".into()], None, None, None).unwrap_err();
    assert!(matches!(err, ExplainError::BadRequest { field: "headers", .. }));
    let mut r = req("GET /x", &[]);
    r.client_ip = Some("nope".into());
    assert!(matches!(explain(&cfg, &r), Err(ExplainError::BadRequest { field: "clientIp", .. })));
    let bad = config(
        "selectors: [{id: s, pluginName: divide, conditionList: [{paramType: uri, operator: regex, paramValue: '('}]}]",
    );
    assert!(matches!(explain(&bad, &req("/x", &[])), Err(ExplainError::InvalidConfig(_))));
}

#[test]
fn text_names_failures() {
    let cfg = config(CFG);
    let e = explain(&cfg, &req("GET /api/users/42", &["X-Env: stable"])).unwrap();
    let t = render_text(&e);
    assert!(t.contains(r#"condition #1 `header[X-Env] = canary` failed: request has "stable""#), "{t}");
    assert!(t.contains("outcome:"), "{t}");
}

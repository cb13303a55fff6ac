use std::net::IpAddr;

use serde_json::{json, Value};

use super::*;

struct Req {
    method: http::Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    host: String,
    client_ip: IpAddr,
    peer_ip: IpAddr,
}

impl Req {
    fn get(path_and_query: &str) -> Req {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        Req {
            method: http::Method::GET,
            path,
            query,
            headers: HeaderMap::new(),
            host: "gateway.local".into(),
            client_ip: "10.0.0.1".parse().unwrap(),
            peer_ip: "10.0.0.1".parse().unwrap(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Req {
        self.headers.append(name, value.parse().unwrap());
        self
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            host: &self.host,
            client_ip: self.client_ip,
            peer_ip: self.peer_ip,
            body: None,
            content_type: None,
        }
    }

    fn route_request(&self) -> RouteRequest {
        RouteRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            host: None,
        }
    }
}

fn routes(v: Value) -> Vec<RouteDefinition> {
    serde_json::from_value(v).unwrap()
}

fn table(v: Value) -> RouteTable {
    compile(&routes(v)).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Id of the route `req` goes to, with a fixed clock and weight draw.
fn winner(t: &RouteTable, req: &Req) -> Option<String> {
    t.find_at(&req.view(), Utc::now(), &mut || 0.0).map(|m| m.route.id.clone())
}

fn one_route(predicates: Value) -> RouteTable {
    table(json!([{"id": "r", "uri": "http://up:8080", "predicates": predicates}]))
}

fn matches(predicates: Value, req: &Req) -> bool {
    winner(&one_route(predicates), req).is_some()
}

/// Runs the single route's request filters on `req`.
#[allow(clippy::result_large_err)]
fn run_request(filters: Value, predicates: Value, req: &Req) -> Result<RouteRequest, ShortCircuit> {
    let t = table(json!([{"id": "r", "uri": "lb://svc", "predicates": predicates, "filters": filters}]));
    let m = t.find_at(&req.view(), Utc::now(), &mut || 0.0).expect("route matches");
    let mut rr = req.route_request();
    m.route.apply_request(&m, &mut rr).map(|_| rr)
}

/// Runs the single route's response filters on (`status`, `headers`).
fn run_response(filters: Value, predicates: Value, req: &Req, headers: &mut HeaderMap) -> StatusCode {
    let t = table(json!([{"id": "r", "uri": "lb://svc", "predicates": predicates, "filters": filters}]));
    let m = t.find_at(&req.view(), Utc::now(), &mut || 0.0).expect("route matches");
    let mut status = StatusCode::OK;
    let host = req.headers.get("host").and_then(|h| h.to_str().ok());
    m.route.apply_response(&m, &mut status, headers, &ResponseInfo { request_host: host, request_path: &req.path });
    status
}

fn all(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

#[test]
fn seed_example_strips_two_segments() {
    let t = table(
        json!([{"id": "users", "uri": "lb://user-service", "predicates": ["Path=/api/users/**"], "filters": ["StripPrefix=2"]}]),
    );
    let req = Req::get("/api/users/42");
    let m = t.find(&req.view()).unwrap();
    assert_eq!(m.route.target, RouteTarget::Lb { service: "user-service".into() });
    let mut rr = req.route_request();
    m.route.apply_request(&m, &mut rr).unwrap();
    assert_eq!(rr.path, "/42");
    assert!(t.find(&Req::get("/api/orders/1").view()).is_none());
}

#[test]
fn overlapping_routes_lowest_order_wins_and_only_its_filters_apply() {
    let t = table(json!([
        {"id": "broad", "uri": "http://a:1", "order": 10, "predicates": ["Path=/api/**"], "filters": ["AddRequestHeader=X-Route, broad"]},
        {"id": "narrow", "uri": "http://b:2", "order": 1, "predicates": ["Path=/api/users/**"], "filters": ["AddRequestHeader=X-Route, narrow", "StripPrefix=1"]}
    ]));
    let req = Req::get("/api/users/1");
    let m = t.find(&req.view()).unwrap();
    assert_eq!(m.route.id, "narrow");
    let mut rr = req.route_request();
    m.route.apply_request(&m, &mut rr).unwrap();
    assert_eq!(all(&rr.headers, "x-route"), vec!["narrow"]);
    assert_eq!(rr.path, "/users/1");
    assert_eq!(winner(&t, &Req::get("/api/orders")).as_deref(), Some("broad"));
    assert_eq!(t.routes().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["narrow", "broad"]);
}

#[test]
fn equal_order_falls_back_to_list_position() {
    let t = table(json!([
        {"id": "first", "uri": "http://a:1", "predicates": ["Path=/api/**"]},
        {"id": "second", "uri": "http://b:2", "predicates": ["Path=/api/users/**"]},
        {"id": "catch-all", "uri": "http://c:3"}
    ]));
    assert_eq!(winner(&t, &Req::get("/api/users/1")).as_deref(), Some("first"));
    assert_eq!(winner(&t, &Req::get("/other")).as_deref(), Some("catch-all"));
    // A predicate-less route earlier in the list shadows everything after it.
    let t = table(json!([
        {"id": "all", "uri": "http://c:3"},
        {"id": "api", "uri": "http://a:1", "predicates": ["Path=/api/**"]}
    ]));
    assert_eq!(winner(&t, &Req::get("/api/x")).as_deref(), Some("all"));
}

#[test]
fn negative_order_beats_later_fallback_routes() {
    let t = table(json!([
        {"id": "path", "uri": "http://a:1", "order": 5, "predicates": ["Path=/x/**"]},
        {"id": "header", "uri": "http://b:2", "order": -1, "predicates": ["Header=X-Canary"]}
    ]));
    assert_eq!(winner(&t, &Req::get("/x/1").header("x-canary", "1")).as_deref(), Some("header"));
    assert_eq!(winner(&t, &Req::get("/x/1")).as_deref(), Some("path"));
}

#[test]
fn time_predicates() {
    let t = table(json!([
        {"id": "after", "uri": "http://a:1", "predicates": ["After=2030-01-01T00:00:00+00:00[UTC]"]},
        {"id": "between", "uri": "http://a:1", "predicates": ["Between=2020-01-01T00:00:00Z, 2020-12-31T23:59:59Z"]},
        {"id": "before", "uri": "http://a:1", "predicates": ["Before=2017-01-20T17:42:47.789-07:00[America/Denver]"]}
    ]));
    let at = |s: &str| {
        let now = spring::parse_zoned_date_time(s).unwrap().to_utc();
        t.find_at(&Req::get("/").view(), now, &mut || 0.0).map(|m| m.route.id.clone())
    };
    assert_eq!(at("2031-06-01T00:00:00Z").as_deref(), Some("after"));
    assert_eq!(at("2020-06-01T00:00:00Z").as_deref(), Some("between"));
    assert_eq!(at("2017-01-21T00:42:47.788Z").as_deref(), Some("before"));
    assert_eq!(at("2017-01-21T00:42:47.789Z"), None);
    assert_eq!(at("2025-01-01T00:00:00Z"), None);
}

#[test]
fn cookie_predicate() {
    let p = json!(["Cookie=chocolate, ch.p"]);
    assert!(matches(p.clone(), &Req::get("/").header("cookie", "a=b; chocolate=chip")));
    assert!(matches(p.clone(), &Req::get("/").header("cookie", "chocolate=\"chop\"")));
    assert!(!matches(p.clone(), &Req::get("/").header("cookie", "chocolate=chips")));
    assert!(!matches(p, &Req::get("/").header("cookie", "vanilla=chip")));
}

#[test]
fn header_predicate() {
    let p = json!([r"Header=X-Request-Id, \d+"]);
    assert!(matches(p.clone(), &Req::get("/").header("x-request-id", "123")));
    assert!(!matches(p.clone(), &Req::get("/").header("x-request-id", "12a")));
    assert!(matches(p.clone(), &Req::get("/").header("x-request-id", "abc, 42")));
    assert!(!matches(p, &Req::get("/")));
    let present = json!([{"name": "Header", "args": {"header": "X-Flag"}}]);
    assert!(matches(present.clone(), &Req::get("/").header("x-flag", "")));
    assert!(!matches(present, &Req::get("/")));
}

#[test]
fn host_predicate_and_its_variables() {
    let t = table(json!([{"id": "h", "uri": "http://a:1", "predicates": ["Host={sub}.myhost.org,**.other.org"],
                         "filters": ["SetRequestHeader=X-Sub, {sub}"]}]));
    let mut req = Req::get("/");
    req.host = "www.myhost.org".into();
    let m = t.find(&req.view()).unwrap();
    assert_eq!(m.vars, vec![("sub".to_string(), "www".to_string())]);
    let mut rr = req.route_request();
    m.route.apply_request(&m, &mut rr).unwrap();
    assert_eq!(all(&rr.headers, "x-sub"), vec!["www"]);
    req.host = "a.b.other.org".into();
    assert!(t.find(&req.view()).is_some());
    req.host = "myhost.org".into();
    assert!(t.find(&req.view()).is_none());
    let with_port = one_route(json!(["Host=*.myhost.org:8080"]));
    let mut req = Req::get("/").header("host", "api.myhost.org:8080");
    req.host = "api.myhost.org".into();
    assert!(winner(&with_port, &req).is_some());
}

#[test]
fn method_predicate() {
    let p = json!(["Method=GET,POST"]);
    assert!(matches(p.clone(), &Req::get("/")));
    let mut req = Req::get("/");
    req.method = http::Method::DELETE;
    assert!(!matches(p, &req));
}

#[test]
fn path_predicate_variables_and_trailing_slash() {
    let t = one_route(json!(["Path=/red/{segment},/blue/{segment}"]));
    let m = t.find(&Req::get("/blue/7").view()).unwrap();
    assert_eq!(m.vars, vec![("segment".to_string(), "7".to_string())]);
    assert!(t.find(&Req::get("/red/1/").view()).is_some());
    assert!(t.find(&Req::get("/red").view()).is_none());
    let strict = one_route(json!(["Path=/red/{segment},false"]));
    assert!(strict.find(&Req::get("/red/1/").view()).is_none());
    assert!(strict.find(&Req::get("/red/1").view()).is_some());
    let expanded = one_route(json!([{"name": "Path", "args": {"patterns": ["/a/**"], "matchTrailingSlash": false}}]));
    assert!(expanded.find(&Req::get("/a/b/c").view()).is_some());
}

#[test]
fn query_predicate() {
    let p = json!(["Query=green"]);
    assert!(matches(p.clone(), &Req::get("/?green")));
    assert!(matches(p.clone(), &Req::get("/?a=1&green=")));
    assert!(!matches(p, &Req::get("/?greenish=1")));
    let re = json!(["Query=red, gree."]);
    assert!(matches(re.clone(), &Req::get("/?red=greet")));
    assert!(matches(re.clone(), &Req::get("/?red=x&red=green")));
    assert!(matches(re.clone(), &Req::get("/?r%65d=gree%6E")));
    assert!(!matches(re.clone(), &Req::get("/?red=greener")));
    assert!(!matches(re, &Req::get("/?red")));
}

#[test]
fn remote_addr_predicates() {
    let p = json!(["RemoteAddr=192.168.1.1/24"]);
    let mut req = Req::get("/");
    req.client_ip = "192.168.1.77".parse().unwrap();
    assert!(matches(p.clone(), &req));
    req.client_ip = "192.168.2.1".parse().unwrap();
    assert!(!matches(p, &req));

    let x = json!([{"name": "XForwardedRemoteAddr", "args": {"sources": ["20.103.252.85"], "maxTrustedIndex": 2}}]);
    let req = Req::get("/").header("x-forwarded-for", "1.1.1.1, 20.103.252.85, 10.0.0.9");
    assert!(matches(x.clone(), &req));
    let req = Req::get("/").header("x-forwarded-for", "20.103.252.85, 10.0.0.9, 10.0.0.8");
    assert!(!matches(x.clone(), &req));
    let mut req = Req::get("/");
    req.peer_ip = "20.103.252.85".parse().unwrap();
    assert!(matches(x, &req), "no X-Forwarded-For: the peer address decides");
}

#[test]
fn weight_group_splits_with_one_draw_per_group() {
    let t = table(json!([
        {"id": "high", "uri": "http://a:1", "predicates": ["Path=/w/**", "Weight=group1, 8"]},
        {"id": "low", "uri": "http://b:2", "predicates": ["Path=/w/**", "Weight=group1, 2"]}
    ]));
    let pick = |r: f64| {
        let mut calls = 0;
        let w = t.find_at(&Req::get("/w/x").view(), Utc::now(), &mut || {
            calls += 1;
            r
        });
        (w.map(|m| m.route.id.clone()), calls)
    };
    assert_eq!(pick(0.0), (Some("high".into()), 1));
    assert_eq!(pick(0.79), (Some("high".into()), 1));
    assert_eq!(pick(0.81), (Some("low".into()), 1));
    assert_eq!(pick(0.999), (Some("low".into()), 1));

    let req = Req::get("/w/x");
    let n = 20_000;
    let high = (0..n).filter(|_| t.find(&req.view()).unwrap().route.id == "high").count();
    assert!((15_000..17_000).contains(&high), "high got {high} of {n}");
}

#[test]
fn weight_decides_before_the_other_predicates() {
    let t = table(json!([
        {"id": "canary", "uri": "http://a:1", "predicates": ["Header=X-Beta", "Weight=g, 1"]},
        {"id": "stable", "uri": "http://b:2", "predicates": ["Weight=g, 1"]},
        {"id": "fallback", "uri": "http://c:3"}
    ]));
    let go = |r: f64, req: &Req| t.find_at(&req.view(), Utc::now(), &mut || r).map(|m| m.route.id.clone());
    // Chosen canary without the header: the group yields nothing, stable is not tried instead.
    assert_eq!(go(0.1, &Req::get("/")).as_deref(), Some("fallback"));
    assert_eq!(go(0.1, &Req::get("/").header("x-beta", "1")).as_deref(), Some("canary"));
    assert_eq!(go(0.9, &Req::get("/").header("x-beta", "1")).as_deref(), Some("stable"));
}

#[test]
fn request_header_filters() {
    let req = Req::get("/").header("x-existing", "1").header("blue", "b1").header("blue", "b2").header("x-gone", "z");
    let rr = run_request(
        json!([
            "AddRequestHeader=X-Existing, 2",
            "SetRequestHeader=X-Set, s",
            "RemoveRequestHeader=X-Gone",
            "MapRequestHeader=Blue, X-Request-Red",
            "AddRequestHeadersIfNotPresent=X-Existing:no,X-New:n1,X-New:n2"
        ]),
        json!([]),
        &req,
    )
    .unwrap();
    assert_eq!(all(&rr.headers, "x-existing"), vec!["1", "2"]);
    assert_eq!(all(&rr.headers, "x-set"), vec!["s"]);
    assert!(rr.headers.get("x-gone").is_none());
    assert_eq!(all(&rr.headers, "x-request-red"), vec!["b1", "b2"]);
    assert_eq!(all(&rr.headers, "x-new"), vec!["n1", "n2"]);
    let rr =
        run_request(json!(["SetRequestHeader=X-Set, s"]), json!([]), &Req::get("/").header("x-set", "old")).unwrap();
    assert_eq!(all(&rr.headers, "x-set"), vec!["s"]);
}

#[test]
fn path_filters_in_declared_order() {
    let rr = run_request(json!(["PrefixPath=/mypath"]), json!([]), &Req::get("/hello")).unwrap();
    assert_eq!(rr.path, "/mypath/hello");
    let rr = run_request(json!([r"RewritePath=/red/?(?<segment>.*), /$\{segment}"]), json!([]), &Req::get("/red/blue"))
        .unwrap();
    assert_eq!(rr.path, "/blue");
    let rr =
        run_request(json!([r"RewritePath=/red/?(?<segment>.*), /$\{segment}"]), json!([]), &Req::get("/red")).unwrap();
    assert_eq!(rr.path, "/");
    let rr =
        run_request(json!(["SetPath=/{segment}"]), json!(["Path=/red/{segment}"]), &Req::get("/red/blue")).unwrap();
    assert_eq!(rr.path, "/blue");
    let rr =
        run_request(json!(["StripPrefix=1", "PrefixPath=/v2"]), json!(["Path=/api/**"]), &Req::get("/api/x/")).unwrap();
    assert_eq!(rr.path, "/v2/x/");
    let rr =
        run_request(json!(["PrefixPath=/v2", "StripPrefix=1"]), json!(["Path=/api/**"]), &Req::get("/api/x")).unwrap();
    assert_eq!(rr.path, "/api/x");
}

#[test]
fn query_parameter_filters() {
    let rr = run_request(json!(["AddRequestParameter=red, blue green"]), json!([]), &Req::get("/p?a=1")).unwrap();
    assert_eq!(rr.query.as_deref(), Some("a=1&red=blue%20green"));
    let rr = run_request(json!(["AddRequestParameter=red, a&b"]), json!([]), &Req::get("/p")).unwrap();
    assert_eq!(rr.query.as_deref(), Some("red=a%26b"));
    let rr =
        run_request(json!(["AddRequestParameter=seg, {segment}"]), json!(["Path=/p/{segment}"]), &Req::get("/p/x?z=&"))
            .unwrap();
    assert_eq!(rr.query.as_deref(), Some("z=&seg=x"));
    let rr =
        run_request(json!(["RemoveRequestParameter=red"]), json!([]), &Req::get("/p?red=1&green=2&r%65d=3")).unwrap();
    assert_eq!(rr.query.as_deref(), Some("green=2"));
    let rr = run_request(json!(["RemoveRequestParameter=red"]), json!([]), &Req::get("/p?red=1")).unwrap();
    assert_eq!(rr.query, None);
}

#[test]
fn host_header_filters() {
    let req = Req::get("/").header("host", "client.example:8443");
    let rr = run_request(json!(["PreserveHostHeader"]), json!([]), &req).unwrap();
    assert_eq!(rr.host.as_deref(), Some("client.example:8443"));
    let rr = run_request(json!(["SetRequestHostHeader=example.org"]), json!([]), &req).unwrap();
    assert_eq!(rr.host.as_deref(), Some("example.org"));
    assert_eq!(all(&rr.headers, "host"), vec!["example.org"]);
    let t = table(json!([{"id": "r", "uri": "lb://s", "filters": ["PreserveHostHeader"]}]));
    assert!(t.routes()[0].preserve_host);
}

#[test]
fn redirect_short_circuits() {
    let sc = run_request(
        json!(["RedirectTo=302, https://acme.org", "AddRequestHeader=X-Never, 1"]),
        json!([]),
        &Req::get("/a?x=1"),
    )
    .unwrap_err();
    assert_eq!(sc.status, StatusCode::FOUND);
    assert_eq!(all(&sc.headers, "location"), vec!["https://acme.org"]);
    let sc = run_request(json!(["RedirectTo=301, https://acme.org/p?k=v, true"]), json!([]), &Req::get("/a?x=1"))
        .unwrap_err();
    assert_eq!(
        (sc.status, all(&sc.headers, "location")),
        (StatusCode::MOVED_PERMANENTLY, vec!["https://acme.org/p?k=v&x=1".to_string()])
    );
}

#[test]
fn request_header_size_gives_431() {
    let req = Req::get("/").header("x-big", &"a".repeat(100)).header("x-small", "b");
    let sc = run_request(json!(["RequestHeaderSize=50B"]), json!([]), &req).unwrap_err();
    assert_eq!(sc.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        all(&sc.headers, "errormessage"),
        vec![
            "Request Header/s size is larger than permissible limit (50B). Request Header/s size for 'x-big' is 105B."
        ]
    );
    let sc = run_request(
        json!([{"name": "RequestHeaderSize", "args": {"maxSize": "5B", "errorHeaderName": "X-Why"}}]),
        json!([]),
        &req,
    )
    .unwrap_err();
    assert!(all(&sc.headers, "x-why")[0].contains("'x-small' is 8B"));
    assert!(run_request(json!(["RequestHeaderSize=1KB"]), json!([]), &req).is_ok());
}

#[test]
fn request_size_retry_and_timeouts_are_route_settings() {
    let t = table(json!([{
        "id": "r", "uri": "http://up:9000/ignored/path",
        "filters": [{"name": "RequestSize", "args": {"maxSize": 5000000}}, "Retry=3,BAD_GATEWAY,GET"],
        "metadata": {"response-timeout": 200, "connect-timeout": "150"}
    }, {
        "id": "no-timeout", "uri": "https://secure", "metadata": {"response-timeout": -1}
    }]));
    let r = &t.routes()[0];
    assert_eq!(r.target, RouteTarget::Url { scheme: Scheme::Http, authority: "up:9000".into() });
    assert_eq!(r.max_body, Some(5_000_000));
    assert_eq!(
        (r.response_timeout, r.connect_timeout),
        (Some(Duration::from_millis(200)), Some(Duration::from_millis(150)))
    );
    let retry = r.retry.as_ref().unwrap();
    assert!(retry.retry_on_status(502) && retry.retries == 3);
    let sc = r.check_request_size(Some(6_000_000)).unwrap_err();
    assert_eq!(sc.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        all(&sc.headers, "errormessage"),
        vec!["Request size is larger than permissible limit. Request size is 6.0 MB where permissible limit is 5.0 MB"]
    );
    assert!(r.check_request_size(Some(5_000_000)).is_ok() && r.check_request_size(None).is_ok());
    let r = &t.routes()[1];
    assert!(r.disable_response_timeout && r.response_timeout.is_none());
    assert_eq!(r.target, RouteTarget::Url { scheme: Scheme::Https, authority: "secure:443".into() });
}

#[test]
fn response_header_filters() {
    let mut h = HeaderMap::new();
    h.append("x-upstream", "1".parse().unwrap());
    h.append("x-drop", "1".parse().unwrap());
    h.append("x-response-red", "/42?user=ford&password=omg!what&flag=true".parse().unwrap());
    let status = run_response(
        json!([
            "AddResponseHeader=X-Upstream, 2",
            "AddResponseHeader=X-Upstream, 3, false",
            "AddResponseHeader=X-Fresh, f, false",
            "SetResponseHeader=X-Seg, bar-{segment}",
            "RemoveResponseHeader=X-Drop",
            "RewriteResponseHeader=X-Response-Red, , password=[^&]+, password=***",
            "SetStatus=UNAUTHORIZED"
        ]),
        json!(["Path=/p/{segment}"]),
        &Req::get("/p/7"),
        &mut h,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(all(&h, "x-upstream"), vec!["1", "2"]);
    assert_eq!(all(&h, "x-fresh"), vec!["f"]);
    assert_eq!(all(&h, "x-seg"), vec!["bar-7"]);
    assert!(h.get("x-drop").is_none());
    assert_eq!(all(&h, "x-response-red"), vec!["/42?user=ford&password=***&flag=true"]);
}

#[test]
fn response_filters_run_last_declared_first() {
    // SCG: the rewrite (declared second) sees the upstream value, then Set overwrites it.
    let mut h = HeaderMap::new();
    h.insert("x-a", "up".parse().unwrap());
    run_response(
        json!(["SetResponseHeader=X-A, set", "RewriteResponseHeader=X-A, .*, rewritten"]),
        json!([]),
        &Req::get("/"),
        &mut h,
    );
    assert_eq!(all(&h, "x-a"), vec!["set"]);
    let mut h = HeaderMap::new();
    h.insert("x-a", "up".parse().unwrap());
    run_response(
        json!(["RewriteResponseHeader=X-A, s(et), $1ting", "SetResponseHeader=X-A, set"]),
        json!([]),
        &Req::get("/"),
        &mut h,
    );
    assert_eq!(all(&h, "x-a"), vec!["etting"]);
    let t = table(json!([{"uri": "lb://s", "filters": ["SetStatus=401", "SetStatus=403"]}]));
    let m = t.find(&Req::get("/").view()).unwrap();
    let mut status = StatusCode::OK;
    m.route.apply_response(
        &m,
        &mut status,
        &mut HeaderMap::new(),
        &ResponseInfo { request_host: None, request_path: "/" },
    );
    assert_eq!((status, m.route.set_status), (StatusCode::UNAUTHORIZED, Some(StatusCode::UNAUTHORIZED)));
}

#[test]
fn dedupe_response_header_strategies() {
    let make = || {
        let mut h = HeaderMap::new();
        for v in ["true", "false", "true"] {
            h.append("access-control-allow-credentials", v.parse().unwrap());
        }
        h.append("access-control-allow-origin", "https://musk.mars".parse().unwrap());
        h.append("access-control-allow-origin", "https://musk.mars".parse().unwrap());
        h
    };
    let run = |strategy: &str| {
        let mut h = make();
        let f =
            format!("DedupeResponseHeader=Access-Control-Allow-Credentials Access-Control-Allow-Origin, {strategy}");
        run_response(json!([f]), json!([]), &Req::get("/"), &mut h);
        (all(&h, "access-control-allow-credentials"), all(&h, "access-control-allow-origin"))
    };
    assert_eq!(run("RETAIN_FIRST"), (vec!["true".into()], vec!["https://musk.mars".into()]));
    assert_eq!(run("RETAIN_LAST").0, vec!["true"]);
    assert_eq!(run("RETAIN_UNIQUE").0, vec!["true", "false"]);
    let mut h = make();
    h.remove("access-control-allow-credentials");
    h.append("access-control-allow-credentials", "a".parse().unwrap());
    h.append("access-control-allow-credentials", "b".parse().unwrap());
    run_response(
        json!(["DedupeResponseHeader=Access-Control-Allow-Credentials, RETAIN_LAST"]),
        json!([]),
        &Req::get("/"),
        &mut h,
    );
    assert_eq!(all(&h, "access-control-allow-credentials"), vec!["b"]);
}

#[test]
fn secure_headers_keep_upstream_values() {
    let mut h = HeaderMap::new();
    h.insert("x-frame-options", "SAMEORIGIN".parse().unwrap());
    run_response(json!(["SecureHeaders"]), json!([]), &Req::get("/"), &mut h);
    assert_eq!(all(&h, "x-frame-options"), vec!["SAMEORIGIN"]);
    assert_eq!(all(&h, "x-xss-protection"), vec!["1 ; mode=block"]);
    assert_eq!(all(&h, "strict-transport-security"), vec!["max-age=631138519"]);
    assert_eq!(h.len(), 8);
    let mut h = HeaderMap::new();
    run_response(
        json!([{"name": "SecureHeaders", "args": {"disable": "x-frame-options,strict-transport-security"}}]),
        json!([]),
        &Req::get("/"),
        &mut h,
    );
    assert_eq!(h.len(), 6);
    assert!(h.get("x-frame-options").is_none());
}

#[test]
fn rewrite_location_response_header_modes() {
    let run = |filter: Value, path: &str| {
        let mut h = HeaderMap::new();
        h.insert("location", "https://object-service.prod.example.net/v2/some/object/id".parse().unwrap());
        run_response(json!([filter]), json!([]), &Req::get(path).header("host", "api.example.com:443"), &mut h);
        all(&h, "location")[0].clone()
    };
    let default = json!("RewriteLocationResponseHeader=AS_IN_REQUEST, Location, ,");
    assert_eq!(run(default.clone(), "/some/object/name"), "https://api.example.com:443/some/object/id");
    assert_eq!(run(default, "/v1/some/object/name"), "https://api.example.com:443/v2/some/object/id");
    assert_eq!(
        run(json!("RewriteLocationResponseHeader=ALWAYS_STRIP"), "/v1/x"),
        "https://api.example.com:443/some/object/id"
    );
    assert_eq!(
        run(json!("RewriteLocationResponseHeader=NEVER_STRIP"), "/x"),
        "https://api.example.com:443/v2/some/object/id"
    );
    let host = json!({"name": "RewriteLocationResponseHeader", "args": {"stripVersion": "ALWAYS_STRIP", "hostValue": "example-api.com"}});
    assert_eq!(run(host, "/x"), "https://example-api.com/some/object/id");
    let ftp_only = json!({"name": "RewriteLocationResponseHeader", "args": {"protocols": "ftps?"}});
    assert_eq!(run(ftp_only, "/x"), "https://object-service.prod.example.net/v2/some/object/id");
}

#[test]
fn compile_reports_every_problem_with_its_path() {
    let errs = compile(&routes(json!([
        {"id": "ok", "uri": "lb://a", "predicates": ["Path=/a/**"]},
        {"id": "bad", "uri": "lb://b", "predicates": ["Pathh=/b"], "filters": ["StripPrefixx=1", "SetPath=/{nope}"]},
        {"id": "bad2", "uri": "mailto:x", "predicates": ["Path=/c/{x}/**/d"], "filters": [r"RewritePath=(?<=a)b, c"]}
    ])))
    .unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(text.contains(&r#"routes[1].predicates[0]: unknown predicate "Pathh""#.to_string()), "{text:?}");
    assert!(text.contains(&r#"routes[1].filters[0]: unknown filter "StripPrefixx""#.to_string()), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("routes[1].filters[1]: filter \"SetPath\" uses {nope}")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("routes[2].uri: ")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("routes[2].predicates[0]: predicate \"Path\": ")), "{text:?}");
    assert!(
        text.iter()
            .any(|t| t.starts_with("routes[2].filters[0]: filter \"RewritePath\": ") && t.contains("look-around")),
        "{text:?}"
    );
    assert_eq!(errs.len(), 6, "{text:?}");
}

#[test]
fn template_variables_expand_in_header_values() {
    let req = Req::get("/red/x%20y");
    let rr = run_request(
        json!(["AddRequestHeader=X-Seg, seg-{segment}", "SetPath=/{segment}"]),
        json!(["Path=/red/{segment}"]),
        &req,
    )
    .unwrap();
    assert_eq!(all(&rr.headers, "x-seg"), vec!["seg-x y"]);
    assert_eq!(rr.path, "/x%20y");
}

#[test]
fn explain_names_the_failing_predicate_of_each_earlier_route() {
    let t = table(json!([
        {"id": "canary", "uri": "http://canary:8080", "order": 0,
         "predicates": ["Path=/api/users/{id}", "Header=X-Env,canary"]},
        {"id": "admin", "uri": "http://admin:8080", "order": 1, "predicates": ["Path=/admin/**"]},
        {"id": "users", "uri": "lb://users", "order": 2, "predicates": ["Path=/api/**", "Method=GET"]},
        {"id": "late", "uri": "http://late:8080", "order": 3, "predicates": ["Path=/api/**"]},
    ]));
    let req = Req::get("/api/users/42").header("x-env", "stable");
    let e = t.explain_at(&req.view(), Utc::now(), &mut || 0.0);
    assert_eq!(e.matched.as_ref().map(|m| m.id.as_str()), winner(&t, &req).as_deref());
    assert_eq!(e.matched.as_ref().unwrap().id, "users");
    let seen: Vec<(&str, bool, bool)> = e.routes.iter().map(|r| (r.id.as_str(), r.candidate, r.matched)).collect();
    // "late" comes after the winner and is never looked at.
    assert_eq!(seen, [("canary", true, false), ("users", true, true), ("admin", false, false)]);
    let f = e.routes[0].failed.as_ref().unwrap();
    assert_eq!((f.index, f.text.as_str(), f.actual.as_deref()), (1, "Header=X-Env,canary", Some("stable")));
    let f = e.routes[2].failed.as_ref().unwrap();
    assert_eq!((f.text.as_str(), f.actual.as_deref()), ("Path=/admin/**", Some("/api/users/42")));
    assert_eq!(e.routes[1].uri, "lb://users");

    let post = Req { method: http::Method::POST, ..Req::get("/nothing") };
    let e = t.explain_at(&post.view(), Utc::now(), &mut || 0.0);
    assert!(e.matched.is_none());
    assert_eq!(e.routes.len(), 4, "a 404 accounts for every route");
    assert!(e.routes.iter().all(|r| !r.matched && r.failed.as_ref().is_some_and(|f| f.text.starts_with("Path="))));
}

//! The file source against real files: the three forms, directories, and error reporting.

use std::fs;
use std::path::Path;

use serde_json::json;
use tigateway_model::Config;
use tigateway_sync::{load_dir, load_file, load_path, parse_config, parse_config_with_env, LoadError};

/// `application.yml` of the ConfigMap example in the design notes, verbatim.
const SEED_APPLICATION_YML: &str = "\
spring:
  cloud:
    gateway:
      routes:
        - id: user-service
          uri: lb://user-service
          predicates:
            - Path=/api/users/**
          filters:
            - StripPrefix=2
";

/// `routes.json` of the same example, verbatim.
const SEED_ROUTES_JSON: &str = r#"[
  {
    "id": "user-service",
    "uri": "lb://user-service",
    "predicates": [{"name": "Path", "args": {"pattern": "/api/users/**"}}],
    "filters": [{"name": "StripPrefix", "args": {"parts": 2}}]
  }
]"#;

const DISCOVERY: &str = "\
spring:
  cloud:
    discovery:
      client:
        simple:
          instances:
            user-service:
              - uri: http://127.0.0.1:8081
              - uri: http://127.0.0.1:8082
                metadata:
                  weight: 3
                  zone: b
";

/// The seed's `application.yml` with the discovery block under the same `spring.cloud`, as a user
/// would add it.
fn seed_with_discovery() -> String {
    format!("{SEED_APPLICATION_YML}{}", DISCOVERY.strip_prefix("spring:\n  cloud:\n").unwrap())
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn lines(e: &LoadError) -> Vec<String> {
    e.to_string().lines().map(str::to_string).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn native_yaml_and_json_give_the_same_config() {
    let yaml = "\
server:
  listeners:
    - address: 127.0.0.1:9195
services:
  users:
    - url: http://127.0.0.1:8081
      weight: 2
routes:
  - id: users
    uri: lb://users
    order: 1
    predicates: [Path=/api/users/**]
    filters: [StripPrefix=2]
";
    let json = json!({
        "server": {"listeners": [{"address": "127.0.0.1:9195"}]},
        "services": {"users": [{"url": "http://127.0.0.1:8081", "weight": 2}]},
        "routes": [{"id": "users", "uri": "lb://users", "order": 1, "predicates": ["Path=/api/users/**"], "filters": ["StripPrefix=2"]}]
    })
    .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let from_yaml = load_file(&write(tmp.path(), "gw.yaml", yaml)).unwrap();
    let from_json = load_file(&write(tmp.path(), "gw.json", &json)).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(from_yaml.server.listeners[0].address, "127.0.0.1:9195");
    assert_eq!(from_yaml.services["users"][0].weight, 2);
    assert_eq!(from_yaml.routes[0].id, "users");
    assert_eq!(from_yaml.routes[0].predicates[0].positional(), vec!["/api/users/**"]);
    // Native routes keep the ids they have; only converted forms make ids up.
    let no_id = parse_config("routes: [{uri: 'http://127.0.0.1:1'}]", "n.yaml").unwrap();
    assert_eq!(no_id.routes[0].id, "");
}

#[test]
fn typo_in_native_yaml_names_key_path_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p =
        write(tmp.path(), "gw.yaml", "routes:\n  - id: a\n    uri: http://127.0.0.1:1\n    predicatez: [Path=/a]\n");
    let e = load_file(&p).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    let err = &e.errors[0];
    assert_eq!(err.file, p.display().to_string());
    assert_eq!(err.path, "routes[0].predicatez");
    assert_eq!(err.location, Some((4, 5)));
    assert!(err.message.contains("unknown field `predicatez`"), "{e}");
    assert_eq!(lines(&e), vec![format!("{}: routes[0].predicatez: {} at line 4 column 5", p.display(), err.message)]);

    let e = parse_config("serverr:\n  listeners: []\n", "top.yaml").unwrap_err();
    assert_eq!(e.errors[0].path, "serverr");
    assert!(e.to_string().starts_with("top.yaml: serverr: unknown field `serverr`"), "{e}");
}

#[test]
fn typo_in_native_json_names_key_path_and_line() {
    let e = parse_config(
        "{\"services\": {},\n \"routes\": [{\"uri\": \"http://127.0.0.1:1\",\n   \"filterz\": []}]}",
        "gw.json",
    )
    .unwrap_err();
    assert_eq!(e.errors[0].path, "routes[0].filterz");
    assert_eq!(e.errors[0].location.map(|l| l.0), Some(3));
    assert!(e.errors[0].message.contains("unknown field `filterz`"), "{e}");
}

#[test]
fn syntax_errors_carry_their_position() {
    let e = parse_config("routes:\n  - id: a\n   uri: [\n", "broken.yaml").unwrap_err();
    assert!(e.errors[0].location.is_some(), "{e:?}");
    let e = parse_config("[{\"id\": \"a\",}]", "routes.json").unwrap_err();
    assert_eq!(e.errors[0].location.map(|l| l.0), Some(1), "{e:?}");
    assert!(e.to_string().starts_with("routes.json: "), "{e}");
}

#[test]
fn seed_application_yml_with_simple_discovery() {
    let cfg = parse_config_with_env(&seed_with_discovery(), "application.yml", &no_env).unwrap();
    assert_eq!(cfg.routes.len(), 1);
    let r = &cfg.routes[0];
    assert_eq!(r.id, "user-service");
    assert_eq!(r.uri, "lb://user-service");
    assert_eq!(r.predicates[0].name, "Path");
    assert_eq!(r.predicates[0].args["_genkey_0"], "/api/users/**");
    assert_eq!(r.filters[0].name, "StripPrefix");
    assert_eq!(r.filters[0].positional(), vec!["2"]);
    let svc = &cfg.services["user-service"];
    assert_eq!(svc.len(), 2);
    assert_eq!(svc[0].url, "http://127.0.0.1:8081");
    assert_eq!(svc[0].weight, 1);
    assert_eq!(svc[1].weight, 3);
    assert_eq!(svc[1].metadata["zone"], "b");
    assert!(cfg.server.listeners.is_empty(), "no server.port, no listener");
}

#[test]
fn seed_application_yml_and_routes_json_load_on_their_own() {
    // Whether `lb://user-service` has instances is for discovery to say, not for the file.
    let from_yml = parse_config_with_env(SEED_APPLICATION_YML, "application.yml", &no_env).unwrap();
    assert_eq!(from_yml.routes[0].id, "user-service");
    assert!(from_yml.services.is_empty());

    let from_json = parse_config(SEED_ROUTES_JSON, "routes.json").unwrap();
    let r = &from_json.routes[0];
    assert_eq!(r.id, "user-service");
    assert_eq!(r.uri, "lb://user-service");
    assert_eq!(r.predicates[0].name, "Path");
    assert_eq!(r.predicates[0].args["pattern"], "/api/users/**");
    assert_eq!(r.filters[0].name, "StripPrefix");
    assert_eq!(r.filters[0].args["parts"], 2);
    // The same list as YAML is the same routes.
    let yaml = "- id: user-service\n  uri: lb://user-service\n  predicates: [{name: Path, args: {pattern: /api/users/**}}]\n  filters: [{name: StripPrefix, args: {parts: 2}}]\n";
    assert_eq!(parse_config(yaml, "routes.yaml").unwrap(), from_json);
}

#[test]
fn route_validation_errors_point_into_application_yml() {
    let text = "\
spring:
  cloud:
    gateway:
      default-filters:
        - NoSuchFilter=1
        - StripPrefix=1
      routes:
        - id: a
          uri: http://127.0.0.1:1
        - id: b
          uri: not-a-uri
          predicates: [Path=/b/**]
          filters: [AlsoNoSuchFilter]
";
    let e = parse_config_with_env(text, "application.yml", &no_env).unwrap_err();
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spring.cloud.gateway.default-filters[0]",
            "spring.cloud.gateway.routes[1].uri",
            "spring.cloud.gateway.routes[1].filters[0]"
        ],
        "{e}"
    );
}

#[test]
fn both_spellings_of_scg_keys_and_default_filters() {
    let text = "\
spring:
  cloud:
    gateway:
      default-filters:
        - AddResponseHeader=X-Old, 1
      routes:
        - id: old
          uri: http://127.0.0.1:1
          predicates: [Path=/old/**]
          filters: [StripPrefix=1]
      server:
        webflux:
          defaultFilters:
            - name: AddRequestHeader
              args: {name: X-New, value: '2'}
          routes:
            - id: new
              uri: http://127.0.0.1:2
              predicates: [Path=/new/**]
";
    let cfg = parse_config_with_env(text, "application.yml", &no_env).unwrap();
    let ids: Vec<&str> = cfg.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["old", "new"]);
    let names = |i: usize| cfg.routes[i].filters.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(0), vec!["AddResponseHeader", "AddRequestHeader", "StripPrefix"]);
    assert_eq!(names(1), vec!["AddResponseHeader", "AddRequestHeader"]);
    assert_eq!(cfg.routes[0].filters[0].positional(), vec!["X-Old", "1"]);
}

#[test]
fn dotted_keys_and_ignored_spring_settings() {
    let text = "\
management.endpoints.web.exposure.include: '*'
logging:
  level:
    root: INFO
eureka:
  client:
    enabled: false
spring.application.name: gw
spring.cloud.gateway.routes:
  - id: a
    uri: http://127.0.0.1:1
    predicates: [Path=/a/**]
spring.cloud.gateway.globalcors.add-to-simple-url-handler-mapping: true
";
    let cfg = parse_config_with_env(text, "application.yml", &no_env).unwrap();
    assert_eq!(cfg.routes.len(), 1);
    assert_eq!(cfg.routes[0].id, "a");
}

#[test]
fn unknown_key_inside_a_spring_route_is_an_error_with_its_path() {
    let text = "\
spring:
  cloud:
    gateway:
      routes:
        - id: a
          uri: http://127.0.0.1:1
          predicatez: [Path=/a/**]
      server:
        webflux:
          routes:
            - id: b
              uri: http://127.0.0.1:1
              filtres: []
";
    let e = parse_config_with_env(text, "application.yml", &no_env).unwrap_err();
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["spring.cloud.gateway.routes[0].predicatez", "spring.cloud.gateway.server.webflux.routes[0].filtres"],
        "{e}"
    );
    assert!(e.errors[0].message.contains("\"predicatez\""), "{e}");
}

#[test]
fn missing_route_ids_are_made_up_from_positions() {
    let text = "\
spring.cloud.gateway.routes:
  - uri: http://127.0.0.1:1
    predicates: [Path=/a/**]
  - id: route-1
    uri: http://127.0.0.1:1
  - uri: http://127.0.0.1:1
";
    let cfg = parse_config_with_env(text, "application.yml", &no_env).unwrap();
    let ids: Vec<&str> = cfg.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["route-0", "route-1", "route-2"]);
}

#[test]
fn multi_document_file_skips_profile_documents_and_later_keys_win() {
    let text = "\
server:
  port: 8080
spring:
  profiles:
    active: prod
  cloud.gateway.routes:
    - id: base
      uri: http://127.0.0.1:1
---
spring:
  config:
    activate:
      on-profile: dev
  cloud.gateway.routes:
    - id: dev-only
      uri: http://127.0.0.1:2
server.port: 1111
---
spring:
  profiles: legacy-dev
server.port: 2222
---
server:
  port: 9090
";
    let cfg = parse_config_with_env(text, "application.yml", &no_env).unwrap();
    let ids: Vec<&str> = cfg.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["base"]);
    assert_eq!(cfg.server.listeners.len(), 1);
    assert_eq!(cfg.server.listeners[0].address, "0.0.0.0:9090");
}

#[test]
fn placeholders_in_spring_values() {
    let text = "\
server:
  port: ${GW_PORT:8080}
spring:
  cloud:
    gateway:
      routes:
        - id: users
          uri: lb://users
          order: ${USERS_ORDER:5}
          predicates:
            - Path=${USERS_PREFIX}/**
    discovery.client.simple.instances.users:
      - uri: http://${USERS_HOST}:${USERS_PORT:8081}
";
    let env = |k: &str| match k {
        "USERS_PREFIX" => Some("/api/users".to_string()),
        "USERS_HOST" => Some("10.0.0.7".to_string()),
        _ => None,
    };
    let cfg = parse_config_with_env(text, "application.yml", &env).unwrap();
    assert_eq!(cfg.server.listeners[0].address, "0.0.0.0:8080");
    assert_eq!(cfg.routes[0].order, 5);
    assert_eq!(cfg.routes[0].predicates[0].positional(), vec!["/api/users/**"]);
    assert_eq!(cfg.services["users"][0].url, "http://10.0.0.7:8081");

    let e = parse_config_with_env(text, "application.yml", &no_env).unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.errors.len(), 2, "{shown}");
    assert!(shown.contains("application.yml: spring.cloud.gateway.routes[0].predicates[0]: could not resolve placeholder ${USERS_PREFIX}"), "{shown}");
    assert!(
        shown.contains(
            "spring.cloud.discovery.client.simple.instances.users[0].uri: could not resolve placeholder ${USERS_HOST}"
        ),
        "{shown}"
    );
}

#[test]
fn placeholders_use_the_process_environment() {
    // Read, never set: changing the environment races with other test threads.
    let path = std::env::var("PATH").expect("PATH is set");
    let text = "spring.cloud.gateway.routes:\n  - id: r\n    uri: http://127.0.0.1:1\n    metadata:\n      seen: ${PATH}\n      other: ${TIGATEWAY_TEST_SURELY_UNSET:dflt}\n";
    let cfg = parse_config(text, "application.yml").unwrap();
    assert_eq!(cfg.routes[0].metadata["seen"], json!(path));
    assert_eq!(cfg.routes[0].metadata["other"], "dflt");
    let e = parse_config("server.port: ${TIGATEWAY_TEST_SURELY_UNSET}\n", "application.yml").unwrap_err();
    assert_eq!(e.errors[0].path, "server.port");
    assert!(e.errors[0].message.contains("TIGATEWAY_TEST_SURELY_UNSET"), "{e}");
}

#[test]
fn errors_in_instances_point_at_the_spring_keys() {
    let text = "\
spring.cloud.discovery.client.simple.instances:
  users:
    - uri: http://127.0.0.1:8081/with/path
    - uri: http://127.0.0.1:8082
      metadata: {weight: heavy}
    - host: 127.0.0.1
      port: 8083
      secure: true
    - uri: http://127.0.0.1:8084
      zone: b
";
    let e = parse_config_with_env(text, "application.yml", &no_env).unwrap_err();
    let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spring.cloud.discovery.client.simple.instances.users[1].metadata.weight",
            "spring.cloud.discovery.client.simple.instances.users[3].zone"
        ],
        "{e}"
    );
    let fixed = text.replace("{weight: heavy}", "{weight: 2}").replace("      zone: b\n", "");
    let e = parse_config_with_env(&fixed, "application.yml", &no_env).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].path, "spring.cloud.discovery.client.simple.instances.users[0].uri", "{e}");
    let ok = fixed.replace("/with/path", "");
    let cfg = parse_config_with_env(&ok, "application.yml", &no_env).unwrap();
    assert_eq!(cfg.services["users"][2].url, "https://127.0.0.1:8083");
    assert_eq!(cfg.services["users"][1].weight, 2);
}

#[test]
fn server_port_becomes_the_listener_and_bad_ports_are_refused() {
    let cfg = parse_config_with_env("server:\n  port: 8085\n", "application.yml", &no_env).unwrap();
    assert_eq!(cfg.server.listeners[0].address, "0.0.0.0:8085");
    assert!(cfg.server.listeners[0].http2);
    let cfg = parse_config_with_env("server: {port: 8085, address: '::1'}\n", "application.yml", &no_env).unwrap();
    assert_eq!(cfg.server.listeners[0].address, "[::1]:8085");
    let e = parse_config_with_env("server.port: 70000\n", "application.yml", &no_env).unwrap_err();
    assert_eq!(e.errors[0].path, "server.port");
    let e = parse_config_with_env("server: {port: 1, address: not-an-ip}\n", "application.yml", &no_env).unwrap_err();
    assert_eq!(e.errors[0].path, "server.address", "{e}");
}

#[test]
fn several_documents_outside_spring_are_refused() {
    let e = parse_config("routes: []\n---\nservices: {}\n", "gw.yaml").unwrap_err();
    assert!(e.to_string().contains("several YAML documents"), "{e}");
}

#[test]
fn every_validation_error_is_reported_on_its_own_line() {
    let text = "\
server:
  listeners: [{address: nowhere}]
services:
  a: [{url: 'ftp://127.0.0.1:1'}]
routes:
  - {id: r, uri: 'nowhere'}
";
    let e = parse_config(text, "gw.yaml").unwrap_err();
    let shown = lines(&e);
    assert_eq!(shown.len(), 3, "{e}");
    assert!(shown.iter().any(|l| l.starts_with("gw.yaml: server.listeners[0].address: ")), "{e}");
    assert!(shown.iter().any(|l| l.starts_with("gw.yaml: services.a[0].url: ")), "{e}");
    assert!(shown.iter().any(|l| l.starts_with("gw.yaml: routes[0].uri: ")), "{e}");
}

#[test]
fn directory_like_a_mounted_configmap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "application.yml", &format!("server:\n  port: 9000\n{DISCOVERY}"));
    write(dir, "routes.json", SEED_ROUTES_JSON);
    write(
        dir,
        "extra.yaml",
        "routes:\n  - id: health\n    uri: http://127.0.0.1:9999\n    predicates: [Path=/health]\nplugins:\n  - {name: divide, enabled: true}\n",
    );
    write(dir, "application-dev.yml", "this is: [not even valid");
    write(dir, ".hidden.yaml", "also: [broken");
    write(dir, "README.txt", "ignored");
    write(dir, "listeners.yaml", "server:\n  listeners: [{address: '127.0.0.1:9001'}]\n");
    let cfg = load_dir(dir).unwrap();
    let ids: Vec<&str> = cfg.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["user-service", "health"]);
    assert_eq!(cfg.services["user-service"].len(), 2);
    let listeners: Vec<&str> = cfg.server.listeners.iter().map(|l| l.address.as_str()).collect();
    assert_eq!(listeners, vec!["0.0.0.0:9000", "127.0.0.1:9001"]);
    assert_eq!(cfg.plugins.len(), 1);
    assert_eq!(load_path(dir).unwrap(), cfg);
}

#[test]
fn seed_configmap_defines_the_route_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "application.yml", &seed_with_discovery());
    write(dir, "routes.json", SEED_ROUTES_JSON);
    let e = load_dir(dir).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    let err = &e.errors[0];
    assert_eq!(err.file, dir.join("routes.json").display().to_string());
    assert_eq!(err.path, "[0].id");
    assert!(
        err.message.contains(&format!("{}: spring.cloud.gateway.routes[0]", dir.join("application.yml").display())),
        "{e}"
    );
}

#[test]
fn server_settings_come_from_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "a.yaml", "server:\n  trustedProxies: [10.0.0.0/8]\n");
    write(dir, "b.yaml", "server:\n  shutdownTimeoutMs: 5\n  listeners: [{address: '127.0.0.1:1'}]\n");
    let e = load_dir(dir).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(e.errors[0].file.ends_with("b.yaml") && e.errors[0].path == "server", "{e}");
    assert!(e.errors[0].message.contains("a.yaml"), "{e}");
    fs::remove_file(dir.join("a.yaml")).unwrap();
    let cfg = load_dir(dir).unwrap();
    assert_eq!(cfg.server.shutdown_timeout_ms, 5);
    assert_eq!(cfg.server.listeners.len(), 1);
}

#[test]
fn made_up_ids_use_positions_in_the_merged_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "application.yml", "spring.cloud.gateway.routes:\n  - uri: http://127.0.0.1:1\n");
    write(dir, "routes.json", r#"[{"uri": "http://127.0.0.1:2"}]"#);
    let cfg = load_dir(dir).unwrap();
    let ids: Vec<&str> = cfg.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["route-0", "route-1"]);
}

#[test]
fn errors_from_several_files_of_a_directory_come_together() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "application.yml", "spring.cloud.gateway.routes:\n  - id: a\n    uri: nowhere\n");
    write(dir, "a.yaml", "services:\n  s: [{url: 'http://127.0.0.1:1/x'}]\n");
    write(dir, "b.yaml", "services:\n  s: [{url: 'http://127.0.0.1:2'}]\n");
    let e = load_dir(dir).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("application.yml: spring.cloud.gateway.routes[0].uri: "), "{shown}");
    assert!(shown.contains("a.yaml: services.s[0].url: "), "{shown}");
    assert!(shown.contains("b.yaml: services.s: service \"s\" is also defined in"), "{shown}");
    assert_eq!(e.errors.len(), 3, "{shown}");
}

#[test]
fn the_file_name_selects_spring_only_when_the_content_does_not() {
    let only_port = parse_config_with_env("server:\n  port: 8080\n", "application.yml", &no_env).unwrap();
    assert_eq!(only_port.server.listeners[0].address, "0.0.0.0:8080");
    let native = "server:\n  listeners: [{address: '127.0.0.1:1'}]\nroutes: [{id: a, uri: 'http://127.0.0.1:2'}]\n";
    let cfg = parse_config_with_env(native, "/etc/gw/application.yml", &no_env).unwrap();
    assert_eq!(cfg.routes[0].id, "a");
    assert_eq!(cfg.server.listeners[0].address, "127.0.0.1:1");
    // A Spring document found under any name.
    let cfg = parse_config_with_env(
        "spring.cloud.gateway.routes: [{id: s, uri: 'http://127.0.0.1:1'}]\n",
        "gw.yaml",
        &no_env,
    )
    .unwrap();
    assert_eq!(cfg.routes[0].id, "s");
}

#[test]
fn missing_things_are_reported_not_panicked_on() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_file(&tmp.path().join("nope.yaml")).unwrap_err();
    assert!(e.to_string().contains("nope.yaml: cannot read"), "{e}");
    let e = load_dir(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("no config files"), "{e}");
    assert_eq!(parse_config("", "empty.yaml").unwrap(), Config::default());
}

//! The store suite, run unchanged against SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! SQLite uses a temp file per test. PostgreSQL and MySQL get a fresh database per test
//! (`tigw_test_<random>`, created through `TIGATEWAY_TEST_PG_URL` / `TIGATEWAY_TEST_MYSQL_URL` and
//! dropped afterwards), so tests run in parallel without seeing each other. Without the variable a
//! test is skipped with a note, unless `CI` is set: a missing database in CI is a failure.

#[macro_use]
mod common;
use common::{run, with_database, Target};

use tigateway_admin::store::{Change, EntityKind, Item, ListQuery, Store, StoreError, SYSTEM_ACTOR};
use tigateway_model::{
    AppAuth, AuthPath, ChangeKind, Condition, Config, Definition, MetaData, Plugin, RouteDefinition, Rule, Selector,
    BUILTIN_PLUGINS,
};

suite!(
    seeds_builtin_plugins,
    plugin_crud,
    selector_and_rule_crud,
    metadata_crud,
    app_auth_crud,
    route_crud,
    paging_and_filtering,
    invalid_writes_change_nothing,
    stale_versions_conflict,
    batch_is_all_or_nothing,
    export_wipe_import_roundtrip,
    revisions_diffs_and_rollback,
    audit_records_actor_and_before_after,
    closed_store_is_unavailable,
    reopen_keeps_data_and_does_not_reseed,
);

const ACTOR: &str = "alice";

fn selector(id: &str, plugin: &str) -> Selector {
    Selector {
        id: id.into(),
        plugin_name: plugin.into(),
        name: format!("sel-{id}"),
        selector_type: 1,
        enabled: true,
        continued: true,
        condition_list: vec![Condition::new("uri", "match", None, "/api/**")],
        ..Default::default()
    }
}

fn rule(id: &str, selector_id: &str, plugin: &str) -> Rule {
    Rule {
        id: id.into(),
        name: format!("rule-{id}"),
        plugin_name: plugin.into(),
        selector_id: selector_id.into(),
        enabled: true,
        condition_data_list: vec![Condition::new("uri", "match", None, "/api/users/**")],
        ..Default::default()
    }
}

fn route(id: &str, order: i64) -> RouteDefinition {
    RouteDefinition {
        id: id.into(),
        uri: "http://127.0.0.1:8080".into(),
        order,
        predicates: vec![Definition::parse_shortcut("Path=/r/**").unwrap()],
        filters: vec![Definition::parse_shortcut("StripPrefix=1").unwrap()],
        ..Default::default()
    }
}

async fn audit_count(s: &Store) -> i64 {
    s.audit(1, 1, None).await.unwrap().total
}

async fn seeds_builtin_plugins(s: Store, _url: String) {
    let cfg = s.load_config().await.unwrap();
    let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
    let expected: Vec<&str> = BUILTIN_PLUGINS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected);
    let divide = s.get::<Plugin>("divide").await.unwrap();
    assert_eq!(divide.version, 1);
    assert_eq!(divide.value.sort, Some(200));
    assert!(divide.value.enabled, "implemented plugins start enabled");
    assert!(!s.get::<Plugin>("waf").await.unwrap().value.enabled, "unimplemented plugins start disabled");
    assert_eq!(s.current_revision().await.unwrap(), 1);
    let rev = s.revisions(1, 10).await.unwrap();
    assert_eq!(rev.total, 1);
    assert_eq!(rev.items[0].actor, SYSTEM_ACTOR);
    assert_eq!(rev.items[0].operation, "seed");
}

async fn plugin_crud(s: Store, _url: String) {
    let mut p = s.get::<Plugin>("rewrite").await.unwrap();
    p.value.config = Some(r#"{"x":1}"#.into());
    p.value.enabled = false;
    let updated = s.update("rewrite", p.version, p.value.clone(), ACTOR).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.value.config.as_deref(), Some(r#"{"x":1}"#));
    assert!(!updated.value.enabled);
    let gone = s.delete::<Plugin>("rewrite", 2, ACTOR).await.unwrap();
    assert_eq!(gone.changes.len(), 1);
    assert!(matches!(s.get::<Plugin>("rewrite").await, Err(StoreError::NotFound { kind: EntityKind::Plugin, .. })));
    let again = s
        .create(Plugin { name: "rewrite".into(), sort: Some(91), enabled: true, ..Default::default() }, ACTOR)
        .await
        .unwrap();
    assert_eq!(again.version, 1);
    assert!(!again.value.id.is_empty(), "an id is generated");
    let cfg = s.load_config().await.unwrap();
    assert_eq!(cfg.plugins.iter().find(|p| p.name == "rewrite").unwrap().sort, Some(91));
}

async fn selector_and_rule_crud(s: Store, _url: String) {
    let sel = s.create(selector("s1", "divide"), ACTOR).await.unwrap();
    assert_eq!(sel.version, 1);
    assert_eq!(sel.value.condition_list.len(), 1);
    let r = s.create(rule("r1", "s1", "divide"), ACTOR).await.unwrap();
    assert_eq!(r.value.selector_id, "s1");
    assert_eq!(s.get::<Rule>("r1").await.unwrap().value, r.value);

    let mut changed = sel.value.clone();
    changed.condition_list.push(Condition::new("header", "=", Some("X-Env"), "blue"));
    changed.name = "users".into();
    let sel2 = s.update("s1", 1, changed.clone(), ACTOR).await.unwrap();
    assert_eq!(sel2.version, 2);
    assert_eq!(sel2.value.condition_list, changed.condition_list);

    let cfg = s.load_config().await.unwrap();
    assert_eq!(cfg.selectors, vec![changed]);
    assert_eq!(cfg.rules, vec![r.value.clone()]);

    // The selector still has a rule: deleting it would leave the rule dangling.
    assert!(matches!(s.delete::<Selector>("s1", 2, ACTOR).await, Err(StoreError::Invalid(_))));
    s.delete::<Rule>("r1", 1, ACTOR).await.unwrap();
    s.delete::<Selector>("s1", 2, ACTOR).await.unwrap();
    let cfg = s.load_config().await.unwrap();
    assert!(cfg.selectors.is_empty() && cfg.rules.is_empty());
    assert!(matches!(s.create(selector("s1", "divide"), ACTOR).await, Ok(v) if v.version == 1));
    assert!(matches!(
        s.create(selector("s1", "divide"), ACTOR).await,
        Err(StoreError::AlreadyExists { kind: EntityKind::Selector, .. })
    ));
}

async fn metadata_crud(s: Store, _url: String) {
    let m = MetaData {
        app_name: "orders".into(),
        path: "/orders/find".into(),
        rpc_type: "dubbo".into(),
        service_name: Some("com.example.OrderService".into()),
        method_name: Some("find".into()),
        enabled: true,
        ..Default::default()
    };
    let created = s.create(m.clone(), ACTOR).await.unwrap();
    let id = created.value.id.clone();
    assert!(!id.is_empty());
    let mut m2 = created.value.clone();
    m2.method_name = Some("findAll".into());
    assert_eq!(s.update(&id, 1, m2.clone(), ACTOR).await.unwrap().value, m2);
    assert_eq!(s.load_config().await.unwrap().metadata, vec![m2]);
    // Another mapping of the same path would make the sync diff ambiguous.
    let dup = s.create(m, ACTOR).await;
    assert!(matches!(dup, Err(StoreError::Invalid(ref e)) if e.to_string().contains("duplicate path")), "{dup:?}");
    s.delete::<MetaData>(&id, 2, ACTOR).await.unwrap();
    assert!(s.load_config().await.unwrap().metadata.is_empty());
}

async fn app_auth_crud(s: Store, _url: String) {
    let a = AppAuth {
        app_key: "key-1".into(),
        app_secret: "secret".into(),
        enabled: true,
        open: true,
        path_data_list: vec![
            AuthPath { app_name: "orders".into(), path: "/orders/**".into(), enabled: true },
            AuthPath { app_name: "users".into(), path: "/users/**".into(), enabled: false },
        ],
        ..Default::default()
    };
    let created = s.create(a, ACTOR).await.unwrap();
    let id = created.value.id.clone().unwrap();
    assert_eq!(created.value.path_data_list.len(), 2);
    let mut a2 = created.value.clone();
    a2.path_data_list.pop();
    let updated = s.update(&id, 1, a2.clone(), ACTOR).await.unwrap();
    assert_eq!(updated.value.path_data_list, a2.path_data_list);
    assert_eq!(s.load_config().await.unwrap().app_auth, vec![a2]);
    s.delete::<AppAuth>(&id, 2, ACTOR).await.unwrap();
    assert!(matches!(s.get::<AppAuth>(&id).await, Err(StoreError::NotFound { .. })));
}

async fn route_crud(s: Store, _url: String) {
    let mut with_version = route("users", 1);
    with_version.version = Some(99);
    let created = s.create(with_version, ACTOR).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.value.version, None, "the row's version is the only one kept");
    s.create(route("orders", 0), ACTOR).await.unwrap();
    let mut r = created.value.clone();
    r.uri = "http://127.0.0.1:9090".into();
    s.update("users", 1, r.clone(), ACTOR).await.unwrap();
    let cfg = s.load_config().await.unwrap();
    let ids: Vec<&str> = cfg.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["users", "orders"], "document order is kept");
    assert_eq!(cfg.routes[0].uri, "http://127.0.0.1:9090");
    s.delete::<RouteDefinition>("orders", 1, ACTOR).await.unwrap();
    assert_eq!(s.load_config().await.unwrap().routes.len(), 1);
}

async fn paging_and_filtering(s: Store, _url: String) {
    for i in 0..7 {
        s.create(selector(&format!("d{i}"), "divide"), ACTOR).await.unwrap();
    }
    for i in 0..3 {
        let mut sel = selector(&format!("w{i}"), "websocket");
        sel.name = format!("Chat_{i}");
        s.create(sel, ACTOR).await.unwrap();
    }
    let q = |page, page_size| ListQuery { page, page_size, ..Default::default() };
    let p1 = s.list::<Selector>(&q(1, 4)).await.unwrap();
    assert_eq!(p1.total, 10);
    let ids: Vec<String> = p1.items.iter().map(|i| i.value.id.clone()).collect();
    assert_eq!(ids, vec!["d0", "d1", "d2", "d3"]);
    let p3 = s.list::<Selector>(&q(3, 4)).await.unwrap();
    assert_eq!(p3.items.len(), 2);
    assert_eq!(p3.items[1].value.id, "w2");
    assert!(s.list::<Selector>(&q(4, 4)).await.unwrap().items.is_empty());

    let by_plugin = s
        .list::<Selector>(&ListQuery { plugin_name: Some("SOCK".into()), page_size: 100, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_plugin.total, 3, "case-insensitive substring");
    let by_name = s.list::<Selector>(&ListQuery { name: Some("chat_1".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_name.total, 1);
    assert_eq!(by_name.items[0].value.id, "w1");
    // `_` is a LIKE wildcard; it must match itself only.
    let literal = s.list::<Selector>(&ListQuery { name: Some("sel_d".into()), ..Default::default() }).await.unwrap();
    assert_eq!(literal.total, 0);

    s.create(rule("r1", "d0", "divide"), ACTOR).await.unwrap();
    s.create(rule("r2", "d1", "divide"), ACTOR).await.unwrap();
    let rules = s.list::<Rule>(&ListQuery { selector_id: Some("d1".into()), ..Default::default() }).await.unwrap();
    assert_eq!(rules.items.iter().map(|r| r.value.id.as_str()).collect::<Vec<_>>(), vec!["r2"]);

    let plugins = s.list::<Plugin>(&ListQuery { page_size: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(plugins.total as usize, BUILTIN_PLUGINS.len());
}

async fn invalid_writes_change_nothing(s: Store, _url: String) {
    s.create(selector("div", "divide"), ACTOR).await.unwrap();
    let before_cfg = s.load_config().await.unwrap();
    let before_rev = s.current_revision().await.unwrap();
    let before_audit = audit_count(&s).await;

    let mut other_plugin = rule("r1", "div", "rewrite");
    other_plugin.handle = Some(r#"{"regex":"a","replace":"b"}"#.into());
    let e = s.create(other_plugin, ACTOR).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(v) if v.to_string().contains("rules[0].pluginName")), "{e}");

    let e = s.create(rule("r2", "nope", "divide"), ACTOR).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(v) if v.to_string().contains("no selector with id \"nope\"")), "{e}");

    let mut bad_regex = selector("s-re", "divide");
    bad_regex.condition_list = vec![Condition::new("uri", "regex", None, "(/a")];
    let e = s.create(bad_regex, ACTOR).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(v) if v.to_string().contains("bad regex")), "{e}");

    let e = s.create(selector("s-x", "nosuch"), ACTOR).await.unwrap_err();
    assert!(matches!(&e, StoreError::Invalid(v) if v.to_string().contains("unknown plugin")), "{e}");

    let mut bad_update = selector("div", "divide");
    bad_update.match_mode = 7;
    assert!(matches!(s.update("div", 1, bad_update, ACTOR).await, Err(StoreError::Invalid(_))));

    assert_eq!(s.load_config().await.unwrap(), before_cfg);
    assert_eq!(s.current_revision().await.unwrap(), before_rev);
    assert_eq!(audit_count(&s).await, before_audit);
    assert!(matches!(s.get::<Selector>("s-re").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.get::<Selector>("div").await.unwrap().version, 1);
}

async fn stale_versions_conflict(s: Store, _url: String) {
    s.create(selector("s1", "divide"), ACTOR).await.unwrap();
    let mut v2 = selector("s1", "divide");
    v2.name = "second".into();
    s.update("s1", 1, v2, ACTOR).await.unwrap();
    let rev = s.current_revision().await.unwrap();
    let audits = audit_count(&s).await;

    let mut stale = selector("s1", "divide");
    stale.name = "stale".into();
    match s.update("s1", 1, stale, ACTOR).await {
        Err(StoreError::Conflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match s.delete::<Selector>("s1", 1, ACTOR).await {
        Err(StoreError::Conflict { current_version }) => assert_eq!(current_version, 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update("missing", 1, selector("missing", "divide"), ACTOR).await,
        Err(StoreError::NotFound { kind: EntityKind::Selector, .. })
    ));
    let cur = s.get::<Selector>("s1").await.unwrap();
    assert_eq!((cur.version, cur.value.name.as_str()), (2, "second"));
    assert_eq!(s.current_revision().await.unwrap(), rev);
    assert_eq!(audit_count(&s).await, audits);

    // Two writers read version 2; exactly one of them wins.
    let (a, b) = tokio::join!(
        s.update("s1", 2, selector("s1", "divide"), "a"),
        s.update("s1", 2, selector("s1", "divide"), "b")
    );
    let wins = [a.is_ok(), b.is_ok()].iter().filter(|x| **x).count();
    assert_eq!(wins, 1, "{a:?} {b:?}");
    assert!(matches!(a.err().or(b.err()), Some(StoreError::Conflict { current_version: 3 })));
}

async fn batch_is_all_or_nothing(s: Store, _url: String) {
    let before = s.load_config().await.unwrap();
    let rev = s.current_revision().await.unwrap();
    let bad = vec![
        Change::Create { item: Item::Selector(selector("b1", "divide")) },
        Change::Create { item: Item::Rule(rule("br1", "b1", "divide")) },
        Change::Create { item: Item::Rule(rule("br2", "missing", "divide")) },
    ];
    assert!(matches!(s.apply_batch(bad, ACTOR).await, Err(StoreError::Invalid(_))));
    let stale = vec![
        Change::Create { item: Item::Selector(selector("b1", "divide")) },
        Change::Delete { kind: EntityKind::Plugin, id: "waf".into(), expected_version: 9 },
    ];
    assert!(matches!(s.apply_batch(stale, ACTOR).await, Err(StoreError::Conflict { current_version: 1 })));
    assert_eq!(s.load_config().await.unwrap(), before);
    assert_eq!(s.current_revision().await.unwrap(), rev);

    let good = vec![
        Change::Create { item: Item::Selector(selector("b1", "divide")) },
        Change::Create { item: Item::Rule(rule("br1", "b1", "divide")) },
        Change::Update { id: "b1".into(), expected_version: 1, item: Item::Selector(selector("b1", "divide")) },
        Change::Delete { kind: EntityKind::Plugin, id: "waf".into(), expected_version: 1 },
        Change::Create { item: Item::Route(route("rt", 0)) },
    ];
    let out = s.apply_batch(good, ACTOR).await.unwrap();
    assert_eq!(out.revision, rev + 1);
    assert_eq!(s.current_revision().await.unwrap(), rev + 1);
    // Created and updated within one batch: one row at version 2.
    assert_eq!(s.get::<Selector>("b1").await.unwrap().version, 2);
    let cfg = s.load_config().await.unwrap();
    assert_eq!(cfg.rules.len(), 1);
    assert!(cfg.plugins.iter().all(|p| p.name != "waf"));
    assert_eq!(cfg.routes.len(), 1);
    let kinds: Vec<_> = out.changes.iter().map(|c| (c.group, c.kind)).collect();
    assert!(kinds.contains(&("PLUGIN", ChangeKind::Delete)), "{kinds:?}");
    assert!(kinds.contains(&("SELECTOR", ChangeKind::Create)), "{kinds:?}");
}

async fn export_wipe_import_roundtrip(s: Store, _url: String) {
    s.create(selector("s1", "divide"), ACTOR).await.unwrap();
    s.create(rule("r1", "s1", "divide"), ACTOR).await.unwrap();
    s.create(MetaData { path: "/m".into(), rpc_type: "http".into(), ..Default::default() }, ACTOR).await.unwrap();
    s.create(AppAuth { app_key: "k".into(), app_secret: "s".into(), ..Default::default() }, ACTOR).await.unwrap();
    s.create(route("b", 0), ACTOR).await.unwrap();
    s.create(route("a", 0), ACTOR).await.unwrap();
    let exported = s.export().await.unwrap();
    let json = serde_json::to_string(&exported).unwrap();

    let wiped = s.import(Config::default(), false, ACTOR).await.unwrap();
    assert!(wiped.changes.iter().all(|c| c.kind == ChangeKind::Delete));
    let empty = s.load_config().await.unwrap();
    assert!(empty.plugins.is_empty() && empty.selectors.is_empty() && empty.routes.is_empty());
    assert!(s.list::<Selector>(&ListQuery::default()).await.unwrap().items.is_empty());

    let doc: Config = serde_json::from_str(&json).unwrap();
    let dry = s.import(doc.clone(), true, ACTOR).await.unwrap();
    assert!(!dry.changes.is_empty());
    assert_eq!(s.load_config().await.unwrap(), empty, "a dry run writes nothing");

    s.import(doc, false, ACTOR).await.unwrap();
    assert_eq!(s.export().await.unwrap(), exported);
    assert_eq!(s.get::<Rule>("r1").await.unwrap().version, 1);

    // An import of an invalid document is refused whole.
    let mut bad: Config = serde_json::from_str(&json).unwrap();
    bad.rules.push(rule("r2", "nope", "divide"));
    bad.selectors.clear();
    let rev = s.current_revision().await.unwrap();
    assert!(matches!(s.import(bad, false, ACTOR).await, Err(StoreError::Invalid(_))));
    assert_eq!(s.current_revision().await.unwrap(), rev);
    assert_eq!(s.export().await.unwrap(), exported);

    // Importing the same document again keeps versions of unchanged objects.
    let same: Config = serde_json::from_str(&json).unwrap();
    let out = s.import(same, false, ACTOR).await.unwrap();
    assert!(out.changes.is_empty(), "{:?}", out.changes);
    assert_eq!(s.get::<Selector>("s1").await.unwrap().version, 1);
}

async fn revisions_diffs_and_rollback(s: Store, _url: String) {
    assert_eq!(s.current_revision().await.unwrap(), 1);
    s.create(selector("s1", "divide"), ACTOR).await.unwrap(); // 2
    let mut renamed = selector("s1", "divide");
    renamed.name = "renamed".into();
    s.update("s1", 1, renamed, ACTOR).await.unwrap(); // 3
    s.create(route("r", 0), ACTOR).await.unwrap(); // 4
    assert_eq!(s.current_revision().await.unwrap(), 4);

    let page = s.revisions(1, 2).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.items.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![4, 3]);
    assert_eq!(page.items[0].actor, ACTOR);

    let r1 = s.revision(1).await.unwrap();
    assert_eq!(r1.changes.len(), BUILTIN_PLUGINS.len());
    let r2 = s.revision(2).await.unwrap();
    assert_eq!(r2.changes.len(), 1);
    assert_eq!(
        (r2.changes[0].group, r2.changes[0].kind, r2.changes[0].id.as_str()),
        ("SELECTOR", ChangeKind::Create, "s1")
    );
    let r3 = s.revision(3).await.unwrap();
    assert_eq!((r3.changes[0].group, r3.changes[0].kind), ("SELECTOR", ChangeKind::Update));
    assert_eq!(r3.config.selectors[0].name, "renamed");
    assert!(matches!(s.revision(99).await, Err(StoreError::RevisionNotFound { revision: 99 })));

    let out = s.rollback(2, "bob").await.unwrap();
    assert_eq!(out.revision, 5);
    let now = s.load_config().await.unwrap();
    assert_eq!(now, s.revision(2).await.unwrap().config);
    assert!(now.routes.is_empty());
    assert_eq!(now.selectors[0].name, "sel-s1");
    let r5 = s.revision(5).await.unwrap();
    assert_eq!(r5.summary.operation, "rollback");
    assert_eq!(r5.summary.actor, "bob");
    assert_eq!(r5.changes.len(), 2, "{:?}", r5.changes);
    // The rolled-back object moved on in version: a client holding version 2 is stale.
    assert_eq!(s.get::<Selector>("s1").await.unwrap().version, 3);
    assert!(matches!(s.rollback(42, ACTOR).await, Err(StoreError::RevisionNotFound { .. })));
}

async fn audit_records_actor_and_before_after(s: Store, _url: String) {
    s.create(selector("s1", "divide"), "carol").await.unwrap();
    let mut renamed = selector("s1", "divide");
    renamed.name = "after".into();
    s.update("s1", 1, renamed, "dave").await.unwrap();
    s.delete::<Selector>("s1", 2, "erin").await.unwrap();

    let page = s.audit(1, 10, Some((EntityKind::Selector, Some("s1")))).await.unwrap();
    assert_eq!(page.total, 3);
    let [del, upd, cre] = [&page.items[0], &page.items[1], &page.items[2]];
    assert_eq!((cre.action.as_str(), cre.actor.as_str(), cre.entity_type.as_str()), ("create", "carol", "selector"));
    assert!(cre.before.is_none());
    assert_eq!(cre.after.as_ref().unwrap()["name"], "sel-s1");
    assert_eq!((upd.action.as_str(), upd.actor.as_str()), ("update", "dave"));
    assert_eq!(upd.before.as_ref().unwrap()["name"], "sel-s1");
    assert_eq!(upd.after.as_ref().unwrap()["name"], "after");
    assert_eq!((del.action.as_str(), del.actor.as_str()), ("delete", "erin"));
    assert_eq!(del.before.as_ref().unwrap()["name"], "after");
    assert!(del.after.is_none());
    assert!(cre.revision < upd.revision && upd.revision < del.revision);
    assert!(!cre.at.is_empty());

    let seeded = s.audit(1, 1000, Some((EntityKind::Plugin, None))).await.unwrap();
    assert_eq!(seeded.total as usize, BUILTIN_PLUGINS.len());
    assert!(seeded.items.iter().all(|a| a.operation == "seed" && a.actor == SYSTEM_ACTOR));
}

async fn closed_store_is_unavailable(s: Store, url: String) {
    let other = Store::open(&url).await.unwrap();
    other.close().await;
    assert!(matches!(other.load_config().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(other.get::<Plugin>("divide").await, Err(StoreError::Unavailable(_))));
    assert!(matches!(other.create(selector("x", "divide"), ACTOR).await, Err(StoreError::Unavailable(_))));
    // The failed write left nothing behind.
    assert!(matches!(s.get::<Selector>("x").await, Err(StoreError::NotFound { .. })));
}

async fn reopen_keeps_data_and_does_not_reseed(s: Store, url: String) {
    s.create(selector("s1", "divide"), ACTOR).await.unwrap();
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.current_revision().await.unwrap(), 2);
    assert_eq!(again.load_config().await.unwrap(), s.load_config().await.unwrap());
    again.close().await;
}

#[tokio::test]
async fn unreachable_servers_are_unavailable() {
    for url in ["postgres://postgres@127.0.0.1:1/test", "mysql://root@127.0.0.1:1/test"] {
        let settings = tigateway_admin::store::PoolSettings {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(2),
        };
        match Store::open_with(url, &settings).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("{url}: expected Unavailable, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn database_names_replace_the_url_path() {
    assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
    assert_eq!(
        with_database("mysql://root@h:3306/test?ssl-mode=disabled", "x"),
        "mysql://root@h:3306/x?ssl-mode=disabled"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

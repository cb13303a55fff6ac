//! How long a config (re)load takes to compile: `build_snapshot` on large configs.
//!
//! `cargo bench -p tigateway-proxy --bench snapshot -- --warm-up-time 1 --measurement-time 3`
//!
//! - `spring_routes/N`: N Spring routes `Path=/svc{i}/**` -> `lb://backend`.
//! - `divide_selectors/N`: N ShenYu divide selectors (uri match `/svc{i}/**`, one upstream in the
//!   selector handle), each with one rule.
//!
//! Config construction and parsing are outside the timed loop, and so is dropping the snapshot
//! (`iter_with_large_drop`): the number is validation + compilation only. Before any timing, the
//! `memory` step prints how much the process RSS grows per config and per snapshot (a rough size).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tigateway_model::{
    Condition, Config, Definition, RouteDefinition, Rule, Selector, ServiceInstance, MATCH_AND, SELECTOR_CUSTOM,
};
use tigateway_proxy::build_snapshot;
use tigateway_upstream::Registry;

const SIZES: [usize; 2] = [10, 10_000];
const UPSTREAM: &str = "127.0.0.1:18080";

fn spring_config(n: usize) -> Config {
    let mut services = BTreeMap::new();
    services.insert(
        "backend".to_string(),
        vec![ServiceInstance {
            url: format!("http://{UPSTREAM}"),
            weight: 1,
            warmup_ms: None,
            metadata: BTreeMap::new(),
        }],
    );
    let routes = (0..n)
        .map(|i| RouteDefinition {
            id: format!("svc{i}"),
            uri: "lb://backend".into(),
            predicates: vec![Definition::parse_shortcut(&format!("Path=/svc{i}/**")).expect("predicate")],
            ..Default::default()
        })
        .collect();
    Config { services, routes, ..Default::default() }
}

fn divide_config(n: usize) -> Config {
    let handle = format!(r#"[{{"upstreamUrl":"{UPSTREAM}","protocol":"http://","weight":50}}]"#);
    let selectors = (0..n)
        .map(|i| Selector {
            id: format!("s{i}"),
            plugin_name: "divide".into(),
            name: format!("svc{i}"),
            match_mode: MATCH_AND,
            selector_type: SELECTOR_CUSTOM,
            sort: Some(i as i64),
            enabled: true,
            continued: true,
            handle: Some(handle.clone()),
            condition_list: vec![Condition::new("uri", "match", None, &format!("/svc{i}/**"))],
            ..Default::default()
        })
        .collect();
    let rules = (0..n)
        .map(|i| Rule {
            id: format!("r{i}"),
            name: format!("svc{i}"),
            plugin_name: "divide".into(),
            selector_id: format!("s{i}"),
            match_mode: MATCH_AND,
            sort: Some(1),
            enabled: true,
            handle: Some(r#"{"loadBalance":"roundRobin","retry":0,"timeout":3000}"#.into()),
            condition_data_list: vec![Condition::new("uri", "match", None, &format!("/svc{i}/**"))],
            ..Default::default()
        })
        .collect();
    Config { selectors, rules, ..Default::default() }
}

/// VmRSS of this process in KiB (0 where /proc is missing).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn bench_build(c: &mut Criterion, group: &str, make: fn(usize) -> Config) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for n in SIZES {
        let config = Arc::new(make(n));
        let registry = Arc::new(Registry::new(&config.server.upstream));
        if let Err(e) = build_snapshot(config.clone(), &registry, 0) {
            panic!("{group}/{n}: the bench config does not validate:\n{e}");
        }
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_with_large_drop(|| build_snapshot(black_box(config.clone()), &registry, 1).ok())
        });
    }
    g.finish();
}

/// Not timed: prints how much this process's RSS grows for each config and for one snapshot of it,
/// before any timing has run. Everything is kept alive until all cases are measured, so freed
/// memory of one case cannot hide the growth of the next. A rough size (system allocator), not an
/// exact heap count.
fn memory(_: &mut Criterion) {
    let mut keep = Vec::new();
    for (name, make) in [("spring_routes", spring_config as fn(usize) -> Config), ("divide_selectors", divide_config)] {
        for n in SIZES {
            let before = rss_kib();
            let config = Arc::new(make(n));
            let with_config = rss_kib();
            let registry = Arc::new(Registry::new(&config.server.upstream));
            let snapshot = build_snapshot(config.clone(), &registry, 0).ok();
            let with_snapshot = rss_kib();
            eprintln!(
                "memory {name}/{n}: RSS growth: config {} KiB, snapshot {} KiB",
                with_config.saturating_sub(before),
                with_snapshot.saturating_sub(with_config)
            );
            keep.push((config, registry, snapshot));
        }
    }
}

fn spring_routes(c: &mut Criterion) {
    bench_build(c, "build_snapshot/spring_routes", spring_config);
}

fn divide_selectors(c: &mut Criterion) {
    bench_build(c, "build_snapshot/divide_selectors", divide_config);
}

criterion_group!(benches, memory, spring_routes, divide_selectors);
criterion_main!(benches);

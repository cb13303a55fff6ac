//! Selection cost against table size: does a request pay for selectors that cannot match it?
//!
//! `cargo bench -p tigateway-matcher --bench lookup -- --warm-up-time 1 --measurement-time 3`
//!
//! Every table holds `n` divide-style selectors with one uri condition each, `/svc{i}/api/**`, and
//! one rule per selector on the same pattern. Requests:
//! - `hit`: a path under one selector in the middle of the table;
//! - `miss`: a path no selector matches.
//!
//! `linear_scan` evaluates every compiled selector condition in order, i.e. what selection costs
//! without the prefix index; it is a baseline, not a code path of the gateway.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, Method};
use smallvec::SmallVec;
use tigateway_matcher::condition::{compile, CompiledCondition};
use tigateway_matcher::index::PrefixIndex;
use tigateway_matcher::select::{PluginTable, SelectOutcome};
use tigateway_matcher::RequestView;
use tigateway_model::{Condition, Rule, Selector, MATCH_AND, SELECTOR_CUSTOM};

const SIZES: [usize; 2] = [10, 10_000];

fn uri_match(pattern: &str) -> Condition {
    Condition::new("uri", "match", None, pattern)
}

fn selectors(n: usize) -> (Vec<Selector>, Vec<Rule>) {
    let sels = (0..n)
        .map(|i| Selector {
            id: format!("s{i}"),
            plugin_name: "divide".into(),
            name: format!("svc{i}"),
            match_mode: MATCH_AND,
            selector_type: SELECTOR_CUSTOM,
            sort: Some(i as i64),
            enabled: true,
            continued: true,
            condition_list: vec![uri_match(&format!("/svc{i}/api/**"))],
            ..Default::default()
        })
        .collect();
    let rules = (0..n)
        .map(|i| Rule {
            id: format!("r{i}"),
            plugin_name: "divide".into(),
            selector_id: format!("s{i}"),
            match_mode: MATCH_AND,
            sort: Some(1),
            enabled: true,
            condition_data_list: vec![uri_match(&format!("/svc{i}/api/**"))],
            ..Default::default()
        })
        .collect();
    (sels, rules)
}

fn view<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        method: &Method::GET,
        path,
        query: None,
        headers,
        host: "bench.local",
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        body: None,
        content_type: None,
    }
}

fn hit_path(n: usize) -> String {
    format!("/svc{}/api/orders/42", n / 2)
}

const MISS_PATH: &str = "/nothing/here/at/all";

fn plugin_table(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut g = c.benchmark_group("plugin_table_select");
    for n in SIZES {
        let (sels, rules) = selectors(n);
        let s: Vec<&Selector> = sels.iter().collect();
        let r: Vec<&Rule> = rules.iter().collect();
        let table = PluginTable::compile(&s, &r).expect("bench selectors compile");

        let hit = hit_path(n);
        let req = view(&hit, &headers);
        assert!(
            matches!(table.select(&req), SelectOutcome::Matched { selector, .. } if selector == n / 2),
            "the hit path must select selector {}",
            n / 2
        );
        g.bench_with_input(BenchmarkId::new("hit", n), &req, |b, req| b.iter(|| table.select(black_box(req))));

        let req = view(MISS_PATH, &headers);
        assert_eq!(table.select(&req), SelectOutcome::NoSelector);
        g.bench_with_input(BenchmarkId::new("miss", n), &req, |b, req| b.iter(|| table.select(black_box(req))));
    }
    g.finish();
}

fn linear_scan(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut g = c.benchmark_group("linear_scan_baseline");
    for n in SIZES {
        let conds: Vec<CompiledCondition> =
            (0..n).map(|i| compile(&uri_match(&format!("/svc{i}/api/**"))).expect("compiles")).collect();
        let hit = hit_path(n);
        let req = view(&hit, &headers);
        assert_eq!(conds.iter().position(|c| c.eval(&req)), Some(n / 2));
        // ShenYu ranks every matching selector, so a scan cannot stop at the first match.
        g.bench_with_input(BenchmarkId::new("hit", n), &req, |b, req| {
            b.iter(|| conds.iter().enumerate().filter(|(_, c)| c.eval(black_box(req))).map(|(i, _)| i).last())
        });
    }
    g.finish();
}

fn prefix_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("prefix_index_candidates");
    for n in SIZES {
        let mut b = PrefixIndex::builder();
        for i in 0..n {
            b.insert(&format!("/svc{i}/api"), i as u32);
        }
        let ix = b.build();

        let hit = hit_path(n);
        let mut out: SmallVec<[u32; 16]> = SmallVec::new();
        ix.candidates(&hit, &mut out);
        assert_eq!(out.as_slice(), &[(n / 2) as u32]);
        g.bench_with_input(BenchmarkId::new("hit", n), hit.as_str(), |b, path| {
            b.iter(|| {
                let mut out: SmallVec<[u32; 16]> = SmallVec::new();
                ix.candidates(black_box(path), &mut out);
                out
            })
        });
        g.bench_with_input(BenchmarkId::new("miss", n), MISS_PATH, |b, path| {
            b.iter(|| {
                let mut out: SmallVec<[u32; 16]> = SmallVec::new();
                ix.candidates(black_box(path), &mut out);
                out
            })
        });
    }
    g.finish();
}

fn compile_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("plugin_table_compile");
    g.sample_size(10);
    for n in SIZES {
        let (sels, rules) = selectors(n);
        let s: Vec<&Selector> = sels.iter().collect();
        let r: Vec<&Rule> = rules.iter().collect();
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| PluginTable::compile(black_box(&s), black_box(&r)).expect("compiles"))
        });
    }
    g.finish();
}

criterion_group!(benches, plugin_table, linear_scan, prefix_index, compile_table);
criterion_main!(benches);

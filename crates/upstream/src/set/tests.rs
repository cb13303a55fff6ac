use std::time::Duration;

use rand::rngs::StdRng;

use super::*;
use crate::peer::Outcome;

const T0: Now = Now { mono_ms: 1_000_000, unix_ms: 1_700_000_000_000 };

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn spec(port: u16, weight: u32) -> UpstreamSpec {
    UpstreamSpec::from_url(&format!("127.0.0.1:{port}"), weight).unwrap()
}

fn set(reg: &Registry, weights: &[u32], balancer: &str) -> UpstreamSet {
    let specs = weights.iter().enumerate().map(|(i, w)| spec(1000 + i as u16, *w)).collect();
    UpstreamSet::new(reg, specs, balancer).unwrap()
}

fn counts(s: &UpstreamSet, rng: &mut StdRng, now: Now, n: usize) -> Vec<usize> {
    let mut c = vec![0; s.len()];
    for _ in 0..n {
        c[s.pick_with(rng, now, None, &[]).unwrap()] += 1;
    }
    c
}

fn assert_share(c: &[usize], expected: &[f64], tolerance: f64) {
    let total: usize = c.iter().sum();
    for (i, (&got, &want)) in c.iter().zip(expected).enumerate() {
        let share = got as f64 / total as f64;
        assert!((share - want).abs() <= tolerance, "member {i}: share {share:.3}, want {want:.3} ({c:?})");
    }
}

fn eject(s: &UpstreamSet, i: usize, now: Now) {
    for _ in 0..100 {
        s.peer(i).record_failure_at(now.mono_ms);
    }
    assert!(!s.peer(i).is_available(now.mono_ms));
}

#[test]
fn unknown_balancer_is_refused_with_the_valid_names() {
    let reg = Registry::default();
    let err = UpstreamSet::new(&reg, vec![spec(1, 1)], "fastest").unwrap_err();
    assert!(err.contains("\"fastest\""), "{err}");
    for name in LOAD_BALANCERS {
        assert!(err.contains(name), "{err}");
        assert_eq!(Balancer::parse(name).unwrap().name(), *name);
    }
    assert_eq!(Balancer::parse("ROUNDROBIN").unwrap(), Balancer::RoundRobin);
}

#[test]
fn empty_set_picks_nothing() {
    let reg = Registry::default();
    for name in LOAD_BALANCERS {
        let s = UpstreamSet::new(&reg, vec![], name).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.pick(Some(b"k"), &[]), None);
    }
}

#[test]
fn random_follows_weights() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 2, 3], "random");
    let c = counts(&s, &mut rng(), T0, 60_000);
    assert_share(&c, &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0], 0.015);
}

#[test]
fn random_equal_weights_is_uniform_and_pick_uses_thread_rng() {
    let reg = Registry::default();
    let s = set(&reg, &[5, 5, 5, 5], "random");
    let mut c = vec![0; 4];
    for _ in 0..40_000 {
        c[s.pick(None, &[]).unwrap()] += 1;
    }
    assert_share(&c, &[0.25; 4], 0.02);
    assert_eq!(s.peer(0).picks() + s.peer(1).picks() + s.peer(2).picks() + s.peer(3).picks(), 40_000);
}

#[test]
fn zero_weight_only_when_all_are_zero() {
    let reg = Registry::default();
    for name in LOAD_BALANCERS {
        let s = set(&reg, &[0, 3, 0], name);
        let mut r = rng();
        for k in 0..300u32 {
            let key = k.to_le_bytes();
            assert_eq!(s.pick_with(&mut r, T0, Some(&key), &[]), Some(1), "{name}");
        }
        // The only weighted member is gone: the zero-weight ones now share the traffic.
        let mut seen = [0usize; 3];
        for k in 0..300u32 {
            let key = k.to_le_bytes();
            seen[s.pick_with(&mut r, T0, Some(&key), &[1]).unwrap()] += 1;
        }
        assert!(seen[0] > 0 && seen[2] > 0 && seen[1] == 0, "{name}: {seen:?}");
    }
    let s = set(&reg, &[0, 0, 0], "random");
    assert_share(&counts(&s, &mut rng(), T0, 30_000), &[1.0 / 3.0; 3], 0.02);
}

#[test]
fn smooth_round_robin_sequence() {
    let reg = Registry::default();
    let s = set(&reg, &[5, 1, 1], "roundRobin");
    let names = ["a", "b", "c"];
    let seq: Vec<&str> = (0..14).map(|_| names[s.pick_with(&mut rng(), T0, None, &[]).unwrap()]).collect();
    assert_eq!(seq.join(" "), "a a b a c a a a a b a c a a");
}

#[test]
fn round_robin_skips_unavailable_and_excluded() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1, 1], "roundRobin");
    eject(&s, 1, T0);
    let seq: Vec<usize> = (0..6).map(|_| s.pick_with(&mut rng(), T0, None, &[]).unwrap()).collect();
    assert_eq!(seq, vec![0, 2, 0, 2, 0, 2]);
    assert_eq!(s.pick_with(&mut rng(), T0, None, &[0]), Some(2));
    assert_eq!(s.pick_with(&mut rng(), T0, None, &[0, 2]), None);
}

#[test]
fn round_robin_exact_weights() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 2, 3], "roundRobin");
    assert_eq!(counts(&s, &mut rng(), T0, 600), vec![100, 200, 300]);
}

fn hash_map(s: &UpstreamSet, keys: usize, exclude: &[usize]) -> Vec<String> {
    (0..keys)
        .map(|k| {
            let key = format!("10.0.{}.{}", k / 256, k % 256);
            let i = s.pick_with(&mut rng(), T0, Some(key.as_bytes()), exclude).unwrap();
            s.peer(i).key().to_string()
        })
        .collect()
}

#[test]
fn hash_is_sticky_balanced_and_consistent() {
    let reg = Registry::default();
    let five = set(&reg, &[1, 1, 1, 1, 1], "hash");
    let before = hash_map(&five, 10_000, &[]);
    assert_eq!(before, hash_map(&five, 10_000, &[]), "same key, same peer");
    for i in 0..5 {
        let share = before.iter().filter(|k| *k == five.peer(i).key()).count() as f64 / 10_000.0;
        assert!((share - 0.2).abs() < 0.06, "member {i} share {share}");
    }
    // Remove the member at port 1002: only its keys move.
    let specs = [0u16, 1, 3, 4].iter().map(|i| spec(1000 + i, 1)).collect();
    let four = UpstreamSet::new(&reg, specs, "hash").unwrap();
    let after = hash_map(&four, 10_000, &[]);
    let removed = five.peer(2).key();
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if b == removed {
            moved += 1;
            assert_ne!(a, removed);
        } else {
            assert_eq!(a, b, "a key not owned by the removed member moved");
        }
    }
    assert!((moved as f64 / 10_000.0 - 0.2).abs() < 0.06, "moved {moved}");
}

#[test]
fn hash_skips_unavailable_members_and_keeps_the_rest() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1, 1], "hash");
    let before = hash_map(&s, 3_000, &[]);
    let with_exclusion = hash_map(&s, 3_000, &[1]);
    for (b, a) in before.iter().zip(&with_exclusion) {
        assert_ne!(a, s.peer(1).key());
        if b != s.peer(1).key() {
            assert_eq!(a, b);
        }
    }
    eject(&s, 1, T0);
    assert_eq!(hash_map(&s, 3_000, &[]), with_exclusion);
}

#[test]
fn hash_ring_follows_weights_and_falls_back_without_key() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 3], "hash");
    let map = hash_map(&s, 10_000, &[]);
    let share = map.iter().filter(|k| *k == s.peer(1).key()).count() as f64 / 10_000.0;
    assert!((share - 0.75).abs() < 0.06, "{share}");
    assert_share(&counts(&s, &mut rng(), T0, 20_000), &[0.25, 0.75], 0.02);
}

#[test]
fn least_active_prefers_fewer_in_flight_and_really_decrements() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1, 1], "leastActive");
    let g0 = s.start(0);
    let g1 = s.start(1);
    let _g1b = s.start(1);
    for _ in 0..50 {
        assert_eq!(s.pick_with(&mut rng(), T0, None, &[]), Some(2));
    }
    let g2 = s.start(2);
    let g2b = s.start(2);
    // 0 has 1 in flight, 1 and 2 have 2.
    assert_eq!(s.pick_with(&mut rng(), T0, None, &[]), Some(0));
    g2.finish(Outcome::Success);
    drop(g2b);
    drop(g0);
    drop(g1);
    // 0 and 2 idle, 1 has one in flight: ties share.
    let c = counts(&s, &mut rng(), T0, 2_000);
    assert_eq!(c[1], 0);
    assert_share(&c, &[0.5, 0.0, 0.5], 0.05);
}

#[test]
fn least_active_ties_are_weighted() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 3], "leastActive");
    assert_share(&counts(&s, &mut rng(), T0, 20_000), &[0.25, 0.75], 0.02);
}

#[test]
fn p2c_prefers_the_faster_peer_unless_it_is_loaded() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1], "p2c");
    s.peer(0).record_success(Duration::from_millis(50));
    s.peer(1).record_success(Duration::from_millis(1));
    let c = counts(&s, &mut rng(), T0, 1_000);
    // The slow peer only gets its one "never picked" probe.
    assert!(c[0] <= 1, "{c:?}");
    let _load: Vec<_> = (0..60).map(|_| s.start(1)).collect();
    let c = counts(&s, &mut rng(), T0, 1_000);
    assert_eq!(c[1], 0, "{c:?}");
}

#[test]
fn p2c_gives_a_starved_peer_fresh_samples() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1], "p2c");
    s.peer(0).record_success(Duration::from_millis(50));
    s.peer(1).record_success(Duration::from_millis(1));
    let mut r = rng();
    counts(&s, &mut r, T0, 10);
    let picks_slow = s.peer(0).picks();
    let later = Now { mono_ms: T0.mono_ms + P2C_STALE_MS + 1, ..T0 };
    assert_eq!(s.pick_with(&mut r, later, None, &[]), Some(0));
    assert_eq!(s.peer(0).picks(), picks_slow + 1);
    assert_eq!(s.pick_with(&mut r, later, None, &[]), Some(1));
}

#[test]
fn p2c_many_peers_spreads_over_equals() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1, 1, 1], "p2c");
    let c = counts(&s, &mut rng(), T0, 8_000);
    assert_share(&c, &[0.25; 4], 0.05);
}

#[test]
fn shortest_response_prefers_the_faster_peer() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1, 1], "shortestResponse");
    s.peer(0).record_success(Duration::from_millis(30));
    s.peer(1).record_success(Duration::from_millis(10));
    s.peer(2).record_success(Duration::from_millis(20));
    assert_eq!(counts(&s, &mut rng(), T0, 100), vec![0, 100, 0]);
    // 10 ms × 3 in flight > 20 ms × 1.
    let _a = s.start(1);
    let _b = s.start(1);
    assert_eq!(s.pick_with(&mut rng(), T0, None, &[]), Some(2));
    // Ties (no samples anywhere) are weighted random.
    let fresh = UpstreamSet::new(&reg, vec![spec(2000, 1), spec(2001, 3)], "shortestResponse").unwrap();
    assert_share(&counts(&fresh, &mut rng(), T0, 20_000), &[0.25, 0.75], 0.02);
}

#[test]
fn warm_up_ramps_weight() {
    let reg = Registry::default();
    let mut warming = spec(1, 100);
    warming.warmup_ms = 10_000;
    warming.started_at_ms = Some(T0.unix_ms - 2_500);
    let s = UpstreamSet::new(&reg, vec![warming, spec(2, 100)], "random").unwrap();
    let m = &s.members[0];
    assert_eq!(m.effective_weight(T0.unix_ms), 25);
    assert_eq!(m.effective_weight(T0.unix_ms - 2_500 + 1), 1, "at least 1 right after start");
    assert_eq!(m.effective_weight(T0.unix_ms + 7_499), 99);
    assert_eq!(m.effective_weight(T0.unix_ms + 7_500), 100, "warmed up");
    assert_eq!(m.effective_weight(T0.unix_ms - 3_000), 100, "start in the future counts as warm");
    // 25 : 100.
    assert_share(&counts(&s, &mut rng(), T0, 50_000), &[0.2, 0.8], 0.015);
    let later = Now { unix_ms: T0.unix_ms + 10_000, ..T0 };
    assert_share(&counts(&s, &mut rng(), later, 50_000), &[0.5, 0.5], 0.015);
}

#[test]
fn passive_ejection_and_readmission_through_the_set() {
    let reg =
        Registry::new(&tigateway_model::UpstreamConfig { max_fails: 2, fail_timeout_ms: 5_000, ..Default::default() });
    for name in LOAD_BALANCERS {
        let s = UpstreamSet::new(&reg, vec![spec(3000, 1), spec(3001, 1)], name).unwrap();
        s.peer(0).record_failure_at(T0.mono_ms);
        assert!(s.peer(0).is_available(T0.mono_ms), "one failure is not enough");
        s.peer(0).record_failure_at(T0.mono_ms);
        let mut r = rng();
        for k in 0..200u32 {
            assert_eq!(s.pick_with(&mut r, T0, Some(&k.to_le_bytes()), &[]), Some(1), "{name}");
        }
        s.peer(1).record_failure_at(T0.mono_ms);
        s.peer(1).record_failure_at(T0.mono_ms);
        assert_eq!(s.pick_with(&mut r, T0, Some(b"k"), &[]), None, "{name}: all ejected");
        let later = Now { mono_ms: T0.mono_ms + 5_000, ..T0 };
        let mut seen = [false; 2];
        for k in 0..200u32 {
            seen[s.pick_with(&mut r, later, Some(&k.to_le_bytes()), &[]).unwrap()] = true;
        }
        assert_eq!(seen, [true, true], "{name}: both re-admitted");
        s.peer(0).record_success(Duration::from_millis(1));
        s.peer(1).record_success(Duration::from_millis(1));
    }
}

#[test]
fn finish_with_failure_feeds_passive_health() {
    let reg =
        Registry::new(&tigateway_model::UpstreamConfig { max_fails: 1, fail_timeout_ms: 60_000, ..Default::default() });
    let s = set(&reg, &[1, 1], "random");
    s.start(0).finish(Outcome::Failure);
    assert_eq!(s.peer(0).in_flight(), 0);
    for _ in 0..100 {
        assert_eq!(s.pick(None, &[]), Some(1));
    }
}

#[test]
fn exclude_list() {
    let reg = Registry::default();
    for name in LOAD_BALANCERS {
        let s = set(&reg, &[1, 1, 1], name);
        let mut r = rng();
        for k in 0..100u32 {
            let got = s.pick_with(&mut r, T0, Some(&k.to_le_bytes()), &[0, 2]);
            assert_eq!(got, Some(1), "{name}");
        }
        assert_eq!(s.pick_with(&mut r, T0, Some(b"x"), &[0, 1, 2]), None, "{name}");
    }
}

#[test]
fn gray_members_take_all_traffic_while_any_is_up() {
    let reg = Registry::default();
    for name in LOAD_BALANCERS {
        let mut gray = spec(4001, 1);
        gray.gray = true;
        let s = UpstreamSet::new(&reg, vec![spec(4000, 1), gray, spec(4002, 1)], name).unwrap();
        let mut r = rng();
        for k in 0..100u32 {
            assert_eq!(s.pick_with(&mut r, T0, Some(&k.to_le_bytes()), &[]), Some(1), "{name}");
        }
        // The gray member excluded: back to the others.
        let mut seen = [0; 3];
        for k in 0..200u32 {
            seen[s.pick_with(&mut r, T0, Some(&k.to_le_bytes()), &[1]).unwrap()] += 1;
        }
        assert!(seen[0] > 0 && seen[2] > 0 && seen[1] == 0, "{name}: {seen:?}");
    }
    // A disabled gray member does not divert traffic.
    let mut gray = spec(4101, 1);
    gray.gray = true;
    gray.enabled = false;
    let s = UpstreamSet::new(&reg, vec![spec(4100, 1), gray], "random").unwrap();
    assert_eq!(counts(&s, &mut rng(), T0, 100), vec![100, 0]);
}

#[test]
fn disabled_members_are_never_picked() {
    let reg = Registry::default();
    for name in LOAD_BALANCERS {
        let mut off = spec(5000, 100);
        off.enabled = false;
        let s = UpstreamSet::new(&reg, vec![off, spec(5001, 1)], name).unwrap();
        let mut r = rng();
        for k in 0..100u32 {
            assert_eq!(s.pick_with(&mut r, T0, Some(&k.to_le_bytes()), &[]), Some(1), "{name}");
        }
        assert_eq!(s.pick_with(&mut r, T0, None, &[1]), None, "{name}");
    }
}

#[test]
fn active_down_peer_stays_out_after_fail_timeout() {
    let reg = Registry::default();
    let s = set(&reg, &[1, 1], "random");
    for _ in 0..3 {
        s.peer(0).record_probe(false, 2, 3);
    }
    let much_later = Now { mono_ms: T0.mono_ms + 10_000_000, ..T0 };
    assert_eq!(counts(&s, &mut rng(), much_later, 100), vec![0, 100]);
}

#[test]
fn state_survives_a_rebuild() {
    let reg = Registry::default();
    let old = set(&reg, &[1, 1], "leastActive");
    let guard = old.start(0);
    eject(&old, 1, T0);
    let new = set(&reg, &[1, 1, 1], "leastActive");
    drop(old);
    assert!(Arc::ptr_eq(new.peer(0), guard.peer()));
    assert_eq!(new.peer(0).in_flight(), 1);
    assert_eq!(new.pick_with(&mut rng(), T0, None, &[]), Some(2));
    drop(guard);
    assert_eq!(new.peer(0).in_flight(), 0);
}

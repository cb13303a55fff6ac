//! Long-lived state of one upstream address: load, latency and health. A [`Peer`] is shared by every
//! upstream set (in every snapshot) that names the same `scheme://authority`, so a config swap neither
//! forgets that an upstream is failing nor resets the load balancers' view of its load.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tigateway_model::Scheme;

use crate::clock::mono_ms;

/// Passive health parameters, shared between a [`crate::Registry`] and all its peers so that an
/// update applies at once without touching every peer.
#[derive(Debug)]
pub(crate) struct PassiveParams {
    pub(crate) max_fails: AtomicU32,
    pub(crate) fail_timeout_ms: AtomicU64,
}

/// Weight of a new sample in the latency average, in tenths. 3/10 follows a change within a handful of
/// responses while one slow response does not flip a p2c decision on its own.
const EWMA_NEW_TENTHS: u64 = 3;

#[derive(Debug)]
pub struct Peer {
    key: String,
    scheme: Scheme,
    authority_at: usize,
    params: Arc<PassiveParams>,
    in_flight: AtomicU64,
    picks: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Monotonic ms; the peer is out of rotation while the clock is below it.
    ejected_until: AtomicU64,
    /// Microseconds; 0 = no successful response seen yet.
    latency_ewma_us: AtomicU64,
    /// Monotonic ms; 0 = never picked.
    last_pick_ms: AtomicU64,
    active_down: AtomicBool,
    active_ok_streak: AtomicU32,
    active_fail_streak: AtomicU32,
    /// Times the passive check took this peer out of rotation (for metrics).
    ejections: AtomicU64,
}

impl Peer {
    pub(crate) fn new(scheme: Scheme, key: String, authority_at: usize, params: Arc<PassiveParams>) -> Peer {
        Peer {
            key,
            scheme,
            authority_at,
            params,
            in_flight: AtomicU64::new(0),
            picks: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            latency_ewma_us: AtomicU64::new(0),
            last_pick_ms: AtomicU64::new(0),
            active_down: AtomicBool::new(false),
            active_ok_streak: AtomicU32::new(0),
            active_fail_streak: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    /// `scheme://host:port`.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.key[self.authority_at..]
    }

    /// Requests started with [`Peer::begin`] (or [`crate::UpstreamSet::start`]) and not yet ended.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Times a balancer chose this peer.
    pub fn picks(&self) -> u64 {
        self.picks.load(Relaxed)
    }

    pub fn successes(&self) -> u64 {
        self.successes.load(Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// How often the passive health check ejected this peer.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Relaxed)
    }

    /// Moving average of successful response times; `None` until the first success.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_ewma_us.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub(crate) fn latency_us(&self) -> u64 {
        self.latency_ewma_us.load(Relaxed)
    }

    /// Monotonic ms of the last pick, 0 if never.
    pub(crate) fn last_pick_ms(&self) -> u64 {
        self.last_pick_ms.load(Relaxed)
    }

    pub(crate) fn note_pick(&self, now_mono_ms: u64) {
        self.picks.fetch_add(1, Relaxed);
        self.last_pick_ms.store(now_mono_ms.max(1), Relaxed);
    }

    /// Whether passive health has taken this peer out of rotation at `now_mono_ms` ([`crate::mono_ms`]).
    pub fn is_ejected(&self, now_mono_ms: u64) -> bool {
        now_mono_ms < self.ejected_until.load(Relaxed)
    }

    /// Whether active health checks have marked this peer down.
    pub fn is_active_down(&self) -> bool {
        self.active_down.load(Relaxed)
    }

    /// Neither ejected by passive health at `now_mono_ms` ([`crate::mono_ms`]) nor marked down by
    /// active checks.
    pub fn is_available(&self, now_mono_ms: u64) -> bool {
        !self.is_active_down() && !self.is_ejected(now_mono_ms)
    }

    /// Counts a request as in flight until the returned guard ends; the guard also feeds passive health.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight { peer: Arc::clone(self), started: Instant::now(), recorded: false }
    }

    /// A response arrived: the failure streak ends and the latency feeds the average.
    pub fn record_success(&self, latency: Duration) {
        self.successes.fetch_add(1, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        let sample = (latency.as_micros().min(u64::MAX as u128) as u64).max(1);
        let _ = self.latency_ewma_us.fetch_update(Relaxed, Relaxed, |old| {
            Some(if old == 0 {
                sample
            } else if sample >= old {
                (old + (sample - old) * EWMA_NEW_TENTHS / 10).max(1)
            } else {
                (old - (old - sample) * EWMA_NEW_TENTHS / 10).max(1)
            })
        });
    }

    /// The upstream could not be reached or did not answer in time.
    pub fn record_failure(&self) {
        self.record_failure_at(mono_ms());
    }

    /// [`Peer::record_failure`] at a given monotonic time. The streak is only reset by a success, so once
    /// a peer has been ejected and re-admitted a single further failure ejects it again.
    pub fn record_failure_at(&self, now_mono_ms: u64) {
        self.failures.fetch_add(1, Relaxed);
        let streak = self.consecutive_failures.fetch_add(1, Relaxed).saturating_add(1);
        let max_fails = self.params.max_fails.load(Relaxed);
        if max_fails == 0 || streak < max_fails {
            return;
        }
        let until = now_mono_ms.saturating_add(self.params.fail_timeout_ms.load(Relaxed));
        let before = self.ejected_until.fetch_max(until, Relaxed);
        if before <= now_mono_ms {
            self.ejections.fetch_add(1, Relaxed);
            tracing::warn!(upstream = %self.key, failures = streak, "upstream ejected by passive health check");
        }
    }

    /// Feeds one active probe result; the state flips only after a run of equal results.
    pub(crate) fn record_probe(&self, ok: bool, healthy_threshold: u32, unhealthy_threshold: u32) {
        if ok {
            self.active_fail_streak.store(0, Relaxed);
            let streak = self.active_ok_streak.fetch_add(1, Relaxed).saturating_add(1);
            if streak >= healthy_threshold.max(1) && self.active_down.swap(false, Relaxed) {
                tracing::info!(upstream = %self.key, "upstream healthy again (active check)");
            }
        } else {
            self.active_ok_streak.store(0, Relaxed);
            let streak = self.active_fail_streak.fetch_add(1, Relaxed).saturating_add(1);
            if streak >= unhealthy_threshold.max(1) && !self.active_down.swap(true, Relaxed) {
                tracing::warn!(upstream = %self.key, "upstream marked down by active health check");
            }
        }
    }

    /// Forgets active-check verdicts, for when checks stop and nothing would ever mark the peer up.
    pub(crate) fn reset_active(&self) {
        self.active_down.store(false, Relaxed);
        self.active_ok_streak.store(0, Relaxed);
        self.active_fail_streak.store(0, Relaxed);
    }
}

/// How an attempt on an upstream ended, for passive health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (whatever the status: a 5xx is the application's answer, not a dead host).
    Success,
    /// Connect error, reset, or timeout.
    Failure,
}

/// One request in flight on a peer. Dropping it without recording (the client went away, the gateway
/// gave up for its own reasons) says nothing about the upstream's health.
#[derive(Debug)]
#[must_use = "dropping the guard at once ends the request's in-flight count"]
pub struct InFlight {
    peer: Arc<Peer>,
    started: Instant,
    recorded: bool,
}

impl InFlight {
    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }

    /// Records the outcome (latency = time since start) but keeps counting the request as in flight,
    /// e.g. when the response head is in but the body still streams. Only the first call counts.
    pub fn record(&mut self, outcome: Outcome) {
        if !self.first_outcome() {
            return;
        }
        match outcome {
            Outcome::Success => self.peer.record_success(self.started.elapsed()),
            Outcome::Failure => self.peer.record_failure(),
        }
    }

    /// Records the outcome (unless already recorded) and ends the request.
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    /// Ends the request as answered and returns its latency, read from the clock once for both
    /// (passive health's average and the caller's own timing).
    pub fn succeed(mut self) -> Duration {
        let latency = self.started.elapsed();
        if self.first_outcome() {
            self.peer.record_success(latency);
        }
        latency
    }

    /// True the first time an outcome is given: only that one feeds passive health.
    fn first_outcome(&mut self) -> bool {
        !std::mem::replace(&mut self.recorded, true)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.peer.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(max_fails: u32, fail_timeout_ms: u64) -> Arc<Peer> {
        let params = Arc::new(PassiveParams {
            max_fails: AtomicU32::new(max_fails),
            fail_timeout_ms: AtomicU64::new(fail_timeout_ms),
        });
        Arc::new(Peer::new(Scheme::Http, "http://h:1".into(), 7, params))
    }

    #[test]
    fn key_parts() {
        let p = peer(1, 1);
        assert_eq!((p.key(), p.authority(), p.scheme()), ("http://h:1", "h:1", Scheme::Http));
    }

    #[test]
    fn ejected_after_max_fails_and_readmitted_after_timeout() {
        let p = peer(3, 1000);
        p.record_failure_at(100);
        p.record_failure_at(101);
        assert!(p.is_available(102));
        p.record_failure_at(102);
        assert!(!p.is_available(103));
        assert!(!p.is_available(1101));
        assert!(p.is_available(1102));
        // Re-admitted on probation: one more failure ejects again.
        p.record_failure_at(1200);
        assert!(!p.is_available(1201));
        assert!(p.is_available(2200));
        // A success ends the streak.
        p.record_success(Duration::from_millis(5));
        p.record_failure_at(2300);
        assert!(p.is_available(2301));
        assert_eq!((p.failures(), p.successes(), p.consecutive_failures()), (5, 1, 1));
    }

    #[test]
    fn max_fails_zero_never_ejects() {
        let p = peer(0, 1000);
        for t in 0..100 {
            p.record_failure_at(t);
        }
        assert!(p.is_available(100));
    }

    #[test]
    fn in_flight_guard_counts_and_records() {
        let p = peer(1, 10_000);
        let a = p.begin();
        let mut b = p.begin();
        assert_eq!(p.in_flight(), 2);
        b.record(Outcome::Success);
        b.record(Outcome::Failure); // ignored: already recorded
        assert_eq!(p.in_flight(), 2);
        drop(b);
        assert_eq!((p.in_flight(), p.successes(), p.failures()), (1, 1, 0));
        drop(a); // no outcome: neither success nor failure
        assert_eq!((p.in_flight(), p.successes(), p.failures()), (0, 1, 0));
        p.begin().finish(Outcome::Failure);
        assert_eq!((p.in_flight(), p.failures()), (0, 1));
        assert!(!p.is_available(mono_ms()));
    }

    #[test]
    fn succeed_ends_the_request_and_its_latency_is_the_one_recorded() {
        let p = peer(1, 10_000);
        let f = p.begin();
        std::thread::sleep(Duration::from_millis(3));
        let latency = f.succeed();
        assert!(latency >= Duration::from_millis(3), "{latency:?}");
        assert_eq!((p.in_flight(), p.successes(), p.failures()), (0, 1, 0));
        // The first sample is the average as it is (to the microsecond).
        assert_eq!(p.latency(), Some(Duration::from_micros(latency.as_micros() as u64)));
        // Already recorded: succeeding adds no second sample.
        let mut g = p.begin();
        g.record(Outcome::Failure);
        let _ = g.succeed();
        assert_eq!((p.in_flight(), p.successes(), p.failures()), (0, 1, 1));
    }

    #[test]
    fn latency_average_moves_towards_samples() {
        let p = peer(1, 1);
        assert_eq!(p.latency(), None);
        p.record_success(Duration::from_millis(10));
        assert_eq!(p.latency(), Some(Duration::from_millis(10)));
        p.record_success(Duration::from_millis(20));
        assert_eq!(p.latency(), Some(Duration::from_millis(13)));
        for _ in 0..50 {
            p.record_success(Duration::from_millis(1));
        }
        let l = p.latency().unwrap();
        assert!(l >= Duration::from_millis(1) && l < Duration::from_micros(1100), "{l:?}");
    }

    #[test]
    fn active_thresholds() {
        let p = peer(1, 1);
        p.record_probe(false, 2, 3);
        p.record_probe(false, 2, 3);
        assert!(!p.is_active_down());
        p.record_probe(false, 2, 3);
        assert!(p.is_active_down());
        assert!(!p.is_available(u64::MAX - 1));
        p.record_probe(true, 2, 3);
        assert!(p.is_active_down());
        p.record_probe(false, 2, 3); // breaks the success run
        p.record_probe(true, 2, 3);
        assert!(p.is_active_down());
        p.record_probe(true, 2, 3);
        assert!(!p.is_active_down());
        p.record_probe(false, 2, 3);
        p.reset_active();
        p.record_probe(false, 2, 3);
        p.record_probe(false, 2, 3);
        assert!(!p.is_active_down());
    }
}

//! An upstream set: the members of one selector / route / service in one snapshot, and the balancer
//! that chooses among them. Built off the request path; picking neither allocates nor takes a global
//! lock (round robin holds its own set's mutex for a few additions).

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tigateway_model::handle::LOAD_BALANCERS;

use crate::clock::Now;
use crate::peer::{InFlight, Peer};
use crate::registry::Registry;
use crate::spec::UpstreamSpec;

/// Ring points per member at average weight (libketama's figure). ShenYu uses 5 per upstream, which
/// leaves shares as uneven as 2:1 with a handful of upstreams; 160 keeps them within a few percent.
pub const HASH_POINTS_PER_MEMBER: u64 = 160;

/// p2c sends a request to the losing candidate anyway if it has not been picked for this long, so that
/// a peer whose latency average went bad once gets fresh samples instead of starving forever.
pub const P2C_STALE_MS: u64 = 3_000;

/// Load balancing algorithms, named as in ShenYu's divide handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Balancer {
    /// Weighted random.
    Random,
    /// Smooth weighted round robin (nginx's), with state per set.
    RoundRobin,
    /// Consistent hashing of a caller-chosen key on a ring of virtual nodes.
    Hash,
    /// Fewest requests in flight, ties broken by weighted random. ShenYu's counter is never decremented
    /// and so means "picked least so far"; here it is a real in-flight count.
    LeastActive,
    /// Power of two choices: two weighted random candidates, the lower (in-flight + 1) × latency wins.
    P2c,
    /// Lowest latency average × (in-flight + 1), ties broken by weighted random.
    ShortestResponse,
}

impl Balancer {
    /// Accepts ShenYu's names, ignoring case.
    pub fn parse(name: &str) -> Result<Balancer, String> {
        const ALL: [Balancer; 6] = [
            Balancer::Random,
            Balancer::RoundRobin,
            Balancer::Hash,
            Balancer::LeastActive,
            Balancer::P2c,
            Balancer::ShortestResponse,
        ];
        let name = name.trim();
        ALL.into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown load balancer {name:?} (valid: {})", LOAD_BALANCERS.join(", ")))
    }

    pub fn name(self) -> &'static str {
        match self {
            Balancer::Random => "random",
            Balancer::RoundRobin => "roundRobin",
            Balancer::Hash => "hash",
            Balancer::LeastActive => "leastActive",
            Balancer::P2c => "p2c",
            Balancer::ShortestResponse => "shortestResponse",
        }
    }
}

impl fmt::Display for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug)]
struct Member {
    peer: Arc<Peer>,
    weight: u32,
    warmup_ms: u64,
    started_at_ms: Option<i64>,
    enabled: bool,
    gray: bool,
}

impl Member {
    /// ShenYu's warm-up: while 0 < uptime < warm-up the weight grows linearly from 1 to the configured
    /// weight. A start time in the future (clock skew) counts as warmed up, as in ShenYu.
    fn effective_weight(&self, unix_now_ms: i64) -> u64 {
        let w = u64::from(self.weight);
        if w == 0 || self.warmup_ms == 0 {
            return w;
        }
        let Some(started) = self.started_at_ms else { return w };
        let uptime = unix_now_ms.saturating_sub(started);
        if uptime <= 0 || uptime as u64 >= self.warmup_ms {
            return w;
        }
        let ramped = (uptime as u128 * w as u128 / self.warmup_ms as u128) as u64;
        ramped.clamp(1, w)
    }
}

#[derive(Debug)]
enum State {
    Plain,
    /// Current weights of smooth weighted round robin, one per member.
    RoundRobin(Mutex<Vec<i64>>),
    /// (point, member) sorted by point.
    Hash(Vec<(u32, u32)>),
}

#[derive(Debug)]
pub struct UpstreamSet {
    members: Vec<Member>,
    balancer: Balancer,
    state: State,
    any_gray: bool,
    /// Some member may still be warming up: only then does a pick read the wall clock.
    warmup: bool,
}

/// What one pick may choose from.
struct Scope<'a> {
    now: Now,
    exclude: &'a [usize],
    gray_only: bool,
    /// Every candidate has weight 0, so weights are ignored rather than nobody being picked.
    all_zero: bool,
}

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_entropy());
}

impl UpstreamSet {
    /// Builds a set whose members share per-address state through `registry`. Errors only for an
    /// unknown balancer name.
    pub fn new(registry: &Registry, specs: Vec<UpstreamSpec>, balancer: &str) -> Result<UpstreamSet, String> {
        let balancer = Balancer::parse(balancer)?;
        Ok(UpstreamSet::with_balancer(registry, specs, balancer))
    }

    pub fn with_balancer(registry: &Registry, specs: Vec<UpstreamSpec>, balancer: Balancer) -> UpstreamSet {
        let members: Vec<Member> = specs
            .into_iter()
            .map(|s| Member {
                peer: registry.get_or_insert(&s),
                weight: s.weight,
                warmup_ms: s.warmup_ms,
                started_at_ms: s.started_at_ms,
                enabled: s.enabled,
                gray: s.gray,
            })
            .collect();
        let state = match balancer {
            Balancer::RoundRobin => State::RoundRobin(Mutex::new(vec![0; members.len()])),
            Balancer::Hash => State::Hash(build_ring(&members)),
            _ => State::Plain,
        };
        let any_gray = members.iter().any(|m| m.enabled && m.gray);
        let warmup = members.iter().any(|m| m.warmup_ms > 0 && m.started_at_ms.is_some());
        UpstreamSet { members, balancer, state, any_gray, warmup }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn balancer(&self) -> Balancer {
        self.balancer
    }

    /// Panics if `i` is out of range, like slice indexing.
    pub fn peer(&self, i: usize) -> &Arc<Peer> {
        &self.members[i].peer
    }

    /// Configured weight of member `i` (before warm-up).
    pub fn weight(&self, i: usize) -> u32 {
        self.members[i].weight
    }

    /// Counts a request on member `i` as in flight until the guard ends.
    pub fn start(&self, i: usize) -> InFlight {
        self.members[i].peer.begin()
    }

    /// Chooses a member for a request: enabled, not in `exclude`, not ejected or marked down, and gray if
    /// any such gray member exists (ShenYu 2.7.1). `hash_key` feeds the `hash` balancer (others ignore
    /// it; `hash` without a key falls back to weighted random). `None`: nothing can take the request.
    pub fn pick(&self, hash_key: Option<&[u8]>, exclude: &[usize]) -> Option<usize> {
        // The wall clock is only needed for warm-up; a clock read per pick is measurable.
        let now = if self.warmup { Now::current() } else { Now { mono_ms: crate::clock::mono_ms(), unix_ms: 0 } };
        RNG.with(|rng| self.pick_with(&mut *rng.borrow_mut(), now, hash_key, exclude))
    }

    /// [`UpstreamSet::pick`] with a given random source and time.
    pub fn pick_with<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        now: Now,
        hash_key: Option<&[u8]>,
        exclude: &[usize],
    ) -> Option<usize> {
        let mut scope = Scope { now, exclude, gray_only: false, all_zero: false };
        let (mut any, mut any_gray, mut sum, mut gray_sum) = (false, false, 0u64, 0u64);
        for (i, m) in self.members.iter().enumerate() {
            if self.eligible(i, &scope) {
                let w = m.effective_weight(now.unix_ms);
                any = true;
                sum += w;
                if m.gray {
                    any_gray = true;
                    gray_sum += w;
                }
            }
        }
        if !any {
            return None;
        }
        scope.gray_only = self.any_gray && any_gray;
        scope.all_zero = if scope.gray_only { gray_sum == 0 } else { sum == 0 };

        let picked = match (&self.state, self.balancer) {
            (State::RoundRobin(current), _) => self.pick_round_robin(current, &scope),
            (State::Hash(ring), _) => match hash_key {
                Some(key) => self.pick_hash(ring, key, &scope).or_else(|| self.weighted(rng, &scope, |_| true)),
                None => self.weighted(rng, &scope, |_| true),
            },
            (State::Plain, Balancer::LeastActive) => self.pick_least_active(rng, &scope),
            (State::Plain, Balancer::P2c) => self.pick_p2c(rng, &scope),
            (State::Plain, Balancer::ShortestResponse) => self.pick_shortest_response(rng, &scope),
            (State::Plain, _) => self.weighted(rng, &scope, |_| true),
        }?;
        self.members[picked].peer.note_pick(now.mono_ms);
        Some(picked)
    }

    fn eligible(&self, i: usize, scope: &Scope<'_>) -> bool {
        let m = &self.members[i];
        m.enabled
            && (!scope.gray_only || m.gray)
            && !scope.exclude.contains(&i)
            && m.peer.is_available(scope.now.mono_ms)
    }

    fn weight_in(&self, i: usize, scope: &Scope<'_>) -> u64 {
        if scope.all_zero {
            1
        } else {
            self.members[i].effective_weight(scope.now.unix_ms)
        }
    }

    /// Eligible and allowed to receive traffic by its weight.
    fn candidate(&self, i: usize, scope: &Scope<'_>) -> bool {
        self.eligible(i, scope) && self.weight_in(i, scope) > 0
    }

    /// Weighted random among candidates passing `extra`. Two passes over the members instead of a
    /// collected list; if health changed between them the last candidate seen is taken.
    fn weighted<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        scope: &Scope<'_>,
        extra: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let total: u64 = (0..self.members.len())
            .filter(|&i| extra(i) && self.candidate(i, scope))
            .map(|i| self.weight_in(i, scope))
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = rng.gen_range(0..total);
        let mut last = None;
        for i in 0..self.members.len() {
            if !(extra(i) && self.candidate(i, scope)) {
                continue;
            }
            let w = self.weight_in(i, scope);
            if r < w {
                return Some(i);
            }
            r -= w;
            last = Some(i);
        }
        last
    }

    fn pick_round_robin(&self, current: &Mutex<Vec<i64>>, scope: &Scope<'_>) -> Option<usize> {
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for i in 0..self.members.len() {
            if !self.candidate(i, scope) {
                continue;
            }
            let w = self.weight_in(i, scope).min(i64::MAX as u64 / 1024) as i64;
            total += w;
            current[i] += w;
            if best.map(|b| current[i] > current[b]).unwrap_or(true) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }

    /// First eligible member clockwise from the key's point. The ring is built from configured weights
    /// and ignores warm-up: re-balancing keys as weights ramp would defeat the point of hashing.
    fn pick_hash(&self, ring: &[(u32, u32)], key: &[u8], scope: &Scope<'_>) -> Option<usize> {
        if ring.is_empty() {
            return None;
        }
        let h = hash32(key);
        let start = ring.partition_point(|p| p.0 < h);
        (0..ring.len()).map(|k| ring[(start + k) % ring.len()].1 as usize).find(|&i| self.candidate(i, scope))
    }

    fn pick_least_active<R: Rng + ?Sized>(&self, rng: &mut R, scope: &Scope<'_>) -> Option<usize> {
        let min = (0..self.members.len())
            .filter(|&i| self.candidate(i, scope))
            .map(|i| self.members[i].peer.in_flight())
            .min()?;
        self.weighted(rng, scope, |i| self.members[i].peer.in_flight() == min)
            .or_else(|| self.weighted(rng, scope, |_| true))
    }

    fn pick_p2c<R: Rng + ?Sized>(&self, rng: &mut R, scope: &Scope<'_>) -> Option<usize> {
        let a = self.weighted(rng, scope, |_| true)?;
        let Some(b) = self.weighted(rng, scope, |i| i != a) else {
            return Some(a);
        };
        let (pa, pb) = (&self.members[a].peer, &self.members[b].peer);
        // A peer without a latency sample is compared on load alone, taking the other's latency.
        let (la, lb) = (pa.latency_us(), pb.latency_us());
        let la = if la == 0 { lb.max(1) } else { la };
        let lb = if lb == 0 { la } else { lb };
        let score_a = u128::from(pa.in_flight() + 1) * u128::from(la);
        let score_b = u128::from(pb.in_flight() + 1) * u128::from(lb);
        let (winner, loser) = if score_b < score_a { (b, a) } else { (a, b) };
        let last = self.members[loser].peer.last_pick_ms();
        if last == 0 || scope.now.mono_ms.saturating_sub(last) > P2C_STALE_MS {
            Some(loser)
        } else {
            Some(winner)
        }
    }

    fn pick_shortest_response<R: Rng + ?Sized>(&self, rng: &mut R, scope: &Scope<'_>) -> Option<usize> {
        // Peers with no sample yet are scored with the best known latency: they get tried without
        // drawing every request until their first answer.
        let best_known = (0..self.members.len())
            .filter(|&i| self.candidate(i, scope))
            .map(|i| self.members[i].peer.latency_us())
            .filter(|&l| l > 0)
            .min()
            .unwrap_or(1);
        let score = |i: usize| {
            let p = &self.members[i].peer;
            let l = match p.latency_us() {
                0 => best_known,
                l => l,
            };
            u128::from(p.in_flight() + 1) * u128::from(l)
        };
        let min = (0..self.members.len()).filter(|&i| self.candidate(i, scope)).map(score).min()?;
        self.weighted(rng, scope, |i| score(i) == min).or_else(|| self.weighted(rng, scope, |_| true))
    }
}

/// Ketama-style ring: member i gets 160 × n × wᵢ / Σw points (at least 1 if wᵢ > 0), so total size is
/// about 160 × n and a member's points do not depend on which other members exist when weights are
/// equal — removing one member moves only the keys it owned.
fn build_ring(members: &[Member]) -> Vec<(u32, u32)> {
    let live: Vec<usize> = (0..members.len()).filter(|&i| members[i].enabled).collect();
    let total: u64 = live.iter().map(|&i| u64::from(members[i].weight)).sum();
    let n = live.len() as u64;
    let mut ring = Vec::new();
    for &i in &live {
        let points = if total == 0 {
            HASH_POINTS_PER_MEMBER
        } else {
            let w = u64::from(members[i].weight);
            if w == 0 {
                0
            } else {
                ((HASH_POINTS_PER_MEMBER as u128 * n as u128 * w as u128 / total as u128) as u64).max(1)
            }
        };
        let key = members[i].peer.key();
        let mut made = 0u64;
        let mut block = 0u64;
        while made < points {
            let digest = Md5::digest(format!("{key}-{block}").as_bytes());
            for chunk in digest.chunks_exact(4) {
                if made == points {
                    break;
                }
                ring.push((u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]), i as u32));
                made += 1;
            }
            block += 1;
        }
    }
    ring.sort_unstable();
    ring
}

/// MD5's first four bytes, little-endian, as ShenYu hashes keys.
fn hash32(key: &[u8]) -> u32 {
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests;

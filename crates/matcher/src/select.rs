//! ShenYu selector/rule selection for one plugin (shenyu-semantics.md §2, steps 3–8, without the
//! match caches).
//!
//! Ordering: enabled selectors (and rules) are ranked by `sort` ascending, a missing `sort` after
//! every present one, then by position in the input. ShenYu's Java comparator would throw on a
//! missing sort; "last" keeps a selector without one from silently outranking explicit ones.
//!
//! Candidates come from a [`PrefixIndex`] keyed by each entry's literal path prefix, never from a
//! scan of all selectors. Ids in the index are ranks, so the ascending candidate list is already in
//! `sort` order and "highest score, then lowest sort, then first" is simply "first candidate with
//! the highest score".
//!
//! [`PluginTable::select`] and [`PluginTable::explain`] are the same function, instantiated with a
//! no-op or a recording trace sink, so an explanation cannot disagree with what a request gets.

use std::collections::HashMap;

use smallvec::SmallVec;
use tigateway_model::{Rule, Selector, ValidationError, MATCH_OR, SELECTOR_FULL};

use crate::condition::{compile_detailed, CompiledCondition};
use crate::index::{PrefixIndex, PrefixIndexBuilder};
use crate::RequestView;

/// Result of selection for one plugin. Indices are positions in the slices given to
/// [`PluginTable::compile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectOutcome {
    NoSelector,
    NoRule { selector: usize },
    Matched { selector: usize, rule: RuleChoice },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleChoice {
    Rule(usize),
    /// The selector has `continued == false`: ShenYu's synthetic `default_rule`, whose handle the
    /// plugin derives from the selector.
    Default,
}

/// Below this many rules in a selector a plain loop beats a trie walk.
const RULE_INDEX_MIN: usize = 8;

/// A selector or a rule, as far as matching and scoring go.
#[derive(Debug)]
struct Entry {
    /// Position in the caller's slice.
    pos: usize,
    id: Box<str>,
    conditions: Vec<CompiledCondition>,
    or_mode: bool,
    /// A full-flow selector: matches without looking at its conditions.
    always: bool,
    /// Can never match (custom selector without conditions, or-mode rule without conditions).
    never: bool,
    /// ShenYu's tie-break score: the condition count in and-mode, 0 in or-mode.
    score: usize,
}

/// Why an entry did not match: the first failing condition, if one is to blame.
type EvalResult = Result<(), Option<usize>>;

impl Entry {
    fn eval(&self, req: &RequestView) -> EvalResult {
        if self.always {
            return Ok(());
        }
        if self.never {
            return Err(None);
        }
        if self.or_mode {
            if self.conditions.iter().any(|c| c.eval(req)) {
                Ok(())
            } else {
                Err(Some(0))
            }
        } else {
            match self.conditions.iter().position(|c| !c.eval(req)) {
                None => Ok(()),
                Some(i) => Err(Some(i)),
            }
        }
    }

    fn index_into(&self, b: &mut PrefixIndexBuilder, rank: u32) {
        if self.never {
            return;
        }
        if self.always || self.conditions.is_empty() {
            b.insert_fallback(rank);
            return;
        }
        if self.or_mode {
            let prefixes: Option<Vec<&str>> = self.conditions.iter().map(|c| c.indexable_prefix()).collect();
            match prefixes {
                Some(ps) => ps.into_iter().for_each(|p| b.insert(p, rank)),
                None => b.insert_fallback(rank),
            }
        } else {
            // Every condition must pass, so any one prefix is a valid key; the longest is the
            // most selective.
            match self.conditions.iter().filter_map(|c| c.indexable_prefix()).max_by_key(|p| p.len()) {
                Some(p) => b.insert(p, rank),
                None => b.insert_fallback(rank),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Selector,
    Rule,
}

/// Receives every evaluated candidate. `()` ignores them, for the request path.
trait Sink {
    /// Also evaluate (and record) the entries the prefix index ruled out, so an explanation can
    /// name their failing condition. False for the request path, where the branch compiles away.
    const WANTS_EXCLUDED: bool;
    fn record(&mut self, kind: Kind, entry: &Entry, result: EvalResult, req: &RequestView, indexed: bool);
}

impl Sink for () {
    const WANTS_EXCLUDED: bool = false;
    #[inline(always)]
    fn record(&mut self, _: Kind, _: &Entry, _: EvalResult, _: &RequestView, _: bool) {}
}

/// Entries in rank order, with an index when there are enough of them to need one.
#[derive(Debug)]
struct Group {
    entries: Vec<Entry>,
    index: Option<PrefixIndex>,
}

impl Group {
    fn new(entries: Vec<Entry>, indexed: bool) -> Group {
        let index = indexed.then(|| {
            let mut b = PrefixIndex::builder();
            for (rank, e) in entries.iter().enumerate() {
                e.index_into(&mut b, rank as u32);
            }
            b.build()
        });
        Group { entries, index }
    }

    /// Rank of the winner: highest score, then lowest rank.
    fn best<S: Sink>(&self, req: &RequestView, kind: Kind, sink: &mut S) -> Option<usize> {
        let mut cands: SmallVec<[u32; 16]> = SmallVec::new();
        match &self.index {
            Some(ix) => ix.candidates(req.path, &mut cands),
            None => cands.extend(0..self.entries.len() as u32),
        }
        let mut best: Option<(usize, usize)> = None;
        for &rank in &cands {
            let e = &self.entries[rank as usize];
            let result = e.eval(req);
            sink.record(kind, e, result, req, true);
            if result.is_ok() && !matches!(best, Some((score, _)) if score >= e.score) {
                best = Some((e.score, rank as usize));
            }
        }
        if S::WANTS_EXCLUDED && self.index.is_some() {
            for (rank, e) in self.entries.iter().enumerate() {
                if !cands.contains(&(rank as u32)) {
                    sink.record(kind, e, e.eval(req), req, false);
                }
            }
        }
        best.map(|(_, rank)| rank)
    }

    fn needs_body(&self) -> bool {
        self.entries.iter().any(|e| e.conditions.iter().any(CompiledCondition::needs_body))
    }
}

#[derive(Debug)]
struct SelectorMeta {
    continued: bool,
    rules: Group,
}

/// All selectors and rules of one plugin, compiled once per snapshot.
#[derive(Debug)]
pub struct PluginTable {
    selectors: Group,
    /// Parallel to `selectors.entries`.
    meta: Vec<SelectorMeta>,
    needs_body: bool,
    /// Rank of the selector at each position of the slice given to [`PluginTable::compile`]
    /// (`u32::MAX`: disabled), so logs and spans can name it without a copy of every id.
    selector_rank: Vec<u32>,
    /// (selector rank, index among its rules) of the rule at each position (`u32::MAX`: disabled).
    rule_at: Vec<(u32, u32)>,
}

fn rank_key(sort: Option<i64>, pos: usize) -> (bool, i64, usize) {
    (sort.is_none(), sort.unwrap_or(0), pos)
}

fn compile_conditions(
    conds: &[tigateway_model::Condition],
    owner: &str,
    list: &str,
    errs: &mut Vec<ValidationError>,
) -> Vec<CompiledCondition> {
    let mut out = Vec::with_capacity(conds.len());
    for (j, c) in conds.iter().enumerate() {
        match compile_detailed(c) {
            Ok(cc) => out.push(cc),
            Err(e) => errs.push(ValidationError::new(format!("{owner}.{list}[{j}].{}", e.field), e.message)),
        }
    }
    out
}

impl PluginTable {
    /// `selectors` and `rules` are everything of one plugin, disabled ones included (they are
    /// dropped here). Every problem is reported, each with a path naming the selector or rule id.
    pub fn compile(selectors: &[&Selector], rules: &[&Rule]) -> Result<PluginTable, Vec<ValidationError>> {
        let mut errs = Vec::new();

        let mut by_id: HashMap<&str, usize> = HashMap::new();
        for (pos, s) in selectors.iter().enumerate() {
            if by_id.insert(s.id.as_str(), pos).is_some() {
                errs.push(ValidationError::new(format!("selector {:?}.id", s.id), "duplicate selector id"));
            }
        }

        let mut sel_order: Vec<usize> = (0..selectors.len()).filter(|&p| selectors[p].enabled).collect();
        sel_order.sort_by_key(|&p| rank_key(selectors[p].sort, p));

        // Enabled rules per selector position, in rank order.
        let mut rules_of: HashMap<usize, Vec<usize>> = HashMap::new();
        for (pos, r) in rules.iter().enumerate() {
            if !r.enabled {
                continue;
            }
            match by_id.get(r.selector_id.as_str()) {
                None => errs.push(ValidationError::new(
                    format!("rule {:?}.selectorId", r.id),
                    format!("no selector with id {:?} in this plugin", r.selector_id),
                )),
                Some(&sp) if selectors[sp].enabled => rules_of.entry(sp).or_default().push(pos),
                Some(_) => {}
            }
        }

        let mut entries = Vec::with_capacity(sel_order.len());
        let mut meta = Vec::with_capacity(sel_order.len());
        for &sp in &sel_order {
            let s = selectors[sp];
            let owner = format!("selector {:?}", s.id);
            let conditions = compile_conditions(&s.condition_list, &owner, "conditionList", &mut errs);
            let or_mode = s.match_mode == MATCH_OR;
            let always = s.selector_type == SELECTOR_FULL;
            entries.push(Entry {
                pos: sp,
                id: s.id.as_str().into(),
                never: !always && conditions.is_empty(),
                score: if or_mode { 0 } else { conditions.len() },
                conditions,
                or_mode,
                always,
            });

            let mut rps = rules_of.remove(&sp).unwrap_or_default();
            rps.sort_by_key(|&p| rank_key(rules[p].sort, p));
            let mut rule_entries = Vec::with_capacity(rps.len());
            for rp in rps {
                let r = rules[rp];
                let owner = format!("rule {:?}", r.id);
                let conditions = compile_conditions(&r.condition_data_list, &owner, "conditionDataList", &mut errs);
                let or_mode = r.match_mode == MATCH_OR;
                rule_entries.push(Entry {
                    pos: rp,
                    id: r.id.as_str().into(),
                    never: or_mode && conditions.is_empty(),
                    score: if or_mode { 0 } else { conditions.len() },
                    conditions,
                    or_mode,
                    always: false,
                });
            }
            let indexed = rule_entries.len() >= RULE_INDEX_MIN;
            meta.push(SelectorMeta { continued: s.continued, rules: Group::new(rule_entries, indexed) });
        }

        if !errs.is_empty() {
            return Err(errs);
        }
        let selectors_in = selectors;
        let selectors = Group::new(entries, true);
        let needs_body = selectors.needs_body() || meta.iter().any(|m| m.rules.needs_body());
        let mut selector_rank = vec![u32::MAX; selectors_in.len()];
        for (rank, e) in selectors.entries.iter().enumerate() {
            selector_rank[e.pos] = rank as u32;
        }
        let mut rule_at = vec![(u32::MAX, u32::MAX); rules.len()];
        for (rank, m) in meta.iter().enumerate() {
            for (j, e) in m.rules.entries.iter().enumerate() {
                rule_at[e.pos] = (rank as u32, j as u32);
            }
        }
        Ok(PluginTable { selectors, meta, needs_body, selector_rank, rule_at })
    }

    /// Whether some condition reads the request body, so the caller must buffer it first.
    pub fn needs_body(&self) -> bool {
        self.needs_body
    }

    /// The id of the selector at `pos` (a position as in [`SelectOutcome`]).
    pub fn selector_id(&self, pos: usize) -> Option<&str> {
        let rank = *self.selector_rank.get(pos)?;
        self.selectors.entries.get(rank as usize).map(|e| &*e.id)
    }

    /// The id of the rule at `pos` (a position as in [`RuleChoice::Rule`]).
    pub fn rule_id(&self, pos: usize) -> Option<&str> {
        let (rank, j) = *self.rule_at.get(pos)?;
        self.meta.get(rank as usize)?.rules.entries.get(j as usize).map(|e| &*e.id)
    }

    /// Whether no enabled selector exists.
    pub fn is_empty(&self) -> bool {
        self.selectors.entries.is_empty()
    }

    pub fn select(&self, req: &RequestView) -> SelectOutcome {
        self.run(req, &mut ())
    }

    /// The same selection as [`PluginTable::select`], with every candidate it looked at.
    pub fn explain(&self, req: &RequestView) -> Explanation {
        let mut rec = Recorder::default();
        let outcome = self.run(req, &mut rec);
        Explanation { outcome, selectors: rec.selectors, rules: rec.rules }
    }

    fn run<S: Sink>(&self, req: &RequestView, sink: &mut S) -> SelectOutcome {
        let Some(rank) = self.selectors.best(req, Kind::Selector, sink) else {
            return SelectOutcome::NoSelector;
        };
        let sel = &self.selectors.entries[rank];
        let meta = &self.meta[rank];
        let selector = sel.pos;
        if !meta.continued {
            return SelectOutcome::Matched { selector, rule: RuleChoice::Default };
        }
        if sel.always {
            // ShenYu quirk: a full selector takes its last rule without checking its conditions.
            return match meta.rules.entries.last() {
                None => SelectOutcome::NoRule { selector },
                Some(r) => {
                    sink.record(Kind::Rule, r, Ok(()), req, true);
                    SelectOutcome::Matched { selector, rule: RuleChoice::Rule(r.pos) }
                }
            };
        }
        match meta.rules.best(req, Kind::Rule, sink) {
            None => SelectOutcome::NoRule { selector },
            Some(rr) => SelectOutcome::Matched { selector, rule: RuleChoice::Rule(meta.rules.entries[rr].pos) },
        }
    }
}

/// A condition that stopped a selector or rule from matching, with what was compared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedCondition {
    /// Position in the selector's `conditionList` / rule's `conditionDataList`. For or-mode,
    /// where all failed, the first one.
    pub index: usize,
    /// `paramType operator paramValue` (`paramType[paramName] ...` when there is a name).
    pub text: String,
    pub param_type: String,
    /// Empty when the param type has no name.
    pub param_name: String,
    pub operator: String,
    pub expected: String,
    /// The request's value (None: the request has none, e.g. a missing header).
    pub actual: Option<String>,
}

/// One selector or rule that selection evaluated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateTrace {
    /// Position in the slice given to [`PluginTable::compile`].
    pub index: usize,
    pub id: String,
    pub matched: bool,
    /// ShenYu's tie-break score (and-mode condition count, 0 in or-mode).
    pub score: usize,
    /// False when the prefix index ruled the entry out for this path without the data plane
    /// evaluating it; it is evaluated here only to name the failing condition.
    pub candidate: bool,
    /// `and` or `or`; `full` for a full-flow selector.
    pub mode: &'static str,
    /// For a non-match: the first failing condition, None when there is none to blame (e.g. an
    /// or-mode rule with no conditions, see `reason`).
    pub failed: Option<FailedCondition>,
    /// Every condition of an or-mode entry that failed (all of them, for a non-match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub or_failed: Vec<FailedCondition>,
    /// Why it did not match when no condition is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// What [`PluginTable::explain`] saw: candidates in evaluation (rank) order, then the entries the
/// prefix index excluded (`candidate: false`), and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub outcome: SelectOutcome,
    pub selectors: Vec<CandidateTrace>,
    /// Rules of the chosen selector (empty for the default rule).
    pub rules: Vec<CandidateTrace>,
}

#[derive(Default)]
struct Recorder {
    selectors: Vec<CandidateTrace>,
    rules: Vec<CandidateTrace>,
}

fn failed_condition(index: usize, c: &CompiledCondition, req: &RequestView) -> FailedCondition {
    FailedCondition {
        index,
        text: c.to_string(),
        param_type: c.param_type_name().to_string(),
        param_name: c.param_name().to_string(),
        operator: c.operator().to_string(),
        expected: c.expected().to_string(),
        actual: c.actual(req),
    }
}

impl Sink for Recorder {
    const WANTS_EXCLUDED: bool = true;

    fn record(&mut self, kind: Kind, e: &Entry, result: EvalResult, req: &RequestView, indexed: bool) {
        let failed = match result {
            Ok(()) | Err(None) => None,
            Err(Some(i)) => Some(failed_condition(i, &e.conditions[i], req)),
        };
        let or_failed = if e.or_mode && result.is_err() {
            e.conditions.iter().enumerate().map(|(i, c)| failed_condition(i, c, req)).collect()
        } else {
            Vec::new()
        };
        let reason = match result {
            Err(None) if e.conditions.is_empty() && kind == Kind::Selector => {
                Some("a custom selector without conditions never matches")
            }
            Err(None) => Some("an or-mode rule without conditions never matches"),
            _ => None,
        };
        let mode = if e.always {
            "full"
        } else if e.or_mode {
            "or"
        } else {
            "and"
        };
        let t = CandidateTrace {
            index: e.pos,
            id: e.id.to_string(),
            matched: result.is_ok(),
            score: e.score,
            candidate: indexed,
            mode,
            failed,
            or_failed,
            reason,
        };
        match kind {
            Kind::Selector => self.selectors.push(t),
            Kind::Rule => self.rules.push(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};
    use std::net::{IpAddr, Ipv4Addr};
    use tigateway_model::{Condition, MATCH_AND, SELECTOR_CUSTOM};

    fn req<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: &Method::GET,
            path,
            query: None,
            headers,
            host: "h",
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            body: None,
            content_type: None,
        }
    }

    fn uri(op: &str, v: &str) -> Condition {
        Condition::new("uri", op, None, v)
    }

    fn hdr(name: &str, v: &str) -> Condition {
        Condition::new("header", "=", Some(name), v)
    }

    fn sel(id: &str, sort: Option<i64>, mode: i32, conds: Vec<Condition>) -> Selector {
        Selector {
            id: id.into(),
            plugin_name: "divide".into(),
            match_mode: mode,
            selector_type: SELECTOR_CUSTOM,
            sort,
            enabled: true,
            continued: true,
            condition_list: conds,
            ..Default::default()
        }
    }

    fn full(id: &str, sort: Option<i64>) -> Selector {
        Selector { selector_type: SELECTOR_FULL, ..sel(id, sort, MATCH_AND, vec![]) }
    }

    fn rule(id: &str, selector: &str, sort: Option<i64>, mode: i32, conds: Vec<Condition>) -> Rule {
        Rule {
            id: id.into(),
            selector_id: selector.into(),
            plugin_name: "divide".into(),
            match_mode: mode,
            sort,
            enabled: true,
            condition_data_list: conds,
            ..Default::default()
        }
    }

    fn table(sels: &[Selector], rules: &[Rule]) -> PluginTable {
        let s: Vec<&Selector> = sels.iter().collect();
        let r: Vec<&Rule> = rules.iter().collect();
        PluginTable::compile(&s, &r).unwrap()
    }

    fn pick(t: &PluginTable, path: &str) -> SelectOutcome {
        t.select(&req(path, &HeaderMap::new()))
    }

    use RuleChoice::Default as Dflt;
    use SelectOutcome::*;

    #[test]
    fn higher_and_score_beats_lower_sort() {
        let sels = [
            sel("broad", Some(1), MATCH_AND, vec![uri("match", "/api/**")]),
            sel("narrow", Some(9), MATCH_AND, vec![uri("match", "/api/**"), uri("startsWith", "/api/v2/")]),
        ];
        let rules = [rule("r0", "broad", Some(1), MATCH_AND, vec![]), rule("r1", "narrow", Some(1), MATCH_AND, vec![])];
        let t = table(&sels, &rules);
        assert_eq!(pick(&t, "/api/v2/x"), Matched { selector: 1, rule: RuleChoice::Rule(1) });
        assert_eq!(pick(&t, "/api/v1/x"), Matched { selector: 0, rule: RuleChoice::Rule(0) });
        assert_eq!(pick(&t, "/other"), NoSelector);
    }

    #[test]
    fn or_mode_scores_zero_and_loses_to_and_mode() {
        let sels = [
            sel("or", Some(1), MATCH_OR, vec![uri("match", "/a/**"), uri("match", "/b/**")]),
            sel("and", Some(5), MATCH_AND, vec![uri("match", "/a/**")]),
        ];
        let t = table(&sels, &[]);
        assert_eq!(pick(&t, "/a/x"), NoRule { selector: 1 });
        assert_eq!(pick(&t, "/b/x"), NoRule { selector: 0 });
        assert_eq!(pick(&t, "/c/x"), NoSelector);
    }

    #[test]
    fn equal_scores_fall_back_to_sort_then_position_missing_sort_last() {
        let sels = [
            sel("none", None, MATCH_AND, vec![uri("match", "/**")]),
            sel("s5", Some(5), MATCH_AND, vec![uri("match", "/**")]),
            sel("s2a", Some(2), MATCH_AND, vec![uri("match", "/**")]),
            sel("s2b", Some(2), MATCH_AND, vec![uri("match", "/**")]),
        ];
        assert_eq!(pick(&table(&sels, &[]), "/x"), NoRule { selector: 2 });
        assert_eq!(pick(&table(&sels[..2], &[]), "/x"), NoRule { selector: 1 });
        assert_eq!(pick(&table(&sels[..1], &[]), "/x"), NoRule { selector: 0 });
    }

    #[test]
    fn continued_false_gives_default_rule() {
        let mut s = sel("s", Some(1), MATCH_AND, vec![uri("match", "/a/**")]);
        s.continued = false;
        let t = table(&[s], &[rule("r", "s", Some(1), MATCH_AND, vec![uri("=", "/a/x")])]);
        assert_eq!(pick(&t, "/a/x"), Matched { selector: 0, rule: Dflt });
        assert_eq!(pick(&t, "/a/y"), Matched { selector: 0, rule: Dflt });
    }

    #[test]
    fn full_selector_takes_last_rule_unchecked() {
        let rules = [
            rule("late", "f", Some(9), MATCH_AND, vec![uri("=", "/never")]),
            rule("early", "f", Some(1), MATCH_AND, vec![uri("match", "/**")]),
            Rule { enabled: false, ..rule("off", "f", Some(99), MATCH_AND, vec![]) },
        ];
        let t = table(&[full("f", Some(1))], &rules);
        assert_eq!(pick(&t, "/anything"), Matched { selector: 0, rule: RuleChoice::Rule(0) });
        let t = table(&[full("f", Some(1))], &[]);
        assert_eq!(pick(&t, "/anything"), NoRule { selector: 0 });
    }

    #[test]
    fn rule_scoring_and_modes() {
        let s = sel("s", Some(1), MATCH_AND, vec![uri("match", "/**")]);
        let rules = [
            rule("any", "s", Some(1), MATCH_AND, vec![]),
            rule("or-empty", "s", Some(0), MATCH_OR, vec![]),
            rule("two", "s", Some(5), MATCH_AND, vec![uri("match", "/x/**"), uri("endsWith", ".json")]),
            rule("or", "s", Some(0), MATCH_OR, vec![uri("=", "/y"), uri("=", "/z")]),
        ];
        let t = table(&[s], &rules);
        assert_eq!(pick(&t, "/x/a.json"), Matched { selector: 0, rule: RuleChoice::Rule(2) });
        // "or" has a lower sort but scores 0, as does nothing else that matches; "any" scores 0
        // too (and over no conditions) and sorts after "or".
        assert_eq!(pick(&t, "/y"), Matched { selector: 0, rule: RuleChoice::Rule(3) });
        assert_eq!(pick(&t, "/q"), Matched { selector: 0, rule: RuleChoice::Rule(0) });
        let only_or = table(
            &[sel("s", Some(1), MATCH_AND, vec![uri("match", "/**")])],
            &[rule("o", "s", None, MATCH_OR, vec![])],
        );
        assert_eq!(pick(&only_or, "/q"), NoRule { selector: 0 });
    }

    #[test]
    fn disabled_selectors_and_rules_are_ignored() {
        let mut off = sel("off", Some(0), MATCH_AND, vec![uri("match", "/**"), uri("match", "/a/**")]);
        off.enabled = false;
        let on = sel("on", Some(1), MATCH_AND, vec![uri("match", "/**")]);
        let rules = [
            rule("r-off-sel", "off", Some(1), MATCH_AND, vec![]),
            Rule { enabled: false, ..rule("r-off", "on", Some(0), MATCH_AND, vec![]) },
            rule("r-on", "on", Some(5), MATCH_AND, vec![]),
            // A bad condition on a disabled rule is not an error.
            Rule { enabled: false, ..rule("bad", "on", Some(0), MATCH_AND, vec![uri("regex", "(")]) },
        ];
        let t = table(&[off, on], &rules);
        assert_eq!(pick(&t, "/a/b"), Matched { selector: 1, rule: RuleChoice::Rule(2) });
    }

    #[test]
    fn custom_selector_without_conditions_never_matches() {
        let t = table(&[sel("empty", Some(0), MATCH_AND, vec![]), full("f", Some(5))], &[]);
        assert_eq!(pick(&t, "/a"), NoRule { selector: 1 });
    }

    #[test]
    fn header_only_selectors_are_fallback_candidates() {
        let sels = [
            sel("h", Some(1), MATCH_AND, vec![hdr("x-env", "canary")]),
            sel("p", Some(2), MATCH_AND, vec![uri("match", "/api/**")]),
        ];
        let t = table(&sels, &[]);
        let mut h = HeaderMap::new();
        h.insert("x-env", HeaderValue::from_static("canary"));
        assert_eq!(t.select(&req("/api/x", &h)), NoRule { selector: 0 });
        assert_eq!(pick(&t, "/api/x"), NoRule { selector: 1 });
    }

    #[test]
    fn errors_carry_paths_with_ids() {
        let sels = [sel("s1", Some(1), MATCH_AND, vec![uri("match", "/a"), uri("regex", "(")])];
        let rules = [
            rule("r1", "s1", Some(1), MATCH_AND, vec![Condition::new("header", "=", None, "x")]),
            rule("r2", "nope", Some(1), MATCH_AND, vec![]),
        ];
        let s: Vec<&Selector> = sels.iter().collect();
        let r: Vec<&Rule> = rules.iter().collect();
        let errs = PluginTable::compile(&s, &r).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&r#"selector "s1".conditionList[1].paramValue"#), "{paths:?}");
        assert!(paths.contains(&r#"rule "r1".conditionDataList[0].paramName"#), "{paths:?}");
        assert!(paths.contains(&r#"rule "r2".selectorId"#), "{paths:?}");
        assert_eq!(errs.len(), 3);
    }

    #[test]
    fn needs_body_reflects_post_conditions() {
        let plain = table(&[sel("s", None, MATCH_AND, vec![uri("match", "/**")])], &[]);
        assert!(!plain.needs_body());
        let post = table(
            &[sel("s", None, MATCH_AND, vec![uri("match", "/**")])],
            &[rule("r", "s", None, MATCH_AND, vec![Condition::new("post", "=", Some("a"), "b")])],
        );
        assert!(post.needs_body());
    }

    #[test]
    fn many_rules_use_an_index_and_still_score() {
        let s = sel("s", Some(1), MATCH_AND, vec![uri("match", "/**")]);
        let mut rules: Vec<Rule> = (0..20)
            .map(|i| rule(&format!("r{i}"), "s", Some(i), MATCH_AND, vec![uri("match", &format!("/p{i}/**"))]))
            .collect();
        rules.push(rule("deep", "s", Some(100), MATCH_AND, vec![uri("match", "/p3/**"), hdr("x", "1")]));
        rules.push(rule("catch", "s", Some(200), MATCH_AND, vec![]));
        let t = table(&[s], &rules);
        assert!(t.meta[0].rules.index.is_some());
        assert_eq!(pick(&t, "/p7/a"), Matched { selector: 0, rule: RuleChoice::Rule(7) });
        let mut h = HeaderMap::new();
        h.insert("x", HeaderValue::from_static("1"));
        assert_eq!(t.select(&req("/p3/a", &h)), Matched { selector: 0, rule: RuleChoice::Rule(20) });
        assert_eq!(pick(&t, "/zzz"), Matched { selector: 0, rule: RuleChoice::Rule(21) });
    }

    #[test]
    fn explain_lists_candidates_and_first_failing_condition() {
        let sels = [
            sel("a", Some(1), MATCH_AND, vec![uri("match", "/api/**"), hdr("x-env", "canary")]),
            sel("b", Some(2), MATCH_AND, vec![uri("match", "/api/**")]),
            sel("elsewhere", Some(0), MATCH_AND, vec![uri("match", "/admin/**")]),
        ];
        let rules = [
            rule("r", "b", Some(1), MATCH_AND, vec![uri("endsWith", ".json")]),
            rule("r2", "b", Some(2), MATCH_AND, vec![]),
        ];
        let t = table(&sels, &rules);
        let h = HeaderMap::new();
        let e = t.explain(&req("/api/x", &h));
        assert_eq!(e.outcome, Matched { selector: 1, rule: RuleChoice::Rule(1) });
        assert_eq!(e.outcome, t.select(&req("/api/x", &h)));
        let ids: Vec<(&str, bool)> = e.selectors.iter().map(|c| (c.id.as_str(), c.candidate)).collect();
        assert_eq!(ids, [("a", true), ("b", true), ("elsewhere", false)], "the /admin selector is not a candidate");
        let f = e.selectors[2].failed.as_ref().unwrap();
        assert_eq!(
            (f.operator.as_str(), f.expected.as_str(), f.actual.as_deref()),
            ("match", "/admin/**", Some("/api/x"))
        );
        assert!(!e.selectors[0].matched);
        let f = e.selectors[0].failed.as_ref().unwrap();
        assert_eq!((f.index, f.text.as_str()), (1, "header[x-env] = canary"));
        assert_eq!((f.param_type.as_str(), f.param_name.as_str(), f.operator.as_str()), ("header", "x-env", "="));
        assert_eq!((f.expected.as_str(), f.actual.as_deref()), ("canary", None));
        assert!(e.selectors[1].matched);
        assert_eq!(e.rules.len(), 2);
        assert_eq!(e.rules[0].failed.as_ref().map(|f| f.text.as_str()), Some("uri endsWith .json"));
        assert!(e.rules[1].matched);
        assert_eq!((t.selector_id(1), t.selector_id(2), t.selector_id(9)), (Some("b"), Some("elsewhere"), None));
        assert_eq!((t.rule_id(0), t.rule_id(1), t.rule_id(2)), (Some("r"), Some("r2"), None));
    }

    // ---- randomized comparison with a direct, unindexed reading of the ShenYu algorithm ----

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    // Words that are prefixes of each other, so segment-boundary mistakes show up.
    const WORDS: [&str; 4] = ["a", "ab", "abc", "b"];

    fn rand_path(rng: &mut Rng) -> String {
        let n = 1 + rng.next(4);
        let mut p: String = (0..n).map(|_| format!("/{}", WORDS[rng.next(WORDS.len())])).collect();
        if rng.next(6) == 0 {
            p.push('/');
        }
        p
    }

    fn rand_cond(rng: &mut Rng) -> Condition {
        let base = rand_path(rng);
        let short: String = base.trim_end_matches('/').rsplit_once('/').map_or(String::new(), |(h, _)| h.to_string());
        match rng.next(10) {
            0 => uri("match", &format!("{short}/**")),
            1 => uri("match", &format!("{short}/*")),
            2 => uri("=", &base),
            3 => uri("startsWith", &base[..base.len().min(1 + rng.next(base.len()))]),
            4 => uri("pathPattern", &format!("{short}/{{x}}")),
            5 => uri("regex", &format!("{short}/.*")),
            6 => uri("exclude", &format!("{short}/**")),
            7 => hdr("x-k", WORDS[rng.next(2)]),
            8 => uri("endsWith", WORDS[rng.next(WORDS.len())]),
            _ => uri("match", if rng.next(3) == 0 { "/**" } else { "/a/**" }),
        }
    }

    /// The ShenYu algorithm read directly: every enabled selector, in sort order, no index.
    struct Naive<'a> {
        sels: &'a [Selector],
        rules: &'a [Rule],
        sel_conds: Vec<Vec<CompiledCondition>>,
        rule_conds: Vec<Vec<CompiledCondition>>,
    }

    impl<'a> Naive<'a> {
        fn new(sels: &'a [Selector], rules: &'a [Rule]) -> Self {
            let comp = |cs: &[Condition]| cs.iter().map(|c| crate::condition::compile(c).unwrap()).collect::<Vec<_>>();
            Naive {
                sels,
                rules,
                sel_conds: sels.iter().map(|s| comp(&s.condition_list)).collect(),
                rule_conds: rules.iter().map(|r| comp(&r.condition_data_list)).collect(),
            }
        }

        fn select(&self, r: &RequestView) -> SelectOutcome {
            let (sels, rules) = (self.sels, self.rules);
            let passes = |conds: &[CompiledCondition], or: bool| {
                if or {
                    conds.iter().any(|c| c.eval(r))
                } else {
                    conds.iter().all(|c| c.eval(r))
                }
            };
            let mut order: Vec<usize> = (0..sels.len()).filter(|&i| sels[i].enabled).collect();
            order.sort_by_key(|&i| rank_key(sels[i].sort, i));
            let matched: Vec<usize> = order
                .into_iter()
                .filter(|&i| {
                    let s = &sels[i];
                    s.selector_type == SELECTOR_FULL
                        || (!s.condition_list.is_empty() && passes(&self.sel_conds[i], s.match_mode == MATCH_OR))
                })
                .collect();
            let score = |mode: i32, n: usize| if mode == MATCH_OR { 0 } else { n };
            let Some(top) = matched.iter().map(|&i| score(sels[i].match_mode, sels[i].condition_list.len())).max()
            else {
                return NoSelector;
            };
            let si =
                *matched.iter().find(|&&i| score(sels[i].match_mode, sels[i].condition_list.len()) == top).unwrap();
            let s = &sels[si];
            if !s.continued {
                return Matched { selector: si, rule: Dflt };
            }
            let mut rs: Vec<usize> =
                (0..rules.len()).filter(|&i| rules[i].enabled && rules[i].selector_id == s.id).collect();
            rs.sort_by_key(|&i| rank_key(rules[i].sort, i));
            if s.selector_type == SELECTOR_FULL {
                return rs
                    .last()
                    .map_or(NoRule { selector: si }, |&ri| Matched { selector: si, rule: RuleChoice::Rule(ri) });
            }
            let ok: Vec<usize> =
                rs.into_iter().filter(|&i| passes(&self.rule_conds[i], rules[i].match_mode == MATCH_OR)).collect();
            let Some(top) = ok.iter().map(|&i| score(rules[i].match_mode, rules[i].condition_data_list.len())).max()
            else {
                return NoRule { selector: si };
            };
            let ri =
                *ok.iter().find(|&&i| score(rules[i].match_mode, rules[i].condition_data_list.len()) == top).unwrap();
            Matched { selector: si, rule: RuleChoice::Rule(ri) }
        }
    }

    #[test]
    fn indexed_selection_equals_linear_scan() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut seen = [0usize; 4];
        let (mut candidates, mut evaluated) = (0, 0);
        for round in 0..8 {
            // Small tables leave many paths without a selector; large ones give rich overlaps.
            let small = round % 2 == 0;
            let n_sel = if small { 5 + rng.next(20) } else { 100 + rng.next(200) };
            let mut sels = Vec::new();
            for i in 0..n_sel {
                let n_cond = rng.next(4);
                let conds = (0..n_cond).map(|_| rand_cond(&mut rng)).collect();
                let mut s = sel(
                    &format!("s{i}"),
                    if rng.next(8) == 0 { None } else { Some(rng.next(20) as i64) },
                    rng.next(2) as i32,
                    conds,
                );
                if !small && rng.next(25) == 0 {
                    s.selector_type = SELECTOR_FULL;
                }
                s.enabled = rng.next(10) != 0;
                s.continued = rng.next(10) != 0;
                sels.push(s);
            }
            let mut rules = Vec::new();
            for i in 0..n_sel * 2 {
                let n_cond = rng.next(3);
                let conds = (0..n_cond).map(|_| rand_cond(&mut rng)).collect();
                // Some selectors get many rules, to exercise the rule index.
                let target = if rng.next(3) == 0 { 0 } else { rng.next(n_sel) };
                let mut r = rule(
                    &format!("r{i}"),
                    &format!("s{target}"),
                    if rng.next(8) == 0 { None } else { Some(rng.next(10) as i64) },
                    rng.next(2) as i32,
                    conds,
                );
                r.enabled = rng.next(10) != 0;
                rules.push(r);
            }
            let t = table(&sels, &rules);
            let naive = Naive::new(&sels, &rules);
            let enabled = sels.iter().filter(|s| s.enabled).count();
            for _ in 0..300 {
                let path = rand_path(&mut rng);
                let mut h = HeaderMap::new();
                if rng.next(2) == 0 {
                    h.insert("x-k", HeaderValue::from_static(WORDS[rng.next(2)]));
                }
                let r = req(&path, &h);
                let want = naive.select(&r);
                assert_eq!(t.select(&r), want, "round {round}, path {path}");
                let e = t.explain(&r);
                assert_eq!(e.outcome, want);
                seen[match want {
                    NoSelector => 0,
                    NoRule { .. } => 1,
                    Matched { rule: Dflt, .. } => 2,
                    Matched { .. } => 3,
                }] += 1;
                candidates += e.selectors.iter().filter(|c| c.candidate).count();
                assert_eq!(e.selectors.len(), enabled, "explain accounts for every enabled selector");
                evaluated += enabled;
            }
        }
        // Every kind of outcome was exercised, and the index really narrowed the candidates.
        assert!(seen.iter().all(|&n| n > 20), "outcome mix {seen:?}");
        assert!(candidates * 2 < evaluated, "{candidates} candidates for {evaluated} enabled selectors");
    }
}

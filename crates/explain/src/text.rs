//! The human-readable form of an [`Explanation`] (the CLI's default output).

use std::fmt::Write as _;

use tigateway_matcher::select::{CandidateTrace, FailedCondition};

use crate::{Explanation, StepResult};

fn actual(a: Option<&str>) -> String {
    match a {
        Some(v) => format!("{v:?}"),
        None => "nothing (absent)".to_string(),
    }
}

fn condition_line(f: &FailedCondition) -> String {
    format!("condition #{} `{}` failed: request has {}", f.index, f.text, actual(f.actual.as_deref()))
}

fn candidate_line(out: &mut String, what: &str, c: &CandidateTrace) {
    let where_ = if c.candidate { "" } else { ", ruled out by its path prefix" };
    let _ = write!(out, "      {what} {:?} ({} mode, score {}{where_}): ", c.id, c.mode, c.score);
    if c.matched {
        let _ = writeln!(out, "matched");
        return;
    }
    match (&c.failed, c.reason) {
        (_, Some(reason)) => {
            let _ = writeln!(out, "{reason}");
        }
        (Some(_), None) if c.or_failed.len() > 1 => {
            let _ = writeln!(out, "none of its or-conditions held");
            for f in &c.or_failed {
                let _ = writeln!(out, "        {}", condition_line(f));
            }
        }
        (Some(f), None) => {
            let _ = writeln!(out, "{}", condition_line(f));
        }
        (None, None) => {
            let _ = writeln!(out, "did not match");
        }
    }
}

/// Renders an explanation as indented text, one plugin per block, failing conditions named.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    let r = &e.request;
    let q = r.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "request: {} {}{q}  host={:?}  client={}{}",
        r.method,
        r.path,
        r.host,
        r.client_ip,
        if r.upgrade { "  (websocket upgrade)" } else { "" }
    );
    let _ = writeln!(out, "plugins, in chain order:");
    for p in &e.plugins {
        let state = match p.result {
            StepResult::Disabled => "disabled",
            StepResult::NoSelector => "no selector",
            StepResult::NoRule => "no rule",
            StepResult::NoRoute => "no route",
            StepResult::Skipped => "skipped",
            StepResult::Applied => "applied",
            StepResult::Terminal => "TERMINAL",
            StepResult::ResponsePhase => "response phase",
            StepResult::NotReached => "not reached",
        };
        let _ = writeln!(out, "  [{:>4}] {:<15} {:<14} {}", p.order, p.name, state, p.detail);
        for c in &p.selectors {
            candidate_line(&mut out, "selector", c);
        }
        for c in &p.rules {
            candidate_line(&mut out, "rule", c);
        }
        if let Some(rx) = &p.routes {
            for rt in &rx.routes {
                let where_ = if rt.candidate { "" } else { ", ruled out by its Path prefix" };
                let _ = write!(out, "      route {:?} (order {}, -> {}{where_}): ", rt.id, rt.order, rt.uri);
                match &rt.failed {
                    None => {
                        let _ = writeln!(out, "matched");
                    }
                    Some(f) => {
                        let _ = writeln!(
                            out,
                            "predicate #{} `{}` failed: request has {}",
                            f.index,
                            f.text,
                            actual(f.actual.as_deref())
                        );
                    }
                }
            }
        }
    }
    let o = &e.outcome;
    let status = o.status.map(|s| format!(" [{s}]")).unwrap_or_default();
    let _ = writeln!(out, "outcome:{status} {}", o.message);
    for n in &e.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

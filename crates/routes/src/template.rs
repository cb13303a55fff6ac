//! URI template variables (`{segment}`) in filter arguments, expanded from what `Path=` and
//! `Host=` captured.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// What a path segment value must have escaped when a template puts it into a path (Spring's
/// `UriTemplate` encodes variables; `/` stays, so a `{*rest}` capture keeps its structure).
const PATH_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// `{name}` and `{name:regex}` are variables; a `{` without a closing `}` is literal text.
    pub(crate) fn parse(s: &str) -> Template {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                break;
            };
            lit.push_str(&rest[..open]);
            let inner = &rest[open + 1..close];
            let name = inner.split_once(':').map(|(n, _)| n).unwrap_or(inner);
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(name.trim().to_string()));
            rest = &rest[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Template { parts }
    }

    pub(crate) fn var_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Expands variables; the latest capture of a name wins (Host after Path, as SCG merges them).
    /// `encode_for_path` escapes values the way a path template must; header values stay raw.
    pub(crate) fn expand<'a>(&'a self, vars: &[(String, String)], encode_for_path: bool) -> Cow<'a, str> {
        if let [Part::Lit(l)] = self.parts.as_slice() {
            return Cow::Borrowed(l);
        }
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(name) => {
                    let v = vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
                    if encode_for_path {
                        out.extend(utf8_percent_encode(v, PATH_VALUE));
                    } else {
                        out.push_str(v);
                    }
                }
            }
        }
        Cow::Owned(out)
    }
}

/// Names of the variables a Path/Host pattern captures (`{v}`, `{v:re}`, `{*v}`).
pub(crate) fn pattern_vars(pattern: &str) -> Vec<String> {
    Template::parse(pattern).var_names().map(|v| v.trim_start_matches('*').to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn expands_latest_capture() {
        let t = Template::parse("bar-{segment}-{sub:[a-z]+}");
        assert_eq!(t.var_names().collect::<Vec<_>>(), vec!["segment", "sub"]);
        let v = vars(&[("segment", "1"), ("sub", "www"), ("segment", "2")]);
        assert_eq!(t.expand(&v, false), "bar-2-www");
    }

    #[test]
    fn literal_and_unclosed_braces() {
        let t = Template::parse("plain");
        assert!(matches!(t.expand(&[], false), Cow::Borrowed("plain")));
        assert_eq!(Template::parse("a{b").expand(&[], false), "a{b");
        assert_eq!(Template::parse("{x}").expand(&[], false), "");
    }

    #[test]
    fn path_expansion_escapes_values() {
        let t = Template::parse("/new/{seg}");
        assert_eq!(t.expand(&vars(&[("seg", "a b/c?d")]), true), "/new/a%20b/c%3Fd");
        assert_eq!(t.expand(&vars(&[("seg", "a b")]), false), "/new/a b");
    }

    #[test]
    fn names_from_patterns() {
        assert_eq!(pattern_vars("/red/{segment}/{*rest}"), vec!["segment", "rest"]);
        assert_eq!(pattern_vars("{sub:[a-z]+}.example.org"), vec!["sub"]);
        assert!(pattern_vars("/api/**").is_empty());
    }
}

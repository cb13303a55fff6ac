//! SCG `Host=` patterns: Spring `AntPathMatcher` with `.` as the separator.
//!
//! The shared Ant matcher splits on `/` and extracts no variables, while `Host={sub}.example.org`
//! must feed `{sub}` to later filters, so hosts get this small matcher of their own. Host names
//! compare case-insensitively (DNS does; Spring's matcher would not, but a browser never sends
//! upper case anyway).

use regex::Regex;
use smallvec::SmallVec;

#[derive(Debug, Clone)]
enum Tok {
    /// `**`: any number of labels, including none.
    DoubleStar,
    Literal(String),
    /// A label with `*`, `?` or `{var}`; one capture group per variable, in order.
    Glob {
        re: Regex,
        vars: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct HostPattern {
    toks: Vec<Tok>,
    /// SCG matches against the whole Host header, port included, so a pattern naming a port
    /// (`*.example.org:8080`) only makes sense against host:port.
    with_port: bool,
}

impl HostPattern {
    pub(crate) fn parse(p: &str) -> Result<HostPattern, String> {
        let mut toks = Vec::new();
        for label in p.split('.').filter(|l| !l.is_empty()) {
            if label == "**" {
                toks.push(Tok::DoubleStar);
            } else if !label.contains(['*', '?', '{']) {
                toks.push(Tok::Literal(label.to_ascii_lowercase()));
            } else {
                toks.push(parse_glob(label).map_err(|e| format!("bad host pattern {p:?}: {e}"))?);
            }
        }
        if toks.is_empty() {
            return Err(format!("empty host pattern {p:?}"));
        }
        Ok(HostPattern { toks, with_port: p.contains(':') })
    }

    pub(crate) fn wants_port(&self) -> bool {
        self.with_port
    }

    /// Whether `host` matches; variables are appended to `vars` only on a match.
    pub(crate) fn matches(&self, host: &str, vars: &mut Vec<(String, String)>) -> bool {
        let labels: SmallVec<[&str; 8]> = host.split('.').filter(|l| !l.is_empty()).collect();
        let start = vars.len();
        let ok = self.walk(0, &labels, vars);
        if !ok {
            vars.truncate(start);
        }
        ok
    }

    fn walk(&self, pi: usize, labels: &[&str], vars: &mut Vec<(String, String)>) -> bool {
        let Some(tok) = self.toks.get(pi) else {
            return labels.is_empty();
        };
        match tok {
            Tok::DoubleStar => {
                for skip in 0..=labels.len() {
                    let mark = vars.len();
                    if self.walk(pi + 1, &labels[skip..], vars) {
                        return true;
                    }
                    vars.truncate(mark);
                }
                false
            }
            Tok::Literal(l) => match labels.first() {
                Some(h) if h.eq_ignore_ascii_case(l) => self.walk(pi + 1, &labels[1..], vars),
                _ => false,
            },
            Tok::Glob { re, vars: names } => {
                let Some(h) = labels.first() else { return false };
                let Some(caps) = re.captures(h) else { return false };
                let mark = vars.len();
                for (i, name) in names.iter().enumerate() {
                    let v = caps.get(i + 1).map(|m| m.as_str()).unwrap_or("");
                    vars.push((name.clone(), v.to_string()));
                }
                if self.walk(pi + 1, &labels[1..], vars) {
                    return true;
                }
                vars.truncate(mark);
                false
            }
        }
    }
}

fn parse_glob(label: &str) -> Result<Tok, String> {
    let mut re = String::from("(?i)^");
    let mut vars = Vec::new();
    let mut chars = label.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '{' => {
                let mut depth = 1;
                let mut end = None;
                for (j, d) in chars.by_ref() {
                    match d {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| format!("unclosed '{{' in {label:?}"))?;
                let inner = &label[i + 1..end];
                let (name, custom) = match inner.split_once(':') {
                    Some((n, r)) => (n, Some(r)),
                    None => (inner, None),
                };
                if name.is_empty() {
                    return Err(format!("empty variable name in {label:?}"));
                }
                re.push('(');
                re.push_str(custom.unwrap_or(".*"));
                re.push(')');
                vars.push(name.to_string());
            }
            other => re.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    let compiled = Regex::new(&re).map_err(|e| e.to_string())?;
    if compiled.captures_len() - 1 != vars.len() {
        return Err(format!("the regex in {label:?} has capturing groups; use non-capturing groups (?:...)"));
    }
    Ok(Tok::Glob { re: compiled, vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, h: &str) -> Option<Vec<(String, String)>> {
        let mut v = Vec::new();
        HostPattern::parse(p).unwrap().matches(h, &mut v).then_some(v)
    }

    #[test]
    fn double_star_spans_labels() {
        assert!(m("**.somehost.org", "www.somehost.org").is_some());
        assert!(m("**.somehost.org", "a.b.somehost.org").is_some());
        assert!(m("**.somehost.org", "somehost.org").is_some());
        assert!(m("**.somehost.org", "somehost.org.evil.com").is_none());
        assert!(m("**.somehost.org", "www.anotherhost.org").is_none());
        assert!(m("a.**.z", "a.b.c.z").is_some());
    }

    #[test]
    fn single_star_and_question_stay_in_one_label() {
        assert!(m("*.example.org", "api.example.org").is_some());
        assert!(m("*.example.org", "a.b.example.org").is_none());
        assert!(m("ap?.example.org", "api.example.org").is_some());
        assert!(m("ap?.example.org", "apix.example.org").is_none());
        assert!(m("api-*.example.org", "api-v2.example.org").is_some());
    }

    #[test]
    fn variables_are_captured() {
        assert_eq!(m("{sub}.myhost.org", "www.myhost.org").unwrap(), vec![("sub".to_string(), "www".to_string())]);
        assert_eq!(
            m("{sub:[a-z]+}-{env}.x.org", "api-prod.x.org").unwrap(),
            vec![("sub".into(), "api".into()), ("env".into(), "prod".into())]
        );
        assert!(m("{sub:[0-9]+}.x.org", "api.x.org").is_none());
        assert!(HostPattern::parse("{a:(x|y)}.org").is_err());
        assert!(HostPattern::parse("{a.org").is_err());
    }

    #[test]
    fn case_insensitive_and_port_aware() {
        assert!(m("WWW.Example.org", "www.example.org").is_some());
        let p = HostPattern::parse("*.example.org:8080").unwrap();
        assert!(p.wants_port());
        assert!(p.matches("a.example.org:8080", &mut Vec::new()));
        assert!(!p.matches("a.example.org:9090", &mut Vec::new()));
        assert!(!HostPattern::parse("example.org").unwrap().wants_port());
    }
}

//! Route predicates compiled once per snapshot and evaluated against a [`RequestView`].

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use regex::Regex;
use tigateway_matcher::path::PathPattern;
use tigateway_matcher::RequestView;
use tigateway_model::spring::{full_match_regex, Predicate};

use crate::host::HostPattern;

#[derive(Debug, Clone)]
pub(crate) enum CompiledPredicate {
    After(DateTime<Utc>),
    Before(DateTime<Utc>),
    Between(DateTime<Utc>, DateTime<Utc>),
    Cookie {
        name: String,
        re: Regex,
    },
    Header {
        name: http::HeaderName,
        re: Option<Regex>,
    },
    Host(Vec<HostPattern>),
    Method(Vec<http::Method>),
    Path(Vec<PathPattern>),
    Query {
        param: String,
        re: Option<Regex>,
    },
    RemoteAddr(Vec<IpNet>),
    XForwardedRemoteAddr {
        sources: Vec<IpNet>,
        max_trusted_index: u32,
    },
    /// Index of the route's weight group in the table.
    Weight {
        group: usize,
    },
}

/// What evaluation needs beyond the request: the clock and the per-request weight choice.
pub(crate) struct EvalCtx<'r> {
    pub(crate) now: DateTime<Utc>,
    /// For group g, the position (in the table) of the route the weights chose this request.
    pub(crate) chosen: &'r mut dyn FnMut(usize) -> Option<u32>,
    /// Position of the route being evaluated.
    pub(crate) route: u32,
}

impl CompiledPredicate {
    /// `group_of` maps a weight group name to its index (assigned by the table).
    pub(crate) fn compile(p: &Predicate, group_of: &mut dyn FnMut(&str) -> usize) -> Result<CompiledPredicate, String> {
        Ok(match p {
            Predicate::After(t) => CompiledPredicate::After(t.to_utc()),
            Predicate::Before(t) => CompiledPredicate::Before(t.to_utc()),
            Predicate::Between(a, b) => CompiledPredicate::Between(a.to_utc(), b.to_utc()),
            Predicate::Cookie { name, regexp } => {
                CompiledPredicate::Cookie { name: name.clone(), re: full_match_regex(regexp)? }
            }
            Predicate::Header { header, regexp } => CompiledPredicate::Header {
                name: http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("bad header name {header:?}"))?,
                re: regexp.as_deref().map(full_match_regex).transpose()?,
            },
            Predicate::Host { patterns } => {
                CompiledPredicate::Host(patterns.iter().map(|p| HostPattern::parse(p)).collect::<Result<_, _>>()?)
            }
            Predicate::Method { methods } => CompiledPredicate::Method(methods.clone()),
            Predicate::Path { patterns, match_trailing_slash } => CompiledPredicate::Path(
                patterns
                    .iter()
                    .map(|p| PathPattern::parse(p).map(|pp| pp.with_trailing_slash(*match_trailing_slash)))
                    .collect::<Result<_, _>>()?,
            ),
            Predicate::Query { param, regexp } => CompiledPredicate::Query {
                param: param.clone(),
                re: regexp.as_deref().map(full_match_regex).transpose()?,
            },
            Predicate::RemoteAddr { sources } => CompiledPredicate::RemoteAddr(sources.clone()),
            Predicate::XForwardedRemoteAddr { sources, max_trusted_index } => CompiledPredicate::XForwardedRemoteAddr {
                sources: sources.clone(),
                max_trusted_index: *max_trusted_index,
            },
            Predicate::Weight { group, .. } => CompiledPredicate::Weight { group: group_of(group) },
        })
    }

    pub(crate) fn uses_clock(&self) -> bool {
        matches!(self, CompiledPredicate::After(_) | CompiledPredicate::Before(_) | CompiledPredicate::Between(..))
    }

    /// Evaluates against `req`; URI template variables of a match are appended to `vars`.
    pub(crate) fn test(&self, req: &RequestView<'_>, ctx: &mut EvalCtx<'_>, vars: &mut Vec<(String, String)>) -> bool {
        match self {
            CompiledPredicate::After(t) => ctx.now > *t,
            CompiledPredicate::Before(t) => ctx.now < *t,
            CompiledPredicate::Between(a, b) => ctx.now > *a && ctx.now < *b,
            CompiledPredicate::Cookie { name, re } => cookies(req.headers).any(|(n, v)| n == name && re.is_match(v)),
            CompiledPredicate::Header { name, re } => {
                let mut values = req.headers.get_all(name).iter().peekable();
                match re {
                    None => values.peek().is_some(),
                    Some(re) => values.any(|v| match v.to_str() {
                        Ok(s) => header_list_values(s).any(|item| re.is_match(&item)),
                        Err(_) => false,
                    }),
                }
            }
            CompiledPredicate::Host(patterns) => {
                let with_port = req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(req.host);
                patterns.iter().any(|p| p.matches(if p.wants_port() { with_port } else { req.host }, vars))
            }
            CompiledPredicate::Method(methods) => methods.contains(req.method),
            CompiledPredicate::Path(patterns) => {
                // The first pattern that matches supplies the variables, as in SCG.
                for p in patterns {
                    if let Some(caps) = p.captures(req.path) {
                        vars.extend(caps);
                        return true;
                    }
                }
                false
            }
            CompiledPredicate::Query { param, re } => {
                let mut values = query_pairs(req.query.unwrap_or("")).filter(|(n, _)| n == param).map(|(_, v)| v);
                match re {
                    None => values.next().is_some(),
                    Some(re) => values.any(|v| v.is_some_and(|v| re.is_match(&v))),
                }
            }
            CompiledPredicate::RemoteAddr(sources) => sources.iter().any(|n| n.contains(&req.client_ip)),
            CompiledPredicate::XForwardedRemoteAddr { sources, max_trusted_index } => {
                match x_forwarded_address(req.headers, *max_trusted_index) {
                    XffAddress::Ip(ip) => sources.iter().any(|n| n.contains(&ip)),
                    XffAddress::Unparsable => false,
                    XffAddress::Absent => sources.iter().any(|n| n.contains(&req.peer_ip)),
                }
            }
            CompiledPredicate::Weight { group } => (ctx.chosen)(*group) == Some(ctx.route),
        }
    }

    /// What the request offered this predicate, for explanations (None: nothing, e.g. no such
    /// header). Several values (repeated headers, cookies, query parameters) are joined with `, `.
    pub(crate) fn actual(&self, req: &RequestView<'_>, ctx: &mut EvalCtx<'_>) -> Option<String> {
        let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(", "));
        match self {
            CompiledPredicate::After(_) | CompiledPredicate::Before(_) | CompiledPredicate::Between(..) => {
                Some(ctx.now.to_rfc3339())
            }
            CompiledPredicate::Cookie { name, .. } => {
                join(cookies(req.headers).filter(|(n, _)| n == name).map(|(_, v)| v.to_string()).collect())
            }
            CompiledPredicate::Header { name, .. } => join(
                req.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect(),
            ),
            CompiledPredicate::Host(_) => {
                Some(req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(req.host).to_string())
            }
            CompiledPredicate::Method(_) => Some(req.method.to_string()),
            CompiledPredicate::Path(_) => Some(req.path.to_string()),
            CompiledPredicate::Query { param, .. } => join(
                query_pairs(req.query.unwrap_or(""))
                    .filter(|(n, _)| n == param)
                    .map(|(_, v)| v.map(Cow::into_owned).unwrap_or_default())
                    .collect(),
            ),
            CompiledPredicate::RemoteAddr(_) => Some(req.client_ip.to_string()),
            CompiledPredicate::XForwardedRemoteAddr { max_trusted_index, .. } => {
                match x_forwarded_address(req.headers, *max_trusted_index) {
                    XffAddress::Ip(ip) => Some(ip.to_string()),
                    XffAddress::Unparsable => Some("(unparsable X-Forwarded-For)".to_string()),
                    XffAddress::Absent => Some(req.peer_ip.to_string()),
                }
            }
            CompiledPredicate::Weight { group } => Some(match (ctx.chosen)(*group) {
                Some(r) => format!("this request's weight draw chose the route at evaluation position {r}"),
                None => "no route of the group was chosen".to_string(),
            }),
        }
    }

    /// Literal prefixes for the route index, if this is a Path predicate.
    pub(crate) fn path_prefixes(&self) -> Option<impl Iterator<Item = &str>> {
        match self {
            CompiledPredicate::Path(patterns) => Some(patterns.iter().map(|p| p.literal_prefix())),
            _ => None,
        }
    }
}

/// `name=value` pairs of every Cookie header; quoted values are unquoted as Netty's lax decoder does.
fn cookies(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).filter_map(
        |pair| {
            let (n, v) = pair.split_once('=')?;
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
            Some((n.trim(), v))
        },
    )
}

/// Splits a header value into its comma-separated items the way Spring's
/// `HttpHeaders.getValuesAsList` does: commas inside double quotes do not split, quotes are
/// removed, items are trimmed.
pub(crate) fn header_list_values(s: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    items.push(&s[start..]);
    items.into_iter().map(|item| {
        let t = item.trim();
        match t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            Some(inner) if inner.contains('\\') => {
                let mut out = String::with_capacity(inner.len());
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
            Some(inner) => Cow::Borrowed(inner),
            None => Cow::Borrowed(t),
        }
    })
}

/// Decoded query parameters; the value is `None` for `?a` (no `=`), as Spring records it.
pub(crate) fn query_pairs(q: &str) -> impl Iterator<Item = (Cow<'_, str>, Option<Cow<'_, str>>)> {
    q.split('&').filter(|p| !p.is_empty()).map(|p| match p.split_once('=') {
        Some((n, v)) => (form_decode(n), Some(form_decode(v))),
        None => (form_decode(p), None),
    })
}

pub(crate) fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    Cow::Owned(percent_encoding::percent_decode_str(&plus).decode_utf8_lossy().into_owned())
}

enum XffAddress {
    Ip(IpAddr),
    Unparsable,
    Absent,
}

/// SCG's `XForwardedRemoteAddressResolver`: several X-Forwarded-For headers are distrusted
/// altogether (fall back to the peer), otherwise the `max_trusted_index`-th entry from the right,
/// or the leftmost when the list is shorter.
fn x_forwarded_address(headers: &http::HeaderMap, max_trusted_index: u32) -> XffAddress {
    let mut all = headers.get_all("x-forwarded-for").iter();
    let (Some(first), None) = (all.next(), all.next()) else {
        return XffAddress::Absent;
    };
    let Ok(text) = first.to_str() else {
        return XffAddress::Unparsable;
    };
    let items: smallvec::SmallVec<[&str; 8]> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return XffAddress::Absent;
    }
    let idx = items.len().saturating_sub(max_trusted_index as usize);
    let raw = items[idx];
    let raw = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
    raw.parse::<IpAddr>().map(XffAddress::Ip).unwrap_or(XffAddress::Unparsable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_items_follow_spring_tokenizing() {
        let v: Vec<_> = header_list_values(r#"a, "b,c" , "d\"e",,f"#).collect();
        assert_eq!(v, vec!["a", "b,c", "d\"e", "", "f"]);
        assert_eq!(header_list_values("single").collect::<Vec<_>>(), vec!["single"]);
    }

    #[test]
    fn query_pairs_decode_and_keep_absent_values() {
        let v: Vec<_> = query_pairs("a=1&b&c=&d=x+y%21&&").collect();
        assert_eq!(v[0], (Cow::Borrowed("a"), Some(Cow::Borrowed("1"))));
        assert_eq!(v[1], (Cow::Borrowed("b"), None));
        assert_eq!(v[2], (Cow::Borrowed("c"), Some(Cow::Borrowed(""))));
        assert_eq!(v[3].1.as_deref(), Some("x y!"));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn xff_resolution() {
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "0.0.0.1, 0.0.0.2, 0.0.0.3".parse().unwrap());
        let ip = |i| match x_forwarded_address(&h, i) {
            XffAddress::Ip(ip) => ip.to_string(),
            _ => "none".into(),
        };
        assert_eq!(
            (ip(1), ip(2), ip(3), ip(4)),
            ("0.0.0.3".into(), "0.0.0.2".into(), "0.0.0.1".into(), "0.0.0.1".into())
        );
        h.append("x-forwarded-for", "9.9.9.9".parse().unwrap());
        assert!(matches!(x_forwarded_address(&h, 1), XffAddress::Absent));
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "bogus".parse().unwrap());
        assert!(matches!(x_forwarded_address(&h, 1), XffAddress::Unparsable));
    }
}

//! One compiled ShenYu condition.
//!
//! Everything that can fail (unknown names, regexes, path patterns, CIDRs, times) is checked in
//! [`compile`], once per snapshot; [`CompiledCondition::eval`] only reads the request.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use chrono::NaiveDateTime;
use http::HeaderName;
use ipnet::IpNet;
use regex::Regex;
use tigateway_model::{Condition, Operator, ParamType, CONDITION_TIME_FORMAT};

use crate::path::{AntPattern, PathPattern};
use crate::RequestView;

/// The operator with everything it needs precompiled.
#[derive(Debug, Clone)]
enum Test {
    IsBlank,
    Eq,
    Contains,
    StartsWith,
    EndsWith,
    Regex(Regex),
    Ant(AntPattern),
    PathPattern(PathPattern),
    /// `match` on ip/host with a CIDR value.
    Cidr(IpNet),
    /// `match` on ip/host with a plain address: equality of addresses, not of spellings.
    IpEq(IpAddr),
    Time {
        at: NaiveDateTime,
        after: bool,
        /// No paramName: ShenYu compares the current time, not the extracted value.
        now: bool,
    },
}

/// A condition ready to evaluate against a [`RequestView`].
#[derive(Debug, Clone)]
pub struct CompiledCondition {
    param_type: ParamType,
    name: Box<str>,
    header: Option<HeaderName>,
    value: Box<str>,
    test: Test,
    /// `exclude` is `match` negated; kept as a flag so both share one code path.
    negate: bool,
    prefix: Option<Box<str>>,
    text: Box<str>,
    /// `paramType` and `operator` as written, for explanations.
    type_text: Box<str>,
    op_text: Box<str>,
}

/// A compile failure and the condition field it is about, so a table can report
/// `selector "s1".conditionList[0].paramValue` rather than just the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConditionError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ConditionError {
    ConditionError { field, message: message.into() }
}

/// Compiles a model condition; the error names the problem (not the field).
pub fn compile(c: &Condition) -> Result<CompiledCondition, String> {
    compile_detailed(c).map_err(|e| e.message)
}

pub(crate) fn compile_detailed(c: &Condition) -> Result<CompiledCondition, ConditionError> {
    let param_type = ParamType::parse(&c.param_type)
        .ok_or_else(|| err("paramType", format!("unknown paramType {:?}", c.param_type)))?;
    let operator =
        Operator::parse(&c.operator).ok_or_else(|| err("operator", format!("unknown operator {:?}", c.operator)))?;
    let name = c.param_name.as_deref().map(str::trim).unwrap_or("");
    if param_type.needs_name() && name.is_empty() {
        return Err(err("paramName", format!("paramType {:?} needs a paramName", c.param_type)));
    }
    let header = if param_type == ParamType::Header {
        Some(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err("paramName", format!("not a valid header name: {name:?}")))?,
        )
    } else {
        None
    };
    let value = c.param_value.as_deref().map(str::trim).unwrap_or("");
    if operator != Operator::IsBlank && value.is_empty() {
        return Err(err("paramValue", "must not be empty"));
    }
    let is_path = matches!(param_type, ParamType::Uri | ParamType::Path);
    let is_addr = matches!(param_type, ParamType::Ip | ParamType::Host);
    let bad = |m: String| err("paramValue", m);
    let test = match operator {
        Operator::IsBlank => Test::IsBlank,
        Operator::Eq => Test::Eq,
        Operator::Contains => Test::Contains,
        Operator::StartsWith => Test::StartsWith,
        Operator::EndsWith => Test::EndsWith,
        Operator::Regex => {
            Test::Regex(Regex::new(&format!("^(?:{value})$")).map_err(|e| bad(format!("bad regex: {e}")))?)
        }
        Operator::Match | Operator::Exclude => {
            if is_path {
                Test::Ant(AntPattern::parse(value).map_err(|e| bad(format!("bad path pattern: {e}")))?)
            } else if is_addr && value.contains('/') {
                Test::Cidr(value.parse::<IpNet>().map_err(|_| bad(format!("not a CIDR: {value:?}")))?)
            } else if let (true, Ok(ip)) = (is_addr, value.parse::<IpAddr>()) {
                Test::IpEq(ip)
            } else {
                Test::Contains
            }
        }
        Operator::PathPattern => {
            if is_path {
                Test::PathPattern(PathPattern::parse(value).map_err(|e| bad(format!("bad path pattern: {e}")))?)
            } else {
                Test::Contains
            }
        }
        Operator::TimeBefore | Operator::TimeAfter => {
            let at = NaiveDateTime::parse_from_str(value, CONDITION_TIME_FORMAT)
                .map_err(|_| bad(format!("expected a time as yyyy-MM-dd HH:mm:ss, got {value:?}")))?;
            Test::Time { at, after: operator == Operator::TimeAfter, now: name.is_empty() }
        }
    };
    let prefix = if is_path { path_prefix(operator, value, &test) } else { None };
    let text = if name.is_empty() {
        format!("{} {} {}", c.param_type, c.operator, value)
    } else {
        format!("{}[{}] {} {}", c.param_type, name, c.operator, value)
    };
    Ok(CompiledCondition {
        param_type,
        name: name.into(),
        header,
        value: value.into(),
        test,
        negate: operator == Operator::Exclude,
        prefix,
        text: text.trim_end().into(),
        type_text: c.param_type.as_str().into(),
        op_text: c.operator.as_str().into(),
    })
}

/// The literal path prefix (at a segment boundary) that every path passing the condition has.
fn path_prefix(op: Operator, value: &str, test: &Test) -> Option<Box<str>> {
    let p: &str = match (op, test) {
        (Operator::Match, Test::Ant(a)) => a.literal_prefix(),
        (Operator::PathPattern, Test::PathPattern(p)) => p.literal_prefix(),
        // `=`: the whole value is a path, so all its segments are complete.
        (Operator::Eq, _) if value.starts_with('/') => value.trim_end_matches('/'),
        // `startsWith`: only the part before the last `/` is made of complete segments.
        (Operator::StartsWith, _) if value.starts_with('/') => &value[..value.rfind('/').unwrap_or(0)],
        (Operator::Eq | Operator::StartsWith, _) => "",
        _ => return None,
    };
    Some(p.into())
}

/// Formats the client address without touching the heap (an IPv6 text form is at most 45 bytes).
struct IpText {
    buf: [u8; 64],
    len: usize,
}

impl IpText {
    fn new() -> Self {
        IpText { buf: [0; 64], len: 0 }
    }

    fn format(&mut self, ip: IpAddr) -> &str {
        self.len = 0;
        let _ = write!(self, "{ip}");
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then percent-escapes.
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// First value of `name` in a `k=v&k2=v2` string, decoded.
fn form_field<'a>(data: &'a str, name: &str) -> Option<Cow<'a, str>> {
    for pair in data.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(k) == name {
            return Some(form_decode(v));
        }
    }
    None
}

fn header_str(v: &http::HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    for h in headers.get_all(http::header::COOKIE) {
        let Ok(s) = std::str::from_utf8(h.as_bytes()) else {
            continue;
        };
        for part in s.split(';') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if k.trim() == name {
                let v = v.trim();
                let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
                return Some(Cow::Borrowed(v));
            }
        }
    }
    None
}

fn media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// A JSON field as text: strings unquoted, other scalars and containers as JSON, null as absent.
/// `name` is first tried as a top-level key (keys may contain dots), then as a dot path.
fn json_field(body: &[u8], name: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let v = match doc.get(name) {
        Some(v) => v,
        None => {
            let mut cur = &doc;
            for part in name.split('.') {
                cur = match cur {
                    serde_json::Value::Object(m) => m.get(part)?,
                    serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            cur
        }
    };
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn post_field<'a>(req: &RequestView<'a>, name: &str) -> Option<Cow<'a, str>> {
    let body = req.body?;
    let mt = media_type(req.content_type?);
    if mt.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let text = std::str::from_utf8(body).ok()?;
        return form_field(text, name);
    }
    let lower_is_json =
        mt.eq_ignore_ascii_case("application/json") || mt.len() > 5 && mt[mt.len() - 5..].eq_ignore_ascii_case("+json");
    if lower_is_json {
        return json_field(body, name).map(Cow::Owned);
    }
    None
}

impl CompiledCondition {
    pub fn param_type(&self) -> ParamType {
        self.param_type
    }

    /// Whether evaluating needs the buffered body (a `post` condition).
    pub fn needs_body(&self) -> bool {
        self.param_type == ParamType::Post
    }

    /// For a path condition whose passing paths all share a literal segment prefix: that prefix
    /// (`""` when nothing literal is known), for indexing. None for conditions on anything else.
    pub fn indexable_prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    pub fn eval(&self, req: &RequestView) -> bool {
        // Address tests compare addresses directly rather than their text.
        if matches!(self.param_type, ParamType::Ip | ParamType::Host) {
            match &self.test {
                Test::Cidr(net) => return net.contains(&req.client_ip) != self.negate,
                Test::IpEq(ip) => return (*ip == req.client_ip) != self.negate,
                _ => {}
            }
        }
        let mut ip_text = IpText::new();
        let value = self.extract(req, &mut ip_text);
        let blank = !matches!(value.as_deref(), Some(v) if !v.trim().is_empty());
        if matches!(self.test, Test::IsBlank) {
            return blank;
        }
        // ShenYu refuses a blank value before looking at the operator, `exclude` included.
        let Some(v) = value.filter(|_| !blank) else {
            return false;
        };
        self.judge(&v) != self.negate
    }

    /// The request value this condition looks at (None when absent). Shared by [`Self::eval`] and
    /// explanations, so an explanation shows exactly what was compared.
    #[inline]
    fn extract<'r>(&self, req: &RequestView<'r>, ip_text: &'r mut IpText) -> Option<Cow<'r, str>> {
        match self.param_type {
            ParamType::Uri | ParamType::Path => Some(Cow::Borrowed(req.path)),
            ParamType::Ip | ParamType::Host => Some(Cow::Borrowed(ip_text.format(req.client_ip))),
            ParamType::Domain => Some(Cow::Borrowed(req.host)),
            ParamType::ReqMethod => Some(Cow::Borrowed(req.method.as_str())),
            ParamType::Header => self.header.as_ref().and_then(|h| req.headers.get(h)).map(header_str),
            ParamType::Query => req.query.and_then(|q| form_field(q, &self.name)),
            ParamType::Cookie => cookie(req.headers, &self.name),
            ParamType::Post => post_field(req, &self.name),
        }
    }

    /// The value this condition saw in `req` (None: absent), for explanations. A time condition
    /// without a paramName compares the clock, so its "actual" value is the current local time.
    pub fn actual(&self, req: &RequestView) -> Option<String> {
        if let Test::Time { now: true, .. } = self.test {
            return Some(chrono::Local::now().naive_local().format(CONDITION_TIME_FORMAT).to_string());
        }
        let mut ip_text = IpText::new();
        self.extract(req, &mut ip_text).map(Cow::into_owned)
    }

    /// `paramType` as written in the config.
    pub fn param_type_name(&self) -> &str {
        &self.type_text
    }

    /// `paramName`, empty when the type has none.
    pub fn param_name(&self) -> &str {
        &self.name
    }

    /// `operator` as written in the config.
    pub fn operator(&self) -> &str {
        &self.op_text
    }

    /// `paramValue` (trimmed), what the request value is compared with.
    pub fn expected(&self) -> &str {
        &self.value
    }

    fn judge(&self, v: &str) -> bool {
        let want = &*self.value;
        match &self.test {
            Test::IsBlank => v.trim().is_empty(),
            Test::Eq => v == want,
            Test::Contains => v.contains(want),
            Test::StartsWith => v.starts_with(want),
            Test::EndsWith => v.ends_with(want),
            Test::Regex(re) => re.is_match(v),
            Test::Ant(p) => p.matches(v),
            Test::PathPattern(p) => p.matches(v),
            Test::Cidr(net) => v.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)),
            Test::IpEq(ip) => v.parse::<IpAddr>().is_ok_and(|x| x == *ip),
            Test::Time { at, after, now } => {
                let t = if *now {
                    chrono::Local::now().naive_local()
                } else {
                    match NaiveDateTime::parse_from_str(v, CONDITION_TIME_FORMAT) {
                        Ok(t) => t,
                        Err(_) => return false,
                    }
                };
                if *after {
                    t > *at
                } else {
                    t < *at
                }
            }
        }
    }
}

/// `paramType[paramName] operator paramValue`, for explanations and logs.
impl fmt::Display for CompiledCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};
    use std::net::Ipv4Addr;

    struct Req {
        method: Method,
        path: String,
        query: Option<String>,
        headers: HeaderMap,
        host: String,
        client_ip: IpAddr,
        body: Option<Vec<u8>>,
        content_type: Option<String>,
    }

    impl Req {
        fn new(path: &str) -> Req {
            Req {
                method: Method::GET,
                path: path.to_string(),
                query: None,
                headers: HeaderMap::new(),
                host: "example.com".to_string(),
                client_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                body: None,
                content_type: None,
            }
        }
        fn query(mut self, q: &str) -> Req {
            self.query = Some(q.to_string());
            self
        }
        fn header(mut self, k: &'static str, v: &str) -> Req {
            self.headers.append(k, HeaderValue::from_str(v).unwrap());
            self
        }
        fn body(mut self, ct: &str, b: &str) -> Req {
            self.content_type = Some(ct.to_string());
            self.body = Some(b.as_bytes().to_vec());
            self
        }
        fn view(&self) -> RequestView<'_> {
            RequestView {
                method: &self.method,
                path: &self.path,
                query: self.query.as_deref(),
                headers: &self.headers,
                host: &self.host,
                client_ip: self.client_ip,
                peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                body: self.body.as_deref(),
                content_type: self.content_type.as_deref(),
            }
        }
    }

    fn cond(pt: &str, op: &str, name: Option<&str>, value: &str) -> CompiledCondition {
        compile(&Condition::new(pt, op, name, value)).unwrap()
    }

    fn check(pt: &str, op: &str, name: Option<&str>, value: &str, req: &Req) -> bool {
        cond(pt, op, name, value).eval(&req.view())
    }

    #[test]
    fn uri_operators() {
        let r = Req::new("/api/users/42");
        assert!(check("uri", "=", None, "/api/users/42", &r));
        assert!(!check("uri", "=", None, "/api/users", &r));
        assert!(check("uri", "match", None, "/api/**", &r));
        assert!(!check("uri", "match", None, "/admin/**", &r));
        assert!(check("uri", "pathPattern", None, "/api/users/{id:\\d+}", &r));
        assert!(!check("uri", "pathPattern", None, "/api/users/{id:[a-z]+}", &r));
        assert!(check("uri", "startsWith", None, "/api/us", &r));
        assert!(!check("uri", "startsWith", None, "/admin", &r));
        assert!(check("uri", "endsWith", None, "/42", &r));
        assert!(!check("uri", "endsWith", None, "/43", &r));
        assert!(check("uri", "contains", None, "users", &r));
        assert!(!check("uri", "contains", None, "admin", &r));
        assert!(check("uri", "regex", None, "/api/.*/\\d+", &r));
        // Whole-value match, not a search.
        assert!(!check("uri", "regex", None, "users", &r));
        assert!(check("uri", "exclude", None, "/admin/**", &r));
        assert!(!check("uri", "exclude", None, "/api/**", &r));
        assert!(!check("uri", "isBlank", None, "", &r));
        // `path` reads the same value.
        assert!(check("path", "match", None, "/api/users/*", &r));
        // paramValue is trimmed at compile time.
        assert!(check("uri", "=", None, "  /api/users/42 ", &r));
    }

    #[test]
    fn ant_match_on_uri_respects_trailing_slash_and_double_star() {
        assert!(check("uri", "match", None, "/a/**", &Req::new("/a")));
        assert!(!check("uri", "match", None, "/a", &Req::new("/a/")));
        // Spring 6 PathPattern: no implicit trailing slash for the ShenYu operator.
        assert!(!check("uri", "pathPattern", None, "/a", &Req::new("/a/")));
    }

    #[test]
    fn query_first_value_decoded() {
        let r = Req::new("/").query("name=John+Smith&name=x&e=a%26b&flag&empty=");
        assert!(check("query", "=", Some("name"), "John Smith", &r));
        assert!(!check("query", "=", Some("name"), "x", &r));
        assert!(check("query", "=", Some("e"), "a&b", &r));
        assert!(!check("query", "=", Some("missing"), "x", &r));
        assert!(check("query", "isBlank", Some("missing"), "", &r));
        assert!(check("query", "isBlank", Some("flag"), "", &r));
        assert!(check("query", "isBlank", Some("empty"), "", &r));
        assert!(!check("query", "isBlank", Some("name"), "", &r));
        assert!(!check("query", "=", Some("name"), "John", &Req::new("/")));
    }

    #[test]
    fn header_first_value_case_insensitive_name() {
        let r = Req::new("/").header("x-user", "alice").header("x-user", "bob").header("x-space", "   ");
        assert!(check("header", "=", Some("X-User"), "alice", &r));
        assert!(!check("header", "=", Some("X-User"), "bob", &r));
        assert!(check("header", "regex", Some("x-user"), "a.*", &r));
        assert!(!check("header", "=", Some("x-other"), "alice", &r));
        // Missing or blank → false for everything but isBlank, `exclude` included.
        assert!(!check("header", "exclude", Some("x-other"), "alice", &r));
        assert!(!check("header", "exclude", Some("x-space"), "alice", &r));
        assert!(check("header", "exclude", Some("x-user"), "bob", &r));
        assert!(check("header", "isBlank", Some("x-space"), "", &r));
        assert!(check("header", "isBlank", Some("x-other"), "", &r));
        assert!(!check("header", "isBlank", Some("x-user"), "", &r));
        assert!(compile(&Condition::new("header", "=", Some("bad header"), "x")).is_err());
    }

    #[test]
    fn cookie_first_of_that_name() {
        let r = Req::new("/").header("cookie", "a=1; session=abc; session=def").header("cookie", "q=\"quoted\"");
        assert!(check("cookie", "=", Some("session"), "abc", &r));
        assert!(!check("cookie", "=", Some("session"), "def", &r));
        assert!(check("cookie", "=", Some("q"), "quoted", &r));
        assert!(!check("cookie", "=", Some("Session"), "abc", &r));
        assert!(!check("cookie", "=", Some("none"), "abc", &r));
    }

    #[test]
    fn ip_and_host_use_the_client_address() {
        let r = Req::new("/");
        for pt in ["ip", "host"] {
            assert!(check(pt, "=", None, "10.1.2.3", &r));
            assert!(!check(pt, "=", None, "10.1.2.4", &r));
            assert!(check(pt, "match", None, "10.0.0.0/8", &r));
            assert!(!check(pt, "match", None, "192.168.0.0/16", &r));
            assert!(check(pt, "match", None, "10.1.2.3", &r));
            assert!(!check(pt, "match", None, "10.1.2.30", &r));
            assert!(check(pt, "match", None, "10.1.", &r));
            assert!(check(pt, "exclude", None, "192.168.0.0/16", &r));
            assert!(!check(pt, "exclude", None, "10.0.0.0/8", &r));
            assert!(check(pt, "startsWith", None, "10.1", &r));
        }
        let mut v6 = Req::new("/");
        v6.client_ip = "2001:db8::1".parse().unwrap();
        assert!(check("ip", "match", None, "2001:db8::/32", &v6));
        assert!(check("ip", "=", None, "2001:db8::1", &v6));
        assert!(compile(&Condition::new("ip", "match", None, "10.0.0.0/99")).is_err());
    }

    #[test]
    fn domain_and_method() {
        let r = Req::new("/");
        assert!(check("domain", "=", None, "example.com", &r));
        assert!(check("domain", "endsWith", None, ".com", &r));
        assert!(!check("domain", "=", None, "other.com", &r));
        assert!(check("domain", "match", None, "example", &r));
        assert!(check("req_method", "=", None, "GET", &r));
        assert!(!check("req_method", "=", None, "get", &r));
        assert!(!check("req_method", "=", None, "POST", &r));
    }

    #[test]
    fn post_reads_form_and_json_bodies() {
        let form = Req::new("/").body("application/x-www-form-urlencoded; charset=utf-8", "user=a+b&id=7");
        assert!(check("post", "=", Some("user"), "a b", &form));
        assert!(check("post", "=", Some("id"), "7", &form));
        assert!(!check("post", "=", Some("nope"), "7", &form));
        let json = Req::new("/")
            .body("application/json", r#"{"user":"alice","n":3,"ok":true,"a":{"b":"deep"},"l":[1,2],"z":null}"#);
        assert!(check("post", "=", Some("user"), "alice", &json));
        assert!(check("post", "=", Some("n"), "3", &json));
        assert!(check("post", "=", Some("ok"), "true", &json));
        assert!(check("post", "=", Some("a.b"), "deep", &json));
        assert!(check("post", "=", Some("l"), "[1,2]", &json));
        assert!(check("post", "=", Some("l.1"), "2", &json));
        assert!(check("post", "isBlank", Some("z"), "", &json));
        assert!(!check("post", "=", Some("a.c"), "deep", &json));
        let vendor = Req::new("/").body("application/vnd.api+json", r#"{"user":"v"}"#);
        assert!(check("post", "=", Some("user"), "v", &vendor));
        let text = Req::new("/").body("text/plain", "user=a");
        assert!(!check("post", "=", Some("user"), "a", &text));
        assert!(!check("post", "=", Some("user"), "alice", &Req::new("/")));
        assert!(cond("post", "=", Some("user"), "a").needs_body());
        assert!(!cond("header", "=", Some("user"), "a").needs_body());
    }

    #[test]
    fn time_conditions() {
        let r = Req::new("/").header("x-at", "2020-06-01 12:00:00").header("x-bad", "soon");
        assert!(check("uri", "TimeAfter", None, "2000-01-01 00:00:00", &r));
        assert!(!check("uri", "TimeAfter", None, "2999-01-01 00:00:00", &r));
        assert!(check("uri", "TimeBefore", None, "2999-01-01 00:00:00", &r));
        assert!(!check("uri", "TimeBefore", None, "2000-01-01 00:00:00", &r));
        assert!(check("header", "TimeBefore", Some("x-at"), "2020-06-02 00:00:00", &r));
        assert!(!check("header", "TimeBefore", Some("x-at"), "2020-05-02 00:00:00", &r));
        assert!(check("header", "TimeAfter", Some("x-at"), "2020-05-02 00:00:00", &r));
        assert!(!check("header", "TimeAfter", Some("x-bad"), "2020-05-02 00:00:00", &r));
        assert!(!check("header", "TimeAfter", Some("x-none"), "2020-05-02 00:00:00", &r));
        assert!(compile(&Condition::new("uri", "TimeAfter", None, "tomorrow")).is_err());
    }

    #[test]
    fn compile_errors_name_their_field() {
        let e = compile_detailed(&Condition::new("uri", "regx", None, "/a")).unwrap_err();
        assert_eq!(e.field, "operator");
        let e = compile_detailed(&Condition::new("url", "=", None, "/a")).unwrap_err();
        assert_eq!(e.field, "paramType");
        let e = compile_detailed(&Condition::new("uri", "regex", None, "(/a")).unwrap_err();
        assert_eq!(e.field, "paramValue");
        let e = compile_detailed(&Condition::new("uri", "=", None, "  ")).unwrap_err();
        assert_eq!(e.field, "paramValue");
        let e = compile_detailed(&Condition::new("query", "=", None, "x")).unwrap_err();
        assert_eq!(e.field, "paramName");
        let e = compile_detailed(&Condition::new("uri", "pathPattern", None, "/a/**/b")).unwrap_err();
        assert_eq!(e.field, "paramValue");
        assert!(compile(&Condition::new("header", "isBlank", Some("x"), "")).is_ok());
    }

    #[test]
    fn indexable_prefixes() {
        let p = |op: &str, v: &str| cond("uri", op, None, v).indexable_prefix().map(str::to_string);
        assert_eq!(p("match", "/api/users/**").as_deref(), Some("/api/users"));
        assert_eq!(p("pathPattern", "/api/{id}").as_deref(), Some("/api"));
        assert_eq!(p("=", "/api/users/").as_deref(), Some("/api/users"));
        assert_eq!(p("startsWith", "/api/us").as_deref(), Some("/api"));
        assert_eq!(p("startsWith", "/api/").as_deref(), Some("/api"));
        assert_eq!(p("startsWith", "/api").as_deref(), Some(""));
        assert_eq!(p("regex", "/api/.*"), None);
        assert_eq!(p("exclude", "/api/**"), None);
        assert_eq!(p("contains", "api"), None);
        assert_eq!(cond("header", "=", Some("x"), "/a").indexable_prefix(), None);
    }

    #[test]
    fn display_text() {
        assert_eq!(cond("uri", "match", None, "/a/**").to_string(), "uri match /a/**");
        assert_eq!(cond("header", "=", Some("X-U"), "v").to_string(), "header[X-U] = v");
    }
}

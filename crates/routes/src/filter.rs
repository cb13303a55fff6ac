//! Route filters, compiled once and applied per request: request edits in declared order,
//! response edits in reverse declared order (SCG runs every response filter after the rest of the
//! chain has returned, so the first declared one acts last).

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use regex::Regex;
use tigateway_model::spring::{full_match_regex, java_replacement, search_regex, DedupeStrategy, Filter, StripVersion};

use crate::predicate::form_decode;
use crate::template::Template;
use crate::{ResponseInfo, RouteRequest, ShortCircuit};

/// Characters kept as they are in an added query parameter: unreserved plus the sub-delimiters
/// Spring leaves alone in query parameters, minus `&`, `=` and `+` (which would change meaning).
const QUERY_PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b';')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'?');

/// A header value that may hold `{var}`s; literal ones are validated once at compile time.
#[derive(Debug, Clone)]
pub(crate) struct HeaderTemplate {
    literal: Option<HeaderValue>,
    tpl: Template,
}

impl HeaderTemplate {
    fn new(s: &str) -> Result<HeaderTemplate, String> {
        let tpl = Template::parse(s);
        let literal = if tpl.var_names().next().is_none() {
            Some(HeaderValue::from_str(s).map_err(|_| format!("not a valid header value: {s:?}"))?)
        } else {
            None
        };
        Ok(HeaderTemplate { literal, tpl })
    }

    /// The value for this request; `None` when an expanded variable cannot be a header value
    /// (a decoded path variable may hold control characters), in which case the edit is skipped.
    fn value(&self, vars: &[(String, String)]) -> Option<HeaderValue> {
        match &self.literal {
            Some(v) => Some(v.clone()),
            None => HeaderValue::from_str(&self.tpl.expand(vars, false)).ok(),
        }
    }

    fn var_names(&self) -> impl Iterator<Item = &str> {
        self.tpl.var_names()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum RequestFilter {
    StripPrefix(usize),
    PrefixPath(Template),
    RewritePath { re: Regex, replacement: String },
    SetPath(Template),
    AddHeader { name: HeaderName, value: HeaderTemplate },
    SetHeader { name: HeaderName, value: HeaderTemplate },
    RemoveHeader(HeaderName),
    MapHeader { from: HeaderName, to: HeaderName },
    AddHeadersIfNotPresent(Vec<(HeaderName, Vec<HeaderTemplate>)>),
    AddParameter { name: String, value: Template },
    RemoveParameter(String),
    SetHost(HeaderTemplate),
    PreserveHost,
    HeaderSize { max: u64, error_header: HeaderName },
    RedirectTo { status: StatusCode, url: String, include_params: bool },
}

#[derive(Debug, Clone)]
pub(crate) enum ResponseFilter {
    AddHeader { name: HeaderName, value: HeaderTemplate, override_existing: bool },
    SetHeader { name: HeaderName, value: HeaderTemplate },
    RemoveHeader(HeaderName),
    RewriteHeader { name: HeaderName, re: Regex, replacement: String },
    Dedupe { names: Vec<HeaderName>, strategy: DedupeStrategy },
    Secure(Vec<(HeaderName, HeaderValue)>),
    SetStatus(StatusCode),
    RewriteLocation { strip: StripVersion, header: HeaderName, host_value: Option<String>, protocols: Regex },
}

/// A filter after compilation: which phase it acts in, or a route-level setting.
pub(crate) enum Compiled {
    Request(RequestFilter),
    Response(ResponseFilter),
    MaxBody(u64),
    Retry(tigateway_model::spring::RetryConfig),
}

fn header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("not a valid header name: {s:?}"))
}

fn status(code: u16) -> Result<StatusCode, String> {
    StatusCode::from_u16(code).map_err(|_| format!("not a valid status code: {code}"))
}

impl Compiled {
    pub(crate) fn compile(f: &Filter) -> Result<Compiled, String> {
        use Compiled::{Request as Q, Response as S};
        Ok(match f {
            Filter::AddRequestHeader { name, value } => {
                Q(RequestFilter::AddHeader { name: header_name(name)?, value: HeaderTemplate::new(value)? })
            }
            Filter::SetRequestHeader { name, value } => {
                Q(RequestFilter::SetHeader { name: header_name(name)?, value: HeaderTemplate::new(value)? })
            }
            Filter::RemoveRequestHeader { name } => Q(RequestFilter::RemoveHeader(header_name(name)?)),
            Filter::MapRequestHeader { from_header, to_header } => {
                Q(RequestFilter::MapHeader { from: header_name(from_header)?, to: header_name(to_header)? })
            }
            Filter::AddRequestHeadersIfNotPresent(pairs) => {
                // SCG groups the values by name first, then decides per name.
                let mut grouped: Vec<(HeaderName, Vec<HeaderTemplate>)> = Vec::new();
                for (n, v) in pairs {
                    let n = header_name(n)?;
                    let v = HeaderTemplate::new(v)?;
                    match grouped.iter_mut().find(|(g, _)| *g == n) {
                        Some((_, vals)) => vals.push(v),
                        None => grouped.push((n, vec![v])),
                    }
                }
                Q(RequestFilter::AddHeadersIfNotPresent(grouped))
            }
            Filter::AddRequestParameter { name, value } => {
                Q(RequestFilter::AddParameter { name: name.clone(), value: Template::parse(value) })
            }
            Filter::RemoveRequestParameter { name } => Q(RequestFilter::RemoveParameter(name.clone())),
            Filter::StripPrefix { parts } => Q(RequestFilter::StripPrefix(*parts)),
            Filter::PrefixPath { prefix } => Q(RequestFilter::PrefixPath(Template::parse(prefix))),
            Filter::SetPath { template } => Q(RequestFilter::SetPath(Template::parse(template))),
            Filter::RewritePath { regexp, replacement } => {
                let re = search_regex(regexp)?;
                let replacement = java_replacement(&re, replacement)?;
                Q(RequestFilter::RewritePath { re, replacement })
            }
            Filter::SetRequestHostHeader { host } => Q(RequestFilter::SetHost(HeaderTemplate::new(host)?)),
            Filter::PreserveHostHeader => Q(RequestFilter::PreserveHost),
            Filter::RequestHeaderSize { max_size, error_header_name } => {
                Q(RequestFilter::HeaderSize { max: *max_size, error_header: header_name(error_header_name)? })
            }
            Filter::RedirectTo { status: s, url, include_request_params } => {
                HeaderValue::from_str(url).map_err(|_| format!("not a valid Location: {url:?}"))?;
                Q(RequestFilter::RedirectTo {
                    status: status(*s)?,
                    url: url.clone(),
                    include_params: *include_request_params,
                })
            }
            Filter::AddResponseHeader { name, value, override_existing } => S(ResponseFilter::AddHeader {
                name: header_name(name)?,
                value: HeaderTemplate::new(value)?,
                override_existing: *override_existing,
            }),
            Filter::SetResponseHeader { name, value } => {
                S(ResponseFilter::SetHeader { name: header_name(name)?, value: HeaderTemplate::new(value)? })
            }
            Filter::RemoveResponseHeader { name } => S(ResponseFilter::RemoveHeader(header_name(name)?)),
            Filter::RewriteResponseHeader { name, regexp, replacement } => {
                let re = search_regex(regexp)?;
                let replacement = java_replacement(&re, replacement)?;
                S(ResponseFilter::RewriteHeader { name: header_name(name)?, re, replacement })
            }
            Filter::DedupeResponseHeader { names, strategy } => S(ResponseFilter::Dedupe {
                names: names.iter().map(|n| header_name(n)).collect::<Result<_, _>>()?,
                strategy: *strategy,
            }),
            Filter::SecureHeaders { headers } => S(ResponseFilter::Secure(
                headers
                    .iter()
                    .map(|(n, v)| {
                        Ok((header_name(n)?, HeaderValue::from_str(v).map_err(|_| format!("bad header value {v:?}"))?))
                    })
                    .collect::<Result<_, String>>()?,
            )),
            Filter::SetStatus { status: s } => S(ResponseFilter::SetStatus(status(*s)?)),
            Filter::RewriteLocationResponseHeader { strip_version, location_header_name, host_value, protocols } => {
                S(ResponseFilter::RewriteLocation {
                    strip: *strip_version,
                    header: header_name(location_header_name)?,
                    host_value: host_value.clone(),
                    protocols: full_match_regex(protocols)?,
                })
            }
            Filter::RequestSize { max_size } => Compiled::MaxBody(*max_size),
            Filter::Retry(r) => Compiled::Retry(r.clone()),
        })
    }

    /// Template variables this filter reads, to check them against what the predicates capture.
    pub(crate) fn template_vars(&self) -> Vec<&str> {
        match self {
            Compiled::Request(RequestFilter::PrefixPath(t) | RequestFilter::SetPath(t))
            | Compiled::Request(RequestFilter::AddParameter { value: t, .. }) => t.var_names().collect(),
            Compiled::Request(
                RequestFilter::AddHeader { value, .. }
                | RequestFilter::SetHeader { value, .. }
                | RequestFilter::SetHost(value),
            )
            | Compiled::Response(ResponseFilter::AddHeader { value, .. } | ResponseFilter::SetHeader { value, .. }) => {
                value.var_names().collect()
            }
            Compiled::Request(RequestFilter::AddHeadersIfNotPresent(g)) => {
                g.iter().flat_map(|(_, vals)| vals.iter().flat_map(|v| v.var_names())).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl RequestFilter {
    // The error is the rare short-circuit response; boxing it would only add an allocation there.
    #[allow(clippy::result_large_err)]
    pub(crate) fn apply(&self, vars: &[(String, String)], req: &mut RouteRequest) -> Result<(), ShortCircuit> {
        match self {
            RequestFilter::StripPrefix(parts) => req.path = strip_prefix(&req.path, *parts),
            RequestFilter::PrefixPath(t) => {
                let prefix = t.expand(vars, true);
                req.path.insert_str(0, &prefix);
            }
            RequestFilter::RewritePath { re, replacement } => {
                let new = re.replace_all(&req.path, replacement.as_str());
                if let std::borrow::Cow::Owned(p) = new {
                    req.path = if p.is_empty() { "/".to_string() } else { p };
                }
            }
            RequestFilter::SetPath(t) => req.path = t.expand(vars, true).into_owned(),
            RequestFilter::AddHeader { name, value } => {
                if let Some(v) = value.value(vars) {
                    req.headers.append(name.clone(), v);
                }
            }
            RequestFilter::SetHeader { name, value } => {
                if let Some(v) = value.value(vars) {
                    req.headers.insert(name.clone(), v);
                }
            }
            RequestFilter::RemoveHeader(name) => {
                req.headers.remove(name);
            }
            RequestFilter::MapHeader { from, to } => {
                let values: smallvec::SmallVec<[HeaderValue; 2]> = req.headers.get_all(from).iter().cloned().collect();
                for v in values {
                    req.headers.append(to.clone(), v);
                }
            }
            RequestFilter::AddHeadersIfNotPresent(groups) => {
                for (name, values) in groups {
                    let blank =
                        req.headers.get_all(name).iter().all(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace));
                    if blank {
                        for v in values.iter().filter_map(|v| v.value(vars)) {
                            req.headers.append(name.clone(), v);
                        }
                    }
                }
            }
            RequestFilter::AddParameter { name, value } => {
                let value = value.expand(vars, false);
                let mut q = req.query.take().unwrap_or_default();
                if !q.is_empty() && !q.ends_with('&') {
                    q.push('&');
                }
                q.extend(utf8_percent_encode(name, QUERY_PARAM));
                q.push('=');
                q.extend(utf8_percent_encode(&value, QUERY_PARAM));
                req.query = Some(q);
            }
            RequestFilter::RemoveParameter(name) => {
                if let Some(q) = req.query.take() {
                    let kept: Vec<&str> = q
                        .split('&')
                        .filter(|p| {
                            !p.is_empty() && form_decode(p.split_once('=').map_or(*p, |(n, _)| n)) != name.as_str()
                        })
                        .collect();
                    req.query = (!kept.is_empty()).then(|| kept.join("&"));
                }
            }
            RequestFilter::SetHost(t) => {
                if let Some(v) = t.value(vars) {
                    req.host = v.to_str().ok().map(String::from);
                    req.headers.insert(HOST, v);
                }
            }
            RequestFilter::PreserveHost => {
                if let Some(h) = req.headers.get(HOST).and_then(|h| h.to_str().ok()) {
                    req.host = Some(h.to_string());
                }
            }
            RequestFilter::HeaderSize { max, error_header } => header_size(req, *max, error_header)?,
            RequestFilter::RedirectTo { status, url, include_params } => {
                let mut location = url.clone();
                if *include_params {
                    if let Some(q) = req.query.as_deref().filter(|q| !q.is_empty()) {
                        location.push(if url.contains('?') { '&' } else { '?' });
                        location.push_str(q);
                    }
                }
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&location) {
                    headers.insert(LOCATION, v);
                }
                return Err(ShortCircuit { status: *status, headers, body: Bytes::new() });
            }
        }
        Ok(())
    }
}

/// SCG's StripPrefix: drops the first `parts` non-empty segments, keeps a trailing slash.
pub(crate) fn strip_prefix(path: &str, parts: usize) -> String {
    let mut out = String::with_capacity(path.len());
    out.push('/');
    for seg in path.split('/').map(str::trim).filter(|s| !s.is_empty()).skip(parts) {
        if out.len() > 1 {
            out.push('/');
        }
        out.push_str(seg);
    }
    if out.len() > 1 && path.ends_with('/') {
        out.push('/');
    }
    out
}

#[allow(clippy::result_large_err)]
fn header_size(req: &RouteRequest, max: u64, error_header: &HeaderName) -> Result<(), ShortCircuit> {
    let mut too_long: Vec<(&str, u64)> = Vec::new();
    for name in req.headers.keys() {
        let size = name.as_str().len() as u64 + req.headers.get_all(name).iter().map(|v| v.len() as u64).sum::<u64>();
        if size > max {
            too_long.push((name.as_str(), size));
        }
    }
    if too_long.is_empty() {
        return Ok(());
    }
    let mut msg = format!("Request Header/s size is larger than permissible limit ({max}B).");
    for (name, size) in too_long {
        let _ = write!(msg, " Request Header/s size for '{name}' is {size}B.");
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&msg) {
        headers.insert(error_header.clone(), v);
    }
    Err(ShortCircuit { status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, headers, body: Bytes::new() })
}

/// SCG's `RequestSize` message, sizes in decimal units with one decimal (`6.0 MB`).
pub(crate) fn request_size_message(size: u64, limit: u64) -> String {
    format!(
        "Request size is larger than permissible limit. Request size is {} where permissible limit is {}",
        readable_bytes(size),
        readable_bytes(limit)
    )
}

fn readable_bytes(bytes: u64) -> String {
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1000f64.ln()) as i32;
    let pre = ['k', 'M', 'G', 'T', 'P', 'E'][(exp - 1).clamp(0, 5) as usize];
    format!("{:.1} {pre}B", bytes as f64 / 1000f64.powi(exp))
}

impl ResponseFilter {
    pub(crate) fn apply(
        &self,
        vars: &[(String, String)],
        status: &mut StatusCode,
        headers: &mut HeaderMap,
        info: &ResponseInfo<'_>,
    ) {
        match self {
            ResponseFilter::AddHeader { name, value, override_existing } => {
                let Some(v) = value.value(vars) else { return };
                if *override_existing
                    || headers.get_all(name).iter().all(|h| h.as_bytes().iter().all(u8::is_ascii_whitespace))
                {
                    headers.append(name.clone(), v);
                }
            }
            ResponseFilter::SetHeader { name, value } => {
                if let Some(v) = value.value(vars) {
                    headers.insert(name.clone(), v);
                }
            }
            ResponseFilter::RemoveHeader(name) => {
                headers.remove(name);
            }
            ResponseFilter::RewriteHeader { name, re, replacement } => {
                if !headers.contains_key(name) {
                    return;
                }
                let old: smallvec::SmallVec<[HeaderValue; 2]> = headers.get_all(name).iter().cloned().collect();
                headers.remove(name);
                for v in old {
                    let new = match v.to_str() {
                        Ok(s) => HeaderValue::from_str(&re.replace_all(s, replacement.as_str())).unwrap_or(v),
                        Err(_) => v,
                    };
                    headers.append(name.clone(), new);
                }
            }
            ResponseFilter::Dedupe { names, strategy } => {
                for name in names {
                    dedupe(headers, name, *strategy);
                }
            }
            ResponseFilter::Secure(list) => {
                for (n, v) in list {
                    if !headers.contains_key(n) {
                        headers.insert(n.clone(), v.clone());
                    }
                }
            }
            ResponseFilter::SetStatus(s) => *status = *s,
            ResponseFilter::RewriteLocation { strip, header, host_value, protocols } => {
                let host = host_value.as_deref().or(info.request_host);
                let (Some(host), Some(loc)) = (host, headers.get(header).and_then(|v| v.to_str().ok())) else {
                    return;
                };
                let do_strip = match strip {
                    StripVersion::AlwaysStrip => true,
                    StripVersion::NeverStrip => false,
                    StripVersion::AsInRequest => !is_versioned_path(info.request_path),
                };
                if let Some(fixed) = fixed_location(loc, host, do_strip, protocols) {
                    if let Ok(v) = HeaderValue::from_str(&fixed) {
                        headers.insert(header.clone(), v);
                    }
                }
            }
        }
    }
}

/// SCG's header dedupe works on the header's separate values (lines), not on commas inside one.
fn dedupe(headers: &mut HeaderMap, name: &HeaderName, strategy: DedupeStrategy) {
    let values: smallvec::SmallVec<[HeaderValue; 4]> = headers.get_all(name).iter().cloned().collect();
    if values.len() <= 1 {
        return;
    }
    match strategy {
        DedupeStrategy::RetainFirst => {
            headers.insert(name.clone(), values[0].clone());
        }
        DedupeStrategy::RetainLast => {
            headers.insert(name.clone(), values[values.len() - 1].clone());
        }
        DedupeStrategy::RetainUnique => {
            headers.remove(name);
            let mut seen: smallvec::SmallVec<[&HeaderValue; 4]> = smallvec::SmallVec::new();
            for v in &values {
                if !seen.contains(&v) {
                    seen.push(v);
                    headers.append(name.clone(), v.clone());
                }
            }
        }
    }
}

/// `^/v\d+/.*`: the request itself addressed a version.
fn is_versioned_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with('/')
}

/// Replaces `host[:port]` (and, when stripping, a following `/vN`) right after `scheme://` with
/// `host`, but only when a `/` follows, as SCG's look-behind regex does.
fn fixed_location(location: &str, host: &str, strip: bool, protocols: &Regex) -> Option<String> {
    let (scheme, rest) = location.split_once("://")?;
    if !protocols.is_match(scheme) {
        return None;
    }
    let name_end = rest.find([':', '/']).unwrap_or(rest.len());
    if name_end == 0 {
        return None;
    }
    let mut end = name_end;
    if rest[end..].starts_with(':') {
        let digits = rest[end + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        end += 1 + digits;
    }
    if strip && rest[end..].starts_with("/v") {
        let digits = rest[end + 2..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[end + 2 + digits..].starts_with('/') {
            end += 2 + digits;
        }
    }
    if !rest[end..].starts_with('/') {
        return None;
    }
    Some(format!("{scheme}://{host}{}", &rest[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_like_scg() {
        assert_eq!(strip_prefix("/api/users/42", 2), "/42");
        assert_eq!(strip_prefix("/api/users/42/", 2), "/42/");
        assert_eq!(strip_prefix("/api/users", 2), "/");
        assert_eq!(strip_prefix("/api/users/", 2), "/");
        assert_eq!(strip_prefix("/a//b/c", 1), "/b/c");
        assert_eq!(strip_prefix("/a/b", 0), "/a/b");
        assert_eq!(strip_prefix("/a", 5), "/");
    }

    #[test]
    fn readable_sizes_match_scg_messages() {
        assert_eq!(
            request_size_message(6_000_000, 5_000_000),
            "Request size is larger than permissible limit. Request size is 6.0 MB where permissible limit is 5.0 MB"
        );
        assert_eq!(readable_bytes(999), "999 B");
        assert_eq!(readable_bytes(1_500), "1.5 kB");
    }

    #[test]
    fn location_rewrite_cases() {
        let p = full_match_regex("https?|ftps?").unwrap();
        let f = |loc, strip| fixed_location(loc, "api.example.com:443", strip, &p);
        assert_eq!(
            f("https://object-service.prod.example.net/v2/some/object/id", true).unwrap(),
            "https://api.example.com:443/some/object/id"
        );
        assert_eq!(
            f("https://object-service.prod.example.net/v2/some/object/id", false).unwrap(),
            "https://api.example.com:443/v2/some/object/id"
        );
        assert_eq!(f("http://backend:8080/v1", true).unwrap(), "http://api.example.com:443/v1");
        assert_eq!(f("http://backend:8080/x", true).unwrap(), "http://api.example.com:443/x");
        assert!(f("http://backend:8080", true).is_none());
        assert!(f("http://backend:80a/x", true).is_none());
        assert!(f("gopher://backend/x", true).is_none());
        assert!(f("/relative/path", true).is_none());
        let https_only = full_match_regex("https|ftps").unwrap();
        assert!(fixed_location("http://b/v1/x", "h", false, &https_only).is_none());
        assert!(is_versioned_path("/v1/a") && !is_versioned_path("/v1") && !is_versioned_path("/va/b"));
    }
}

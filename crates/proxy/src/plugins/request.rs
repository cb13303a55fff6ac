//! `request`: edits request headers, query parameters and cookies before the upstream call
//! (order: add, set, rename, remove — as ShenYu), and can preserve the client's Host.

use http::{HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tigateway_model::handle::{parse_handle, KeyEdits, RequestHandle};

use super::modify_response::{name, value};
use super::*;

pub struct Factory;

struct HeaderEdits {
    add: Vec<(HeaderName, HeaderValue)>,
    set: Vec<(HeaderName, HeaderValue)>,
    rename: Vec<(HeaderName, HeaderName)>,
    remove: Vec<HeaderName>,
}

struct Compiled {
    header: HeaderEdits,
    parameter: KeyEdits,
    cookie: KeyEdits,
    preserve_host: bool,
}

struct RequestPlugin {
    rules: Vec<Compiled>,
    default: Compiled,
}

fn compile(h: Option<&str>) -> Result<Compiled, String> {
    let h: RequestHandle = parse_handle(h)?;
    let pairs = |m: &std::collections::BTreeMap<String, String>| -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        m.iter().map(|(k, v)| Ok((name(k)?, value(v)?))).collect()
    };
    Ok(Compiled {
        header: HeaderEdits {
            add: pairs(&h.header.add)?,
            set: pairs(&h.header.set)?,
            rename: h.header.rename.iter().map(|(k, v)| Ok((name(k)?, name(v)?))).collect::<Result<_, String>>()?,
            remove: h.header.remove.iter().map(|k| name(k)).collect::<Result<_, String>>()?,
        },
        parameter: h.parameter,
        cookie: h.cookie,
        preserve_host: h.preserve_host,
    })
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        "request"
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let (rules, default) = compile_rules(input, |h, _| compile(h))?;
        Ok(Box::new(RequestPlugin { rules, default }))
    }
}

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn edit_pairs(pairs: &mut Vec<(String, String)>, e: &KeyEdits, encode: bool) {
    let enc = |s: &str| {
        if encode {
            utf8_percent_encode(s, QUERY_VALUE).to_string()
        } else {
            s.to_string()
        }
    };
    for (k, v) in &e.add {
        pairs.push((enc(k), enc(v)));
    }
    for (k, v) in &e.set {
        let (k, v) = (enc(k), enc(v));
        pairs.retain(|(pk, _)| *pk != k);
        pairs.push((k, v));
    }
    for (from, to) in &e.rename {
        let (from, to) = (enc(from), enc(to));
        for (k, _) in pairs.iter_mut() {
            if *k == from {
                *k = to.clone();
            }
        }
    }
    for k in &e.remove {
        let k = enc(k);
        pairs.retain(|(pk, _)| *pk != k);
    }
}

fn is_empty(e: &KeyEdits) -> bool {
    e.add.is_empty() && e.set.is_empty() && e.rename.is_empty() && e.remove.is_empty()
}

impl Plugin for RequestPlugin {
    fn on_request<'s>(&'s self, ctx: &mut Ctx, m: Option<&Matched>) -> Flow<'s> {
        let c = chosen(&self.rules, &self.default, m);
        let h = &mut ctx.headers;
        for (k, v) in &c.header.add {
            h.append(k.clone(), v.clone());
        }
        for (k, v) in &c.header.set {
            h.insert(k.clone(), v.clone());
        }
        for (from, to) in &c.header.rename {
            let values: Vec<_> = h.get_all(from).iter().cloned().collect();
            if !values.is_empty() {
                h.remove(from);
                for v in values {
                    h.append(to.clone(), v);
                }
            }
        }
        for k in &c.header.remove {
            h.remove(k);
        }
        if !is_empty(&c.parameter) {
            let mut pairs: Vec<(String, String)> = ctx
                .query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (p.to_string(), String::new()),
                })
                .collect();
            edit_pairs(&mut pairs, &c.parameter, true);
            let q: Vec<String> =
                pairs.into_iter().map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") }).collect();
            ctx.query = if q.is_empty() { None } else { Some(q.join("&")) };
        }
        if !is_empty(&c.cookie) {
            let mut pairs: Vec<(String, String)> = ctx
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|p| p.trim().split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect();
            edit_pairs(&mut pairs, &c.cookie, false);
            ctx.headers.remove(http::header::COOKIE);
            if !pairs.is_empty() {
                let joined: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                if let Ok(v) = HeaderValue::from_str(&joined.join("; ")) {
                    ctx.headers.insert(http::header::COOKIE, v);
                }
            }
        }
        if c.preserve_host {
            ctx.preserve_host = true;
        }
        Flow::Continue
    }
}

//! `modifyResponse`: edits the upstream's response headers and status.

use http::{HeaderName, HeaderValue};
use tigateway_model::handle::{parse_handle, ModifyResponseHandle};

use super::*;

pub struct Factory;

#[derive(Default)]
struct Edits {
    add: Vec<(HeaderName, HeaderValue)>,
    set: Vec<(HeaderName, HeaderValue)>,
    rename: Vec<(HeaderName, HeaderName)>,
    remove: Vec<HeaderName>,
    status: Option<StatusCode>,
}

struct ModifyResponse {
    rules: Vec<Edits>,
    default: Edits,
}

pub(crate) fn name(n: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| format!("bad header name {n:?}"))
}
pub(crate) fn value(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|_| format!("bad header value {v:?}"))
}

fn compile(h: Option<&str>) -> Result<Edits, String> {
    let h: ModifyResponseHandle = parse_handle(h)?;
    let pairs = |m: &std::collections::BTreeMap<String, String>| -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        m.iter().map(|(k, v)| Ok((name(k)?, value(v)?))).collect()
    };
    Ok(Edits {
        add: pairs(&h.add_headers)?,
        set: pairs(&h.set_headers)?,
        rename: h.replace_header_keys.iter().map(|(k, v)| Ok((name(k)?, name(v)?))).collect::<Result<_, String>>()?,
        remove: h.remove_header_keys.iter().map(|k| name(k)).collect::<Result<_, String>>()?,
        status: h
            .status_code
            .map(|c| StatusCode::from_u16(c as u16).map_err(|e| format!("statusCode: {e}")))
            .transpose()?,
    })
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        "modifyResponse"
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let (rules, default) = compile_rules(input, |h, _| compile(h))?;
        Ok(Box::new(ModifyResponse { rules, default }))
    }
}

impl Plugin for ModifyResponse {
    fn has_response_phase(&self) -> bool {
        true
    }
    fn on_response(&self, m: Option<&Matched>, status: &mut StatusCode, headers: &mut HeaderMap) {
        let e = chosen(&self.rules, &self.default, m);
        for (k, v) in &e.add {
            headers.append(k.clone(), v.clone());
        }
        for (k, v) in &e.set {
            headers.insert(k.clone(), v.clone());
        }
        for (from, to) in &e.rename {
            let values: Vec<_> = headers.get_all(from).iter().cloned().collect();
            if !values.is_empty() {
                headers.remove(from);
                for v in values {
                    headers.append(to.clone(), v);
                }
            }
        }
        for k in &e.remove {
            headers.remove(k);
        }
        if let Some(s) = e.status {
            *status = s;
        }
    }
}

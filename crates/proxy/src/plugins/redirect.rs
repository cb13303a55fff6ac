//! `redirect`: answers with a redirect. ShenYu dispatches a leading-`/` target internally to its own
//! Spring handlers; TiGateway has none, so every target becomes a `Location` redirect.

use bytes::Bytes;
use http::HeaderValue;
use tigateway_model::handle::{parse_handle, RedirectHandle};

use super::*;

pub struct Factory;

struct Target {
    location: Option<HeaderValue>,
    status: StatusCode,
}

struct Redirect {
    rules: Vec<Target>,
    default: Target,
}

fn compile(h: Option<&str>) -> Result<Target, String> {
    let h: RedirectHandle = parse_handle(h)?;
    let status =
        StatusCode::from_u16(h.http_status_code.unwrap_or(302) as u16).map_err(|e| format!("httpStatusCode: {e}"))?;
    let location = match h.redirect_uri.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(
            HeaderValue::from_str(u.trim()).map_err(|_| format!("redirectURI is not a valid header value: {u:?}"))?,
        ),
        None => None,
    };
    Ok(Target { location, status })
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        "redirect"
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let (rules, default) = compile_rules(input, |h, _| compile(h))?;
        Ok(Box::new(Redirect { rules, default }))
    }
}

impl Plugin for Redirect {
    fn on_request<'s>(&'s self, _ctx: &mut Ctx, m: Option<&Matched>) -> Flow<'s> {
        let t = chosen(&self.rules, &self.default, m);
        let Some(loc) = &t.location else { return Flow::Continue };
        let mut resp = Response::new(ProxyBody::full(Bytes::new()));
        *resp.status_mut() = t.status;
        resp.headers_mut().insert(http::header::LOCATION, loc.clone());
        Flow::Respond(resp)
    }
}

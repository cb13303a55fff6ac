//! `rewrite`: regex replacement of the upstream path (`$1`, `${name}` groups).

use regex::Regex;
use tigateway_model::handle::{parse_handle, RewriteHandle};

use super::*;

pub struct Factory;

struct Compiled {
    regex: Option<Regex>,
    replace: String,
    percentage: Option<u64>,
}

struct Rewrite {
    rules: Vec<Compiled>,
    default: Compiled,
}

fn compile(h: Option<&str>) -> Result<Compiled, String> {
    let h: RewriteHandle = parse_handle(h)?;
    let regex = match h.regex.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(Regex::new(r).map_err(|e| format!("regex: {e}"))?),
        None => None,
    };
    Ok(Compiled { regex, replace: h.replace.unwrap_or_default(), percentage: h.percentage })
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        "rewrite"
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let (rules, default) = compile_rules(input, |h, _| compile(h))?;
        Ok(Box::new(Rewrite { rules, default }))
    }
}

impl Plugin for Rewrite {
    fn on_request<'s>(&'s self, ctx: &mut Ctx, m: Option<&Matched>) -> Flow<'s> {
        let c = chosen(&self.rules, &self.default, m);
        let Some(re) = &c.regex else { return Flow::Continue };
        if !roll(c.percentage) {
            return Flow::Continue;
        }
        let replaced = re.replace_all(ctx.current_path(), c.replace.as_str());
        let mut path = replaced.into_owned();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        ctx.upstream_path = Some(path);
        Flow::Continue
    }
}

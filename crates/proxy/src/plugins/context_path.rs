//! `contextPath`: strips a service's context path (and may add a prefix) before the upstream call.
//! Unlike ShenYu, which cuts `len(contextPath)` characters unchecked, the path is only stripped when it
//! really starts with the context path.

use tigateway_model::handle::{parse_handle, ContextPathHandle};

use super::*;

pub struct Factory;

struct ContextPath {
    rules: Vec<ContextPathHandle>,
    default: ContextPathHandle,
}

impl PluginFactory for Factory {
    fn name(&self) -> &'static str {
        "contextPath"
    }
    fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn Plugin>, Vec<ValidationError>> {
        let (rules, default) = compile_rules(input, |h, _| parse_handle::<ContextPathHandle>(h))?;
        Ok(Box::new(ContextPath { rules, default }))
    }
}

impl Plugin for ContextPath {
    fn on_request<'s>(&'s self, ctx: &mut Ctx, m: Option<&Matched>) -> Flow<'s> {
        let h = chosen(&self.rules, &self.default, m);
        if !roll(h.percentage) {
            return Flow::Continue;
        }
        let current = ctx.current_path();
        let mut path = match h.context_path.as_deref().map(|c| c.trim_end_matches('/')).filter(|c| !c.is_empty()) {
            Some(cp) if current == cp => "/".to_string(),
            Some(cp) if current.starts_with(cp) && current.as_bytes().get(cp.len()) == Some(&b'/') => {
                current[cp.len()..].to_string()
            }
            _ => current.to_string(),
        };
        if let Some(prefix) = h.add_prefix.as_deref().map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty()) {
            path = if path == "/" { prefix.to_string() } else { format!("{prefix}{path}") };
        }
        ctx.upstream_path = Some(path);
        Flow::Continue
    }
}

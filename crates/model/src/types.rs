//! ShenYu-compatible data objects: what the admin stores and what sync carries.

use serde::{Deserialize, Serialize};

use crate::wire;

/// A stage of the plugin chain. `sort` orders the chain; `config` is plugin-wide JSON (a string on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugin {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "wire::json_string_de", skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "wire::lenient_i64", skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_jar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
}

fn yes() -> bool {
    true
}

fn bool_default_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(wire::lenient_bool(d)?.unwrap_or(true))
}

fn bool_default_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(wire::lenient_bool(d)?.unwrap_or(false))
}

/// One match condition. Kept as strings so validation can report every bad value with its path
/// instead of failing at the first unknown operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub param_type: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_value: Option<String>,
    // ShenYu admins send these on ConditionData; they carry nothing the gateway needs.
    #[serde(default, skip_serializing)]
    pub id: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub selector_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub rule_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub param_name_desc: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub date_created: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub date_updated: Option<serde_json::Value>,
}

impl Condition {
    pub fn new(param_type: &str, operator: &str, param_name: Option<&str>, param_value: &str) -> Self {
        Condition {
            param_type: param_type.to_string(),
            operator: operator.to_string(),
            param_name: param_name.map(str::to_string),
            param_value: Some(param_value.to_string()),
            ..Default::default()
        }
    }
}

/// `matchMode`: 0 = and, 1 = or.
pub const MATCH_AND: i32 = 0;
pub const MATCH_OR: i32 = 1;
/// Selector `type`: 0 = full flow (matches everything), 1 = custom (conditions).
pub const SELECTOR_FULL: i32 = 0;
pub const SELECTOR_CUSTOM: i32 = 1;

/// Coarse filter of a plugin's traffic (e.g. "the /api/users service").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_id: Option<String>,
    pub plugin_name: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "wire::match_mode_de")]
    pub match_mode: i32,
    #[serde(default = "custom_type", rename = "type", deserialize_with = "wire::selector_type_de")]
    pub selector_type: i32,
    #[serde(default, deserialize_with = "wire::lenient_i64", skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub enabled: bool,
    /// ShenYu's selector spells it `logged`; accept the rule's `loged` too.
    #[serde(default, alias = "loged", deserialize_with = "bool_default_false")]
    pub logged: bool,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub continued: bool,
    #[serde(default, deserialize_with = "wire::handle_de", skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, alias = "conditions", alias = "conditionDataList")]
    pub condition_list: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_condition_list: Option<Vec<Condition>>,
    #[serde(default, deserialize_with = "wire::lenient_bool", skip_serializing_if = "Option::is_none")]
    pub match_restful: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
}

fn custom_type() -> i32 {
    SELECTOR_CUSTOM
}

/// Fine filter within a selector; its `handle` is the plugin's per-request settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub plugin_name: String,
    pub selector_id: String,
    #[serde(default, deserialize_with = "wire::match_mode_de")]
    pub match_mode: i32,
    #[serde(default, deserialize_with = "wire::lenient_i64", skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub enabled: bool,
    /// ShenYu's rule spells it `loged` (sic); accept `logged` too.
    #[serde(default, rename = "loged", alias = "logged", deserialize_with = "bool_default_false")]
    pub logged: bool,
    #[serde(default, deserialize_with = "wire::handle_de", skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, alias = "conditions", alias = "conditionList")]
    pub condition_data_list: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_condition_data_list: Option<Vec<Condition>>,
    #[serde(default, deserialize_with = "wire::lenient_bool", skip_serializing_if = "Option::is_none")]
    pub match_restful: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
}

/// RPC method mapping (dubbo generic call, spring-cloud context paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetaData {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub app_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_path: Option<String>,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_desc: Option<String>,
    #[serde(default)]
    pub rpc_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_types: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_ext: Option<String>,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthParam {
    pub app_name: String,
    #[serde(default)]
    pub app_param: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthPath {
    #[serde(default)]
    pub app_name: String,
    pub path: String,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub enabled: bool,
}

/// App credentials for the sign plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub app_key: String,
    pub app_secret: String,
    #[serde(default = "yes", deserialize_with = "bool_default_true")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "bool_default_false")]
    pub open: bool,
    #[serde(default)]
    pub param_data_list: Vec<AuthParam>,
    #[serde(default)]
    pub path_data_list: Vec<AuthPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
}

/// One upstream of a selector as ShenYu 2.6+ sends it in DISCOVER_UPSTREAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryUpstream {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_handler_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub url: String,
    /// 0 = healthy (ShenYu's convention).
    #[serde(default, deserialize_with = "wire::lenient_i64")]
    pub status: Option<i64>,
    #[serde(default, deserialize_with = "wire::lenient_i64")]
    pub weight: Option<i64>,
    #[serde(default, deserialize_with = "wire::json_string_de", skip_serializing_if = "Option::is_none")]
    pub props: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
}

/// DISCOVER_UPSTREAM payload: the whole upstream list of one selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoverySyncData {
    pub selector_id: String,
    #[serde(default)]
    pub plugin_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector_name: Option<String>,
    #[serde(default)]
    pub upstream_data_list: Vec<DiscoveryUpstream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_handler_id: Option<String>,
}

/// Condition parameter sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    Uri,
    Path,
    Query,
    Header,
    Cookie,
    Host,
    Domain,
    Ip,
    ReqMethod,
    Post,
}

impl ParamType {
    pub fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "uri" => ParamType::Uri,
            "path" => ParamType::Path,
            "query" => ParamType::Query,
            "header" => ParamType::Header,
            "cookie" => ParamType::Cookie,
            "host" => ParamType::Host,
            "domain" => ParamType::Domain,
            "ip" => ParamType::Ip,
            "req_method" | "reqMethod" | "method" => ParamType::ReqMethod,
            "post" => ParamType::Post,
            _ => return None,
        })
    }

    /// Whether the condition reads a named item (header name, query key, cookie name...).
    pub fn needs_name(self) -> bool {
        matches!(self, ParamType::Query | ParamType::Header | ParamType::Cookie | ParamType::Post)
    }
}

/// Condition operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Match,
    Eq,
    Regex,
    Contains,
    StartsWith,
    EndsWith,
    PathPattern,
    Exclude,
    IsBlank,
    TimeBefore,
    TimeAfter,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "match" => Operator::Match,
            "=" | "equals" => Operator::Eq,
            "regex" => Operator::Regex,
            "contains" => Operator::Contains,
            "startsWith" => Operator::StartsWith,
            "endsWith" => Operator::EndsWith,
            "pathPattern" => Operator::PathPattern,
            "exclude" => Operator::Exclude,
            "isBlank" => Operator::IsBlank,
            "TimeBefore" => Operator::TimeBefore,
            "TimeAfter" => Operator::TimeAfter,
            _ => return None,
        })
    }
}

/// The time format of TimeBefore/TimeAfter values (gateway local time), as ShenYu.
pub const CONDITION_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Built-in plugins and their default order (ShenYu 2.7.1 `PluginEnum` codes where ShenYu has them).
pub const BUILTIN_PLUGINS: &[(&str, i64)] = &[
    ("global", -1),
    ("sign", 20),
    ("jwt", 30),
    ("waf", 50),
    ("rateLimiter", 60),
    ("paramMapping", 70),
    ("contextPath", 80),
    ("rewrite", 90),
    ("redirect", 110),
    ("request", 120),
    ("hystrix", 130),
    ("sentinel", 140),
    ("route", 195),
    ("divide", 200),
    ("websocket", 200),
    ("springCloud", 200),
    ("grpc", 310),
    ("dubbo", 310),
    ("sofa", 310),
    ("tars", 310),
    ("motan", 310),
    ("resilience4j", 310),
    ("modifyResponse", 220),
    ("response", 420),
];

/// Plugins whose data plane exists in this build; the others are accepted in config (a ShenYu admin
/// seeds them) but are skipped with a warning until implemented.
pub const IMPLEMENTED_PLUGINS: &[&str] =
    &["contextPath", "rewrite", "redirect", "request", "route", "divide", "websocket", "modifyResponse"];

pub fn builtin_plugin_order(name: &str) -> Option<i64> {
    BUILTIN_PLUGINS.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
}

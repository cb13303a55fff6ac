//! Content hashes per config group (ShenYu long polling compares an MD5 per group).

use md5::{Digest, Md5};
use serde::Serialize;

use crate::config::Config;

/// MD5 hex of each group's JSON list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct GroupHashes {
    pub plugin: String,
    pub selector: String,
    pub rule: String,
    pub meta_data: String,
    pub app_auth: String,
    pub discover_upstream: String,
    pub routes: String,
}

pub fn md5_json<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_vec(value).expect("model values always serialize");
    hex(&Md5::digest(&text))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn group_hashes(cfg: &Config) -> GroupHashes {
    GroupHashes {
        plugin: md5_json(&cfg.plugins),
        selector: md5_json(&cfg.selectors),
        rule: md5_json(&cfg.rules),
        meta_data: md5_json(&cfg.metadata),
        app_auth: md5_json(&cfg.app_auth),
        discover_upstream: md5_json(&cfg.discovery_upstreams),
        routes: md5_json(&cfg.routes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_hash_matches_shenyu() {
        // ShenYu: md5("[]") for an empty group.
        assert_eq!(md5_json(&Vec::<u8>::new()), "d751713988987e9331980363e24189ce");
    }

    #[test]
    fn hash_changes_only_for_changed_group() {
        let a = Config::from_yaml_str("selectors: [{id: s, pluginName: divide, type: 0}]").unwrap();
        let mut b = a.clone();
        b.selectors[0].name = "renamed".into();
        let (ha, hb) = (group_hashes(&a), group_hashes(&b));
        assert_ne!(ha.selector, hb.selector);
        assert_eq!(ha.rule, hb.rule);
    }
}

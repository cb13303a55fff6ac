//! What to write to bring a node tree from one state to another.
//!
//! The paths and JSON come from `tigateway_sync::layout` (the gateway reads the same module), so
//! what the admin writes and what a gateway reads cannot drift apart.

use std::collections::BTreeMap;

pub use tigateway_sync::layout::{Layout, NodeKind, DEFAULT_NAMESPACE};

/// Nodes to write and nodes to remove.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeChanges {
    pub put: Vec<(String, Vec<u8>)>,
    pub delete: Vec<String>,
    /// Written after everything else, in the same request where it fits (the revision marker).
    pub last: Option<(String, Vec<u8>)>,
}

impl NodeChanges {
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.delete.is_empty() && self.last.is_none()
    }
}

/// The writes that turn `old` into `new`: nodes new or with other data, and nodes gone.
pub fn diff(old: &BTreeMap<String, Vec<u8>>, new: &BTreeMap<String, Vec<u8>>) -> NodeChanges {
    let put = new.iter().filter(|(p, d)| old.get(*p) != Some(*d)).map(|(p, d)| (p.clone(), d.clone())).collect();
    let delete = old.keys().filter(|p| !new.contains_key(*p)).cloned().collect();
    NodeChanges { put, delete, last: None }
}

/// The nodes of `tree` that hold config objects of `layout` (directories, foreign nodes and the
/// revision marker left out).
pub fn managed(layout: &Layout, tree: impl IntoIterator<Item = (String, Vec<u8>)>) -> BTreeMap<String, Vec<u8>> {
    tree.into_iter()
        .filter(|(p, d)| !d.is_empty() && !matches!(layout.classify(p), None | Some(NodeKind::Revision)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_writes_only_what_changed() {
        let a: BTreeMap<String, Vec<u8>> =
            [("/a".to_string(), b"1".to_vec()), ("/b".to_string(), b"2".to_vec())].into_iter().collect();
        let b: BTreeMap<String, Vec<u8>> =
            [("/a".to_string(), b"1".to_vec()), ("/c".to_string(), b"3".to_vec())].into_iter().collect();
        let d = diff(&a, &b);
        assert_eq!(d.put, vec![("/c".to_string(), b"3".to_vec())]);
        assert_eq!(d.delete, vec!["/b".to_string()]);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn managed_skips_directories_and_foreign_nodes() {
        let l = Layout::new(Some("ns"), false);
        let m = managed(
            &l,
            vec![
                ("/ns/shenyu/selector/divide".to_string(), Vec::new()),
                ("/ns/shenyu/plugin/divide".to_string(), b"{}".to_vec()),
                ("/ns/other".to_string(), b"x".to_vec()),
            ],
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["/ns/shenyu/plugin/divide"]);
    }
}

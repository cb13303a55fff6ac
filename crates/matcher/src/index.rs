//! Literal-prefix trie over path segments.
//!
//! Each entry is a literal path prefix (whole segments) and an id; a lookup walks the request path
//! one segment at a time through hash maps, so it costs one hash probe per path segment however
//! many unrelated entries exist. Empty segments are skipped on both sides: a superset of
//! candidates is always safe (the caller still evaluates them), a missing one never is, and Spring's
//! Ant matcher itself ignores empty segments.

use std::collections::HashMap;

use smallvec::SmallVec;

#[derive(Debug, Default, Clone)]
struct Node {
    ids: Vec<u32>,
    children: HashMap<Box<str>, Node>,
}

impl Node {
    fn finish(&mut self) {
        self.ids.sort_unstable();
        self.ids.dedup();
        self.ids.shrink_to_fit();
        self.children.shrink_to_fit();
        for c in self.children.values_mut() {
            c.finish();
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// An immutable prefix index, built once per snapshot.
#[derive(Debug, Default, Clone)]
pub struct PrefixIndex {
    root: Node,
    fallback: Vec<u32>,
}

/// Collects entries for a [`PrefixIndex`].
#[derive(Debug, Default)]
pub struct PrefixIndexBuilder {
    root: Node,
    fallback: Vec<u32>,
}

impl PrefixIndexBuilder {
    /// `prefix` is a literal path prefix ending at a segment boundary; `""` and `"/"` mean every
    /// path.
    pub fn insert(&mut self, prefix: &str, id: u32) {
        let mut node = &mut self.root;
        let mut any = false;
        for seg in segments(prefix) {
            any = true;
            node = node.children.entry(seg.into()).or_default();
        }
        if any {
            node.ids.push(id);
        } else {
            self.fallback.push(id);
        }
    }

    /// An id that is a candidate for every path.
    pub fn insert_fallback(&mut self, id: u32) {
        self.fallback.push(id);
    }

    pub fn build(mut self) -> PrefixIndex {
        self.root.finish();
        self.fallback.sort_unstable();
        self.fallback.dedup();
        self.fallback.shrink_to_fit();
        PrefixIndex { root: self.root, fallback: self.fallback }
    }
}

impl PrefixIndex {
    pub fn builder() -> PrefixIndexBuilder {
        PrefixIndexBuilder::default()
    }

    /// Appends, sorted ascending and without duplicates, the fallbacks and every id whose prefix is
    /// a whole-segment prefix of `path`. Entries already in `out` are left as they are.
    pub fn candidates(&self, path: &str, out: &mut SmallVec<[u32; 16]>) {
        let start = out.len();
        out.extend_from_slice(&self.fallback);
        let mut runs = usize::from(!self.fallback.is_empty());
        let mut node = &self.root;
        for seg in segments(path) {
            if node.children.is_empty() {
                break;
            }
            match node.children.get(seg) {
                None => break,
                Some(child) => {
                    if !child.ids.is_empty() {
                        out.extend_from_slice(&child.ids);
                        runs += 1;
                    }
                    node = child;
                }
            }
        }
        // Each run is sorted and unique already; only a merge of several needs work.
        if runs > 1 {
            let tail = &mut out[start..];
            tail.sort_unstable();
            let mut w = start;
            for r in start..out.len() {
                if w == start || out[r] != out[w - 1] {
                    out[w] = out[r];
                    w += 1;
                }
            }
            out.truncate(w);
        }
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.fallback.is_empty() && self.root.children.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(ix: &PrefixIndex, path: &str) -> Vec<u32> {
        let mut out = SmallVec::new();
        ix.candidates(path, &mut out);
        out.to_vec()
    }

    fn sample() -> PrefixIndex {
        let mut b = PrefixIndex::builder();
        b.insert("/api", 5);
        b.insert("/api/users", 2);
        b.insert("/api/users/", 9);
        b.insert("/api/orders", 3);
        b.insert("", 7);
        b.insert("/", 1);
        b.insert_fallback(4);
        b.insert_fallback(4);
        b.insert("/api/users", 2);
        b.build()
    }

    #[test]
    fn returns_segment_prefixes_and_fallbacks_sorted_unique() {
        let ix = sample();
        assert_eq!(lookup(&ix, "/api/users/42"), vec![1, 2, 4, 5, 7, 9]);
        assert_eq!(lookup(&ix, "/api/users"), vec![1, 2, 4, 5, 7, 9]);
        assert_eq!(lookup(&ix, "/api/orders/1"), vec![1, 3, 4, 5, 7]);
        assert_eq!(lookup(&ix, "/api"), vec![1, 4, 5, 7]);
        assert_eq!(lookup(&ix, "/"), vec![1, 4, 7]);
        // Not a whole-segment prefix.
        assert_eq!(lookup(&ix, "/apix/users"), vec![1, 4, 7]);
        assert_eq!(lookup(&ix, "/other"), vec![1, 4, 7]);
        // Empty segments are skipped.
        assert_eq!(lookup(&ix, "/api//users"), vec![1, 2, 4, 5, 7, 9]);
    }

    #[test]
    fn appends_after_existing_entries() {
        let ix = sample();
        let mut out: SmallVec<[u32; 16]> = SmallVec::new();
        out.push(100);
        ix.candidates("/api/orders", &mut out);
        assert_eq!(out.to_vec(), vec![100, 1, 3, 4, 5, 7]);
    }

    #[test]
    fn empty_index_gives_nothing() {
        let ix = PrefixIndex::builder().build();
        assert!(ix.is_empty());
        assert!(lookup(&ix, "/a").is_empty());
    }

    #[test]
    fn matches_a_naive_scan() {
        let words = ["a", "b", "c", "dd"];
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let gen_path = |next: &mut dyn FnMut(usize) -> usize| {
            let n = next(4);
            (0..n).map(|_| format!("/{}", words[next(words.len())])).collect::<String>()
        };
        let mut entries = Vec::new();
        let mut b = PrefixIndex::builder();
        for id in 0..200u32 {
            let p = gen_path(&mut next);
            b.insert(&p, id);
            entries.push((p, id));
        }
        let ix = b.build();
        for _ in 0..500 {
            let path = gen_path(&mut next);
            let path = if path.is_empty() { "/".to_string() } else { path };
            let seg_prefix = |p: &str| p.is_empty() || path == p || path.starts_with(&format!("{p}/"));
            let mut want: Vec<u32> = entries.iter().filter(|(p, _)| seg_prefix(p)).map(|(_, id)| *id).collect();
            want.sort_unstable();
            assert_eq!(lookup(&ix, &path), want, "path {path}");
        }
    }
}

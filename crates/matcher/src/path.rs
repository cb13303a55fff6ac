//! Spring AntPathMatcher and PathPattern semantics.
//!
//! Both flavours are parsed once into per-segment matchers; any regular expression (for `{v:re}`
//! or a segment mixing literals and wildcards such as `*.html`) is compiled at parse time, so a
//! match walks the path once and allocates nothing unless the path is unusually deep (more than
//! 16 segments for an Ant pattern with `**`) or, for `PathPattern`, a segment holds a
//! percent-escape that must be decoded before comparison.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use smallvec::SmallVec;

/// One path segment of a pattern.
#[derive(Debug, Clone)]
enum Seg {
    Literal(Box<str>),
    /// A segment that is exactly `*`: kept apart from `Glob` because it is by far the most common
    /// wildcard and needs no regex.
    Star,
    /// A segment that is exactly `{name}` or `{name:re}`.
    Var {
        name: Box<str>,
        constraint: Option<Regex>,
    },
    /// Anything else with wildcards: `*.html`, `a?c`, `{a}-{b}`. `vars` maps each variable to its
    /// capture group, which is not simply its position when a user regex has groups of its own.
    Glob {
        re: Regex,
        vars: Box<[(Box<str>, usize)]>,
    },
}

impl Seg {
    fn matches(&self, v: &str) -> bool {
        match self {
            Seg::Literal(l) => **l == *v,
            Seg::Star => true,
            Seg::Var { constraint: None, .. } => !v.is_empty(),
            Seg::Var { constraint: Some(re), .. } => re.is_match(v),
            Seg::Glob { re, .. } => re.is_match(v),
        }
    }

    /// Like `matches`, also recording variables. Returns false (and may leave partial captures,
    /// which the caller discards) when the segment does not match.
    fn capture(&self, v: &str, out: &mut Vec<(String, String)>) -> bool {
        match self {
            Seg::Var { name, .. } => {
                if !self.matches(v) {
                    return false;
                }
                out.push((name.to_string(), v.to_string()));
                true
            }
            Seg::Glob { re, vars } => match re.captures(v) {
                None => false,
                Some(c) => {
                    for (name, group) in vars.iter() {
                        let value = c.get(*group).map_or("", |m| m.as_str());
                        out.push((name.to_string(), value.to_string()));
                    }
                    true
                }
            },
            _ => self.matches(v),
        }
    }
}

/// Index of the `}` closing the `{` at `open`, allowing nested braces (`{id:\d{3}}`) and
/// backslash escapes inside a variable's regex.
fn find_close(s: &str, open: usize) -> Result<usize, String> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("unbalanced '{{' in {s:?}"))
}

/// Splits the inside of `{...}` into a name and an optional regex.
fn parse_var(inner: &str, segment: &str) -> Result<(Box<str>, Option<String>), String> {
    let (name, re) = match inner.split_once(':') {
        Some((n, r)) => (n, Some(r.to_string())),
        None => (inner, None),
    };
    if name.is_empty() {
        return Err(format!("empty variable name in {segment:?}"));
    }
    if let Some(rest) = name.strip_prefix('*') {
        return Err(format!("{{*{rest}}} is only allowed as the whole last segment (in {segment:?})"));
    }
    Ok((name.into(), re))
}

fn whole_regex(re: &str, segment: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("bad regex in {segment:?}: {e}"))
}

fn parse_segment(s: &str) -> Result<Seg, String> {
    if s == "*" {
        return Ok(Seg::Star);
    }
    if !s.contains(['*', '?', '{', '}']) {
        return Ok(Seg::Literal(s.into()));
    }
    if s.starts_with('{') && find_close(s, 0)? == s.len() - 1 {
        let (name, re) = parse_var(&s[1..s.len() - 1], s)?;
        let constraint = re.map(|r| whole_regex(&r, s)).transpose()?;
        return Ok(Seg::Var { name, constraint });
    }
    let mut re = String::from("(?s)^");
    let mut vars = Vec::new();
    let mut group = 1;
    let mut literal = String::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or_default();
        let special = matches!(c, '*' | '?' | '{' | '}');
        if special && !literal.is_empty() {
            re.push_str(&regex::escape(&literal));
            literal.clear();
        }
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '{' => {
                let close = find_close(s, i)?;
                let (name, var_re) = parse_var(&s[i + 1..close], s)?;
                let var_re = var_re.unwrap_or_else(|| ".*".to_string());
                let inner_groups =
                    Regex::new(&var_re).map_err(|e| format!("bad regex in {s:?}: {e}"))?.captures_len() - 1;
                re.push('(');
                re.push_str(&var_re);
                re.push(')');
                vars.push((name, group));
                group += 1 + inner_groups;
                i = close;
            }
            '}' => return Err(format!("unbalanced '}}' in {s:?}")),
            _ => literal.push(c),
        }
        i += c.len_utf8();
    }
    re.push_str(&regex::escape(&literal));
    re.push('$');
    let re = Regex::new(&re).map_err(|e| format!("bad pattern {s:?}: {e}"))?;
    Ok(Seg::Glob { re, vars: vars.into_boxed_slice() })
}

/// A pattern with Spring `AntPathMatcher` semantics, as ShenYu's `match` operator uses on `uri`.
///
/// Empty segments are ignored on both sides (as Spring tokenises), `**` spans any number of
/// segments including none, and a trailing `/` must agree between pattern and path except where
/// `**` absorbs it (and the Spring quirk that `/a/*` matches `/a/`).
#[derive(Debug, Clone)]
pub struct AntPattern {
    source: Box<str>,
    segs: Vec<AntTok>,
    leading_slash: bool,
    trailing_slash: bool,
    has_double_star: bool,
    prefix: String,
}

/// An Ant token: `**` is only meaningful here, `PathPattern` handles it as a tail.
#[derive(Debug, Clone)]
enum AntTok {
    DoubleStar,
    Seg(Seg),
}

impl AntTok {
    fn matches(&self, v: &str) -> bool {
        match self {
            AntTok::DoubleStar => true,
            AntTok::Seg(s) => s.matches(v),
        }
    }
}

impl AntPattern {
    pub fn parse(p: &str) -> Result<AntPattern, String> {
        let mut segs = Vec::new();
        for tok in p.split('/').filter(|t| !t.is_empty()) {
            if tok == "**" {
                segs.push(AntTok::DoubleStar);
            } else {
                segs.push(AntTok::Seg(parse_segment(tok)?));
            }
        }
        let leading_slash = p.starts_with('/');
        let mut prefix = String::new();
        if leading_slash {
            for s in &segs {
                match s {
                    AntTok::Seg(Seg::Literal(l)) => {
                        prefix.push('/');
                        prefix.push_str(l);
                    }
                    _ => break,
                }
            }
        }
        let has_double_star = segs.iter().any(|s| matches!(s, AntTok::DoubleStar));
        Ok(AntPattern {
            source: p.into(),
            segs,
            leading_slash,
            trailing_slash: p.ends_with('/'),
            has_double_star,
            prefix,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Leading fully literal segments, e.g. `/api/users` for `/api/users/**`; empty when the first
    /// segment already has a wildcard (or the pattern has no leading `/`, so can never match a
    /// normalised path anyway).
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    fn is_dstar(&self, i: usize) -> bool {
        matches!(self.segs[i], AntTok::DoubleStar)
    }

    pub fn matches(&self, path: &str) -> bool {
        if path.starts_with('/') != self.leading_slash {
            return false;
        }
        let path_trailing = path.ends_with('/');
        if !self.has_double_star {
            // Same algorithm without `**`: a one-to-one walk, no buffering of tokens.
            let mut toks = path.split('/').filter(|t| !t.is_empty());
            let mut count = 0;
            for seg in &self.segs {
                match toks.next() {
                    Some(t) if seg.matches(t) => count += 1,
                    Some(_) => return false,
                    None => {
                        // Path ran out: only `/a/*` against `/a/` survives (Spring quirk).
                        return count + 1 == self.segs.len() && matches!(seg, AntTok::Seg(Seg::Star)) && path_trailing;
                    }
                }
            }
            return toks.next().is_none() && self.trailing_slash == path_trailing;
        }
        let toks: SmallVec<[&str; 16]> = path.split('/').filter(|t| !t.is_empty()).collect();
        self.match_tokens(&toks, path_trailing)
    }

    /// Spring's `doMatch` with full match: prefix up to the first `**`, suffix back to the last
    /// one, then each run between two `**` matched at its leftmost position.
    fn match_tokens(&self, toks: &[&str], path_trailing: bool) -> bool {
        let segs = &self.segs;
        let all_dstar = |from: usize, to_excl: usize| (from..to_excl).all(|i| self.is_dstar(i));
        let (mut ps, mut pe) = (0usize, segs.len());
        let (mut ts, mut te) = (0usize, toks.len());
        while ps < pe && ts < te {
            if self.is_dstar(ps) {
                break;
            }
            if !segs[ps].matches(toks[ts]) {
                return false;
            }
            ps += 1;
            ts += 1;
        }
        if ts == te {
            if ps == pe {
                return self.trailing_slash == path_trailing;
            }
            if ps + 1 == pe && matches!(segs[ps], AntTok::Seg(Seg::Star)) && path_trailing {
                return true;
            }
            return all_dstar(ps, pe);
        } else if ps == pe {
            return false;
        }
        while ps < pe && ts < te {
            if self.is_dstar(pe - 1) {
                break;
            }
            if !segs[pe - 1].matches(toks[te - 1]) {
                return false;
            }
            pe -= 1;
            te -= 1;
        }
        if ts == te {
            return all_dstar(ps, pe);
        }
        // Now segs[ps] and segs[pe - 1] are both `**`.
        while ps + 1 < pe && ts < te {
            let next = (ps + 1..pe).find(|&i| self.is_dstar(i)).unwrap_or(pe - 1);
            if next == ps + 1 {
                ps += 1;
                continue;
            }
            let run = &segs[ps + 1..next];
            let avail = te - ts;
            if run.len() > avail {
                return false;
            }
            let found =
                (0..=avail - run.len()).find(|&off| run.iter().zip(&toks[ts + off..]).all(|(s, t)| s.matches(t)));
            match found {
                None => return false,
                Some(off) => {
                    ts += off + run.len();
                    ps = next;
                }
            }
        }
        all_dstar(ps, pe)
    }
}

impl fmt::Display for AntPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// What may follow the last fixed segment of a `PathPattern`.
#[derive(Debug, Clone)]
enum Tail {
    None,
    /// `**`: zero or more further segments.
    AnyRest,
    /// `{*name}`: the same, captured (with its leading `/`).
    CaptureRest(Box<str>),
}

/// A pattern with Spring WebFlux `PathPattern` semantics, as Spring Cloud Gateway's `Path=`
/// predicate and ShenYu's `pathPattern` operator use.
///
/// Segments are compared after percent-decoding (as Spring matches decoded segments). `*` needs at
/// least one character except as the last segment, `{v}` needs at least one. `**` and `{*v}` are
/// only allowed last. `/a/b` does not match `/a/b/` unless [`PathPattern::with_trailing_slash`] is
/// on; the default is off, as in Spring 6's parser; SCG's `Path=` turns it on (its
/// `matchTrailingSlash` defaults to true).
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: Box<str>,
    /// The pattern split on `/`, so a leading `/` gives an empty first piece, as does the path.
    pieces: Vec<Seg>,
    tail: Tail,
    match_trailing_slash: bool,
    prefix: String,
}

fn decoded(s: &str) -> Cow<'_, str> {
    if s.contains('%') {
        percent_encoding::percent_decode_str(s).decode_utf8_lossy()
    } else {
        Cow::Borrowed(s)
    }
}

/// Characters that a normalised path never carries percent-encoded, so a literal made only of
/// them compares equal on the raw path and on the decoded one; only such literals may be used
/// for the (raw-path) prefix index.
fn is_unreserved_literal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl PathPattern {
    pub fn parse(p: &str) -> Result<PathPattern, String> {
        let raw: Vec<&str> = p.split('/').collect();
        let mut pieces = Vec::with_capacity(raw.len());
        let mut tail = Tail::None;
        for (i, piece) in raw.iter().enumerate() {
            let last = i + 1 == raw.len();
            let rest = if *piece == "**" {
                Some(Tail::AnyRest)
            } else if let Some(name) = piece.strip_prefix("{*").and_then(|r| r.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err(format!("bad capture-the-rest variable {piece:?} in {p:?}"));
                }
                Some(Tail::CaptureRest(name.into()))
            } else {
                None
            };
            match rest {
                Some(t) if last => tail = t,
                Some(_) => return Err(format!("{piece:?} is only allowed as the last segment of {p:?}")),
                None => pieces.push(parse_segment(piece).map_err(|e| format!("{e} (in {p:?})"))?),
            }
        }
        let mut prefix = String::new();
        if matches!(pieces.first(), Some(Seg::Literal(l)) if l.is_empty()) {
            for s in &pieces[1..] {
                match s {
                    Seg::Literal(l) if is_unreserved_literal(l) => {
                        prefix.push('/');
                        prefix.push_str(l);
                    }
                    _ => break,
                }
            }
        }
        Ok(PathPattern { source: p.into(), pieces, tail, match_trailing_slash: false, prefix })
    }

    /// Whether `/a/b` also matches `/a/b/` (Spring's "optional trailing separator").
    pub fn with_trailing_slash(mut self, yes: bool) -> Self {
        self.match_trailing_slash = yes;
        self
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Leading literal segments, e.g. `/api/users` for `/api/users/**`. Stops at a literal with
    /// characters outside the URI "unreserved" set, because those may appear percent-encoded in
    /// a normalised path yet match after decoding.
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    pub fn matches(&self, path: &str) -> bool {
        if self.walk(path, None) {
            return true;
        }
        match self.trimmed_trailing(path) {
            Some(p) => self.walk(p, None),
            None => false,
        }
    }

    /// URI template variables of a match, in pattern order (`{*rest}` last).
    pub fn captures(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        if self.walk(path, Some(&mut out)) {
            return Some(out);
        }
        let p = self.trimmed_trailing(path)?;
        out.clear();
        self.walk(p, Some(&mut out)).then_some(out)
    }

    /// The path without its trailing `/`, when the trailing-slash option lets it be retried.
    fn trimmed_trailing<'p>(&self, path: &'p str) -> Option<&'p str> {
        if !self.match_trailing_slash || !matches!(self.tail, Tail::None) {
            return None;
        }
        if matches!(self.pieces.last(), Some(Seg::Literal(l)) if l.is_empty()) {
            return None;
        }
        let trimmed = path.strip_suffix('/')?;
        (!trimmed.is_empty() && !trimmed.ends_with('/')).then_some(trimmed)
    }

    fn walk(&self, path: &str, mut caps: Option<&mut Vec<(String, String)>>) -> bool {
        let mut it = path.split('/');
        let mut consumed = 0usize;
        let n = self.pieces.len();
        for (i, seg) in self.pieces.iter().enumerate() {
            let Some(piece) = it.next() else { return false };
            let start = if i == 0 { 0 } else { consumed + 1 };
            consumed = start + piece.len();
            if piece.is_empty() {
                // An empty piece (leading `/`, `//`, trailing `/`) is no segment: only an empty
                // literal or a final `*` (Spring: `/a/*` matches `/a/`) accepts it.
                let ok = match seg {
                    Seg::Literal(l) => l.is_empty(),
                    Seg::Star => i + 1 == n && matches!(self.tail, Tail::None),
                    _ => false,
                };
                if !ok {
                    return false;
                }
                continue;
            }
            let value = decoded(piece);
            let ok = match caps.as_deref_mut() {
                Some(out) => seg.capture(&value, out),
                None => seg.matches(&value),
            };
            if !ok {
                return false;
            }
        }
        match &self.tail {
            Tail::None => it.next().is_none(),
            Tail::AnyRest => true,
            Tail::CaptureRest(name) => {
                if let Some(out) = caps {
                    let rest = if n == 0 { path } else { path.get(consumed..).unwrap_or("") };
                    out.push((name.to_string(), decoded(rest).into_owned()));
                }
                true
            }
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ant(p: &str, path: &str) -> bool {
        AntPattern::parse(p).unwrap().matches(path)
    }

    fn pp(p: &str, path: &str) -> bool {
        PathPattern::parse(p).unwrap().matches(path)
    }

    #[test]
    fn ant_double_star_spans_zero_or_more_segments() {
        assert!(ant("/a/**", "/a"));
        assert!(ant("/a/**", "/a/"));
        assert!(ant("/a/**", "/a/b/c"));
        assert!(!ant("/a/**", "/ab"));
        assert!(!ant("/a/**", "/b/a"));
        assert!(ant("/**", "/"));
        assert!(ant("/**", "/x/y"));
        assert!(ant("/**/b", "/b"));
        assert!(ant("/**/b", "/x/y/b"));
        assert!(!ant("/**/b", "/x/y/c"));
        assert!(ant("/a/**/c/**/e", "/a/b/c/d/e"));
        assert!(ant("/a/**/c/**/e", "/a/c/e"));
        assert!(!ant("/a/**/c/**/e", "/a/b/d/e"));
        assert!(ant("/a/**/**/d", "/a/b/c/d"));
        assert!(ant("/a/**/b/c", "/a/x/b/y/b/c"));
    }

    #[test]
    fn ant_trailing_slash_must_agree() {
        assert!(ant("/a", "/a"));
        assert!(!ant("/a", "/a/"));
        assert!(!ant("/a/", "/a"));
        assert!(ant("/a/", "/a/"));
        // Spring quirk: a final `*` accepts the empty segment after a trailing slash.
        assert!(ant("/a/*", "/a/"));
        assert!(!ant("/a/*", "/a"));
        assert!(!ant("/a/*/c/*", "/a/b/c"));
        assert!(ant("/a/**/*", "/a/b/"));
    }

    #[test]
    fn ant_wildcards_and_variables() {
        assert!(ant("/a/?c", "/a/bc"));
        assert!(!ant("/a/?c", "/a/bbc"));
        assert!(ant("/*.html", "/index.html"));
        assert!(ant("/*.html", "/.html"));
        assert!(!ant("/*.html", "/index.htm"));
        assert!(!ant("/*.html", "/a/index.html"));
        assert!(ant("/user/{id}", "/user/42"));
        assert!(ant("/user/{id:\\d+}", "/user/42"));
        assert!(!ant("/user/{id:\\d+}", "/user/4x2"));
        assert!(ant("/user/{id:\\d{2}}", "/user/42"));
        assert!(!ant("/user/{id:\\d{2}}", "/user/423"));
        assert!(ant("/f/{a}-{b:[0-9]+}.txt", "/f/x-12.txt"));
        assert!(!ant("/f/{a}-{b:[0-9]+}.txt", "/f/x-y.txt"));
        // A literal dot is not a regex wildcard.
        assert!(!ant("/a.b", "/axb"));
        assert!(!ant("/*", "/a/b"));
        assert!(!ant("a/b", "/a/b"));
        // Empty tokens are ignored, as Spring tokenises.
        assert!(ant("/a/b", "/a//b"));
    }

    #[test]
    fn ant_with_many_segments_spills_but_matches() {
        let deep: String = (0..40).map(|i| format!("/s{i}")).collect();
        assert!(ant("/s0/**/s39", &deep));
        assert!(!ant("/s0/**/s40", &deep));
    }

    #[test]
    fn ant_literal_prefix() {
        assert_eq!(AntPattern::parse("/api/users/**").unwrap().literal_prefix(), "/api/users");
        assert_eq!(AntPattern::parse("/api/users").unwrap().literal_prefix(), "/api/users");
        assert_eq!(AntPattern::parse("/api/users/").unwrap().literal_prefix(), "/api/users");
        assert_eq!(AntPattern::parse("/**").unwrap().literal_prefix(), "");
        assert_eq!(AntPattern::parse("/api/*.json").unwrap().literal_prefix(), "/api");
        assert_eq!(AntPattern::parse("/a/{id}/b").unwrap().literal_prefix(), "/a");
        assert_eq!(AntPattern::parse("a/b").unwrap().literal_prefix(), "");
    }

    #[test]
    fn ant_rejects_broken_patterns() {
        assert!(AntPattern::parse("/a/{id").is_err());
        assert!(AntPattern::parse("/a/id}").is_err());
        assert!(AntPattern::parse("/a/{id:(}").is_err());
        assert!(AntPattern::parse("/a/{}").is_err());
    }

    #[test]
    fn path_pattern_basics() {
        assert!(pp("/a/b", "/a/b"));
        assert!(!pp("/a/b", "/a/b/"));
        assert!(!pp("/a/b/", "/a/b"));
        assert!(pp("/a/?", "/a/x"));
        assert!(!pp("/a/?", "/a/xy"));
        assert!(pp("/a/*", "/a/x"));
        assert!(pp("/a/*", "/a/"));
        assert!(!pp("/a/*", "/a"));
        assert!(!pp("/a/*/c", "/a//c"));
        assert!(pp("/*.html", "/index.html"));
        assert!(!pp("/*.html", "/x/index.html"));
        assert!(pp("/u/{id:\\d+}", "/u/7"));
        assert!(!pp("/u/{id:\\d+}", "/u/x"));
        assert!(!pp("/u/{id}", "/u/"));
        assert!(!pp("/u/{id}", "/u"));
        assert!(!pp("a/b", "/a/b"));
    }

    #[test]
    fn path_pattern_rest_wildcards() {
        assert!(pp("/a/**", "/a"));
        assert!(pp("/a/**", "/a/"));
        assert!(pp("/a/**", "/a/b/c"));
        assert!(!pp("/a/**", "/ab"));
        assert!(pp("/**", "/"));
        assert!(pp("/**", "/x"));
        let p = PathPattern::parse("/a/{*rest}").unwrap();
        assert_eq!(p.captures("/a/b/c").unwrap(), vec![("rest".to_string(), "/b/c".to_string())]);
        assert_eq!(p.captures("/a").unwrap(), vec![("rest".to_string(), String::new())]);
        assert!(p.captures("/b/c").is_none());
        let all = PathPattern::parse("/{*path}").unwrap();
        assert_eq!(all.captures("/x/y").unwrap(), vec![("path".to_string(), "/x/y".to_string())]);
    }

    #[test]
    fn path_pattern_only_last_rest_and_balanced() {
        assert!(PathPattern::parse("/a/**/b").is_err());
        assert!(PathPattern::parse("/{*x}/b").is_err());
        assert!(PathPattern::parse("/a/x{*y}").is_err());
        assert!(PathPattern::parse("/a/{x").is_err());
        assert!(PathPattern::parse("/a/x}").is_err());
        assert!(PathPattern::parse("/a/{x:[}").is_err());
        assert!(PathPattern::parse("/a/{*x}").is_ok());
    }

    #[test]
    fn path_pattern_trailing_slash_option() {
        let p = PathPattern::parse("/a/b").unwrap().with_trailing_slash(true);
        assert!(p.matches("/a/b"));
        assert!(p.matches("/a/b/"));
        assert!(!p.matches("/a/b//"));
        assert!(!p.matches("/a/bc"));
        let v = PathPattern::parse("/a/{seg}").unwrap().with_trailing_slash(true);
        assert_eq!(v.captures("/a/x/").unwrap(), vec![("seg".to_string(), "x".to_string())]);
        let slash = PathPattern::parse("/a/").unwrap().with_trailing_slash(true);
        assert!(!slash.matches("/a"));
    }

    #[test]
    fn path_pattern_captures_and_decoding() {
        let p = PathPattern::parse("/foo/{segment}").unwrap();
        assert_eq!(p.captures("/foo/bar").unwrap(), vec![("segment".to_string(), "bar".to_string())]);
        assert!(p.captures("/foo/bar/baz").is_none());
        let g = PathPattern::parse("/f/{name}.{ext:(?:tar\\.)?gz}").unwrap();
        assert_eq!(
            g.captures("/f/pkg.tar.gz").unwrap(),
            vec![("name".to_string(), "pkg.tar".to_string()), ("ext".to_string(), "gz".to_string())],
            "greedy, as java.util.regex would be"
        );
        // A user regex with its own group does not shift the next variable.
        let h = PathPattern::parse("/h/{a:(x|y)+}-{b}").unwrap();
        assert_eq!(
            h.captures("/h/xy-z").unwrap(),
            vec![("a".to_string(), "xy".to_string()), ("b".to_string(), "z".to_string())]
        );
        assert!(pp("/a b/c", "/a%20b/c"));
        assert_eq!(p.captures("/foo/a%20b").unwrap()[0].1, "a b");
    }

    #[test]
    fn path_pattern_literal_prefix() {
        assert_eq!(PathPattern::parse("/api/users/**").unwrap().literal_prefix(), "/api/users");
        assert_eq!(PathPattern::parse("/api/{id}").unwrap().literal_prefix(), "/api");
        assert_eq!(PathPattern::parse("/{*p}").unwrap().literal_prefix(), "");
        // `a b` could arrive as `a%20b`: not usable for a raw-path index.
        assert_eq!(PathPattern::parse("/x/a b/c").unwrap().literal_prefix(), "/x");
        assert_eq!(PathPattern::parse("x/y").unwrap().literal_prefix(), "");
    }

    /// Backtracking reference for patterns of literal, `*` and `**` tokens: with `**` present,
    /// Spring's algorithm ignores trailing slashes; without, they must agree.
    fn reference(pat: &[&str], toks: &[&str]) -> bool {
        match pat.split_first() {
            None => toks.is_empty(),
            Some((&"**", rest)) => (0..=toks.len()).any(|k| reference(rest, &toks[k..])),
            Some((p, rest)) => !toks.is_empty() && (*p == "*" || *p == toks[0]) && reference(rest, &toks[1..]),
        }
    }

    #[test]
    fn ant_agrees_with_backtracking_reference() {
        let words = ["a", "b", "*", "**"];
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let pat: Vec<&str> = (0..1 + next(5)).map(|_| words[next(4)]).collect();
            let toks: Vec<&str> = (0..next(6)).map(|_| words[next(2)]).collect();
            let p = format!("/{}", pat.join("/"));
            let path = format!("/{}", toks.join("/"));
            let got = AntPattern::parse(&p).unwrap().matches(&path);
            // With no `**`, a path's trailing slash must agree; none is generated here except
            // for the empty path `/`, handled by the quirk rules, so only compare non-empty paths.
            if !toks.is_empty() || pat.contains(&"**") {
                assert_eq!(got, reference(&pat, &toks), "{p} vs {path}");
            }
        }
    }
}

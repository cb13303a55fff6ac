//! Path normalisation, done once before matching so that every matcher and the upstream see the same
//! path: `/api/users/../admin` is `/admin` for routing *and* for the upstream, so it cannot reach a route
//! that `/admin` alone would not.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F`, `%5C` or `%00`: ambiguous between routing and the upstream's decoding.
    EncodedSeparator,
    /// `..` past the root.
    AboveRoot,
    /// A `%` not followed by two hex digits, or a path not starting with `/`.
    Malformed,
}

impl PathError {
    pub fn message(self) -> &'static str {
        match self {
            PathError::EncodedSeparator => "encoded '/', '\\' or NUL in the path is not allowed",
            PathError::AboveRoot => "path goes above the root with '..'",
            PathError::Malformed => "malformed path",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes percent-escapes of unreserved characters only (RFC 3986 §6.2.2.2), uppercases the others,
/// collapses `//`, resolves `.` and `..` (RFC 3986 §5.2.4). Borrowed when nothing changes.
pub fn normalize_path(raw: &str, allow_encoded_separators: bool) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return if raw == "*" { Ok(Cow::Borrowed(raw)) } else { Err(PathError::Malformed) };
    }
    // One pass (this runs for every request): an escape, `//`, or a segment starting with `.`.
    let mut prev = 0u8;
    let needs_work = bytes.iter().any(|&b| {
        let work = b == b'%' || (prev == b'/' && (b == b'/' || b == b'.'));
        prev = b;
        work
    });
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }

    // Pass 1: percent-decoding of unreserved characters.
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
            else {
                return Err(PathError::Malformed);
            };
            let v = h * 16 + l;
            if is_unreserved(v) {
                decoded.push(v as char);
            } else {
                if matches!(v, b'/' | b'\\' | 0) && !allow_encoded_separators {
                    return Err(PathError::EncodedSeparator);
                }
                decoded.push('%');
                decoded.push(char::from(b"0123456789ABCDEF"[h as usize]));
                decoded.push(char::from(b"0123456789ABCDEF"[l as usize]));
            }
            i += 3;
        } else {
            decoded.push(b as char);
            i += 1;
        }
    }

    // Pass 2: segments.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/').skip(1) {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing = true;
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for s in &out {
        path.push('/');
        path.push_str(s);
    }
    if trailing || path.is_empty() {
        path.push('/');
    }
    Ok(Cow::Owned(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize_path(p, false).map(|c| c.into_owned())
    }

    #[test]
    fn normalises() {
        assert_eq!(n("/a/b").unwrap(), "/a/b");
        assert_eq!(n("/api/users/../admin").unwrap(), "/api/admin");
        assert_eq!(n("/a//b///c").unwrap(), "/a/b/c");
        assert_eq!(n("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/%61%70%69/x").unwrap(), "/api/x");
        assert_eq!(n("/a/%2e%2e/b").unwrap(), "/b");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert_eq!(n("/a%3f").unwrap(), "/a%3F");
        assert_eq!(n("/").unwrap(), "/");
    }

    #[test]
    fn rejects() {
        assert_eq!(n("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%5Cb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%00"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/../etc"), Err(PathError::AboveRoot));
        assert_eq!(n("/a%zz"), Err(PathError::Malformed));
        assert_eq!(n("/a%2"), Err(PathError::Malformed));
        assert_eq!(normalize_path("/a%2Fb", true).unwrap(), "/a%2Fb");
    }
}

//! Spring AntPathMatcher and PathPattern semantics.

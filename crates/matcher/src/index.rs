//! Literal-prefix trie over path segments.

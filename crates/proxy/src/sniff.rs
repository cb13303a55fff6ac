//! Request-framing sniffer. hyper, rightly, decodes a request that carries both Content-Length and
//! Transfer-Encoding by its chunked framing and closes the connection afterwards — but it removes the
//! Content-Length header before the service sees the request, so the gateway cannot answer such a
//! request with the 400 that a request smuggling attempt deserves. This wrapper follows the HTTP/1.1
//! framing of what the client sends (heads, fixed and chunked bodies) and records which request, by
//! ordinal on the connection, had both headers. It never changes the bytes, and when it is unsure
//! (HTTP/2, a protocol switch, anything it cannot follow) it stops looking: hyper's own checks still
//! apply, so the worst case is hyper's (safe) behaviour.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head followed; longer heads are hyper's to refuse.
const MAX_HEAD: usize = 128 * 1024;

enum Chunk {
    Size { size: u64, in_ext: bool },
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    Trailer { line_len: usize },
}

enum State {
    Head,
    Fixed(u64),
    Chunked(Chunk),
    Off,
}

pub struct Framing {
    state: State,
    head: Vec<u8>,
    heads: u64,
    conflict: Arc<AtomicU64>,
    /// Part of a request head has arrived and not all of it (for the 408 on a slow head).
    head_in_progress: Arc<AtomicBool>,
}

impl Framing {
    pub fn new(conflict: Arc<AtomicU64>) -> Framing {
        Framing {
            state: State::Head,
            head: Vec::new(),
            heads: 0,
            conflict,
            head_in_progress: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.feed_inner(data);
        let partial = matches!(self.state, State::Head) && !trim_leading_crlf(&self.head).is_empty();
        self.head_in_progress.store(partial, Ordering::Relaxed);
    }

    fn feed_inner(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Fixed(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::Chunked(_) => {
                    let used = self.feed_chunked(data);
                    data = &data[used..];
                }
                State::Head => {
                    let search_from = self.head.len().saturating_sub(3);
                    self.head.extend_from_slice(data);
                    match find_head_end(&self.head[search_from..]) {
                        Some(end) => {
                            let end = search_from + end;
                            let consumed_here = end - (self.head.len() - data.len());
                            let head = std::mem::take(&mut self.head);
                            self.on_head(&head[..end]);
                            self.head = head;
                            self.head.clear();
                            data = &data[consumed_here..];
                        }
                        None => {
                            if self.head.len() > MAX_HEAD {
                                self.state = State::Off;
                            }
                            return;
                        }
                    }
                }
            }
        }
    }

    fn feed_chunked(&mut self, data: &[u8]) -> usize {
        let State::Chunked(c) = &mut self.state else {
            return data.len();
        };
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match c {
                Chunk::Data(n) => {
                    let take = (*n).min((data.len() - i) as u64);
                    *n -= take;
                    i += take as usize;
                    if *n == 0 {
                        *c = Chunk::DataCr;
                    }
                    continue;
                }
                Chunk::Size { size, in_ext } => match b {
                    b'\r' => *c = Chunk::SizeLf(*size),
                    b';' => *in_ext = true,
                    _ if *in_ext => {}
                    _ => match (b as char).to_digit(16) {
                        Some(d) => match size.checked_mul(16) {
                            Some(s) => *size = s + d as u64,
                            None => {
                                self.state = State::Off;
                                return data.len();
                            }
                        },
                        None if b == b' ' || b == b'\t' => {}
                        None => {
                            self.state = State::Off;
                            return data.len();
                        }
                    },
                },
                Chunk::SizeLf(size) => {
                    if b != b'\n' {
                        self.state = State::Off;
                        return data.len();
                    }
                    *c = if *size == 0 { Chunk::Trailer { line_len: 0 } } else { Chunk::Data(*size) };
                }
                Chunk::DataCr => {
                    *c = if b == b'\r' {
                        Chunk::DataLf
                    } else {
                        return self.off(data);
                    }
                }
                Chunk::DataLf => {
                    *c = if b == b'\n' {
                        Chunk::Size { size: 0, in_ext: false }
                    } else {
                        return self.off(data);
                    }
                }
                Chunk::Trailer { line_len } => match b {
                    b'\n' if *line_len == 0 => {
                        self.state = State::Head;
                        return i + 1;
                    }
                    b'\n' => *line_len = 0,
                    b'\r' => {}
                    _ => *line_len += 1,
                },
            }
            i += 1;
        }
        i
    }

    fn off(&mut self, data: &[u8]) -> usize {
        self.state = State::Off;
        data.len()
    }

    fn on_head(&mut self, head: &[u8]) {
        let head = trim_leading_crlf(head);
        if head.is_empty() {
            return;
        }
        if head.starts_with(b"PRI * HTTP/2.0") {
            self.state = State::Off;
            return;
        }
        self.heads += 1;
        let (mut cl, mut has_cl, mut has_te, mut chunked) = (None::<u64>, false, false, false);
        for line in head.split(|b| *b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                has_cl = true;
                cl = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                has_te = true;
                chunked = value.len() >= 7 && value[value.len() - 7..].eq_ignore_ascii_case(b"chunked");
            }
        }
        self.state = if has_cl && has_te {
            self.conflict.store(self.heads, Ordering::Relaxed);
            State::Off
        } else if has_te && chunked {
            State::Chunked(Chunk::Size { size: 0, in_ext: false })
        } else if has_te {
            State::Off
        } else if !has_cl {
            State::Head
        } else {
            match cl {
                Some(0) => State::Head,
                Some(n) => State::Fixed(n),
                None => State::Off,
            }
        };
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn trim_leading_crlf(mut b: &[u8]) -> &[u8] {
    while let [b'\r' | b'\n', rest @ ..] = b {
        b = rest;
    }
    b
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// An IO wrapper that feeds what it reads to a [`Framing`].
pub struct Sniff<T> {
    pub inner: T,
    framing: Framing,
}

impl<T> Sniff<T> {
    pub fn new(inner: T, conflict: Arc<AtomicU64>) -> Self {
        Sniff { inner, framing: Framing::new(conflict) }
    }

    /// True while part, not all, of a request head has arrived.
    pub fn head_in_progress(&self) -> Arc<AtomicBool> {
        self.framing.head_in_progress.clone()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                let this = &mut *self;
                this.framing.feed(fresh);
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniff<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> u64 {
        let flag = Arc::new(AtomicU64::new(0));
        let mut f = Framing::new(flag.clone());
        for c in chunks {
            f.feed(c);
        }
        flag.load(Ordering::Relaxed)
    }

    #[test]
    fn flags_the_conflicting_request_by_ordinal() {
        assert_eq!(
            run(&[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]),
            1
        );
        let pipelined: &[u8] = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcPOST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nPOST /d HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 1\r\n\r\n";
        assert_eq!(run(&[pipelined]), 4);
        // The same bytes split at every position give the same answer.
        for cut in 1..pipelined.len() {
            assert_eq!(run(&[&pipelined[..cut], &pipelined[cut..]]), 4, "cut at {cut}");
        }
    }

    #[test]
    fn clean_traffic_is_not_flagged_and_h2_stops_it() {
        assert_eq!(
            run(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Content-Length: 1\r\n\r\n"]),
            0
        );
        assert_eq!(
            run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            0
        );
    }
}

//! The HTTP/1.1 upstream client of the hot path, written by hand.
//!
//! hyper's client drives each connection from a task of its own and hands requests and responses
//! over channels: every proxied request then costs several cross-task wake-ups. Here the upstream
//! connection is driven by the request itself — head and body written from the request future,
//! the response head parsed in place, the body read by the response body the client is streaming —
//! so a request stays on one task from the client's socket to the upstream's and back. Header values
//! of the response are slices of the read buffer (no copy). Protocol upgrades and HTTP/2 still go
//! through hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

use crate::body::{BodyTooLarge, BoxError, ReqBody};
use crate::pool::Pool;
use tigateway_upstream::Peer;

/// Largest upstream response head accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 16 * 1024;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One upstream connection.
pub struct H1Conn {
    stream: Stream,
    /// Bytes read and not consumed yet.
    buf: BytesMut,
    /// The request head being written (kept to reuse its allocation).
    out: Vec<u8>,
    /// Served a request before: an immediate close then is the keep-alive race, not a failure.
    reused: bool,
}

impl H1Conn {
    pub fn new(stream: Stream) -> H1Conn {
        H1Conn { stream, buf: BytesMut::with_capacity(READ_CHUNK), out: Vec::with_capacity(1024), reused: false }
    }

    /// For an idle pooled connection: false when the upstream closed it (or sent something
    /// unasked). TLS connections cannot be probed without reading records; they are assumed alive.
    pub fn looks_alive(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => {
                let mut probe = [0u8; 1];
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Stream::Tls(_) => true,
        }
    }
}

#[derive(Debug)]
pub enum SendError {
    /// The connection closed before any byte of a response arrived. On a reused connection this
    /// is the keep-alive race (the upstream closed an idle connection as we sent): safe to resend a
    /// replayable request on a new connection.
    ClosedBeforeResponse {
        reused: bool,
    },
    BodyTooLarge,
    /// The client's body failed while streaming it upstream.
    ClientBody(BoxError),
    Io(io::Error),
    BadResponse(&'static str),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ClosedBeforeResponse { .. } => f.write_str("connection closed before the response"),
            SendError::BodyTooLarge => f.write_str("request body larger than the limit"),
            SendError::ClientBody(e) => write!(f, "client body: {e}"),
            SendError::Io(e) => write!(f, "{e}"),
            SendError::BadResponse(m) => write!(f, "invalid response: {m}"),
        }
    }
}

/// What to send: the method, target and headers (hop-by-hop ones already removed).
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The Host header's value (sent first; a `host` in `headers` is skipped).
    pub host: Option<&'a [u8]>,
}

/// The response head.
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
}

fn encode_head(out: &mut Vec<u8>, head: &RequestHead<'_>, body: &ReqBody, body_len: Option<u64>) {
    out.clear();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path.as_bytes());
    if let Some(q) = head.query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(h) = head.host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in head.headers {
        // Framing is ours to decide; Expect is answered by the gateway itself.
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match (body, body_len) {
        (ReqBody::Empty, _) => {
            if matches!(*head.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        (_, Some(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (_, None) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Sends a request and reads the response head. The connection comes back inside the body.
pub async fn send(mut conn: H1Conn, head: RequestHead<'_>, body: ReqBody) -> Result<(ResponseHead, H1Body), SendError> {
    let body_len = match &body {
        ReqBody::Empty => Some(0),
        ReqBody::Full(f) => f.size_hint().exact(),
        ReqBody::Stream { body, .. } => body.size_hint().exact(),
    };
    let mut out = std::mem::take(&mut conn.out);
    encode_head(&mut out, &head, &body, body_len);
    let write = write_request(&mut conn, &out, body, body_len.is_none()).await;
    conn.out = out;
    if let Err(e) = write {
        // A reused connection that the upstream closed fails here or on the first read.
        if let SendError::Io(io) = &e {
            if conn.reused && matches!(io.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) {
                return Err(SendError::ClosedBeforeResponse { reused: true });
            }
        }
        return Err(e);
    }
    let is_head = *head.method == Method::HEAD;
    read_response(conn, is_head).await
}

async fn write_request(conn: &mut H1Conn, head: &[u8], body: ReqBody, chunked: bool) -> Result<(), SendError> {
    match body {
        ReqBody::Empty => conn.stream.write_all(head).await.map_err(SendError::Io)?,
        ReqBody::Full(full) => {
            let data = http_body_util::BodyExt::collect(full).await.map(|c| c.to_bytes()).unwrap_or_default();
            if data.len() <= 16 * 1024 {
                let mut all = Vec::with_capacity(head.len() + data.len());
                all.extend_from_slice(head);
                all.extend_from_slice(&data);
                conn.stream.write_all(&all).await.map_err(SendError::Io)?;
            } else {
                conn.stream.write_all(head).await.map_err(SendError::Io)?;
                conn.stream.write_all(&data).await.map_err(SendError::Io)?;
            }
        }
        mut stream @ ReqBody::Stream { .. } => {
            conn.stream.write_all(head).await.map_err(SendError::Io)?;
            loop {
                let frame = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_frame(cx)).await;
                match frame {
                    None => break,
                    Some(Err(e)) => {
                        return Err(if e.is::<BodyTooLarge>() {
                            SendError::BodyTooLarge
                        } else {
                            SendError::ClientBody(e)
                        });
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else { continue };
                        if data.is_empty() {
                            continue;
                        }
                        if chunked {
                            let line = format!("{:x}\r\n", data.len());
                            conn.stream.write_all(line.as_bytes()).await.map_err(SendError::Io)?;
                            conn.stream.write_all(&data).await.map_err(SendError::Io)?;
                            conn.stream.write_all(b"\r\n").await.map_err(SendError::Io)?;
                        } else {
                            conn.stream.write_all(&data).await.map_err(SendError::Io)?;
                        }
                    }
                }
            }
            if chunked {
                conn.stream.write_all(b"0\r\n\r\n").await.map_err(SendError::Io)?;
            }
        }
    }
    conn.stream.flush().await.map_err(SendError::Io)
}

async fn read_response(mut conn: H1Conn, is_head: bool) -> Result<(ResponseHead, H1Body), SendError> {
    loop {
        if !conn.buf.is_empty() {
            if let Some((head, framing, keep_alive)) = parse_head(&mut conn.buf, is_head)? {
                if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
                    continue; // 100 Continue, 103 Early Hints: the real answer follows.
                }
                conn.reused = true;
                let body = H1Body { conn: Some(conn), framing, keep_alive, on_done: None };
                return Ok((head, body));
            }
            if conn.buf.len() > MAX_HEAD {
                return Err(SendError::BadResponse("response head too large"));
            }
        }
        conn.buf.reserve(READ_CHUNK);
        let n = std::future::poll_fn(|cx| poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf)).await.map_err(
            |e| match e.kind() {
                io::ErrorKind::ConnectionReset if conn.buf.is_empty() => {
                    SendError::ClosedBeforeResponse { reused: conn.reused }
                }
                _ => SendError::Io(e),
            },
        )?;
        if n == 0 {
            return Err(if conn.buf.is_empty() {
                SendError::ClosedBeforeResponse { reused: conn.reused }
            } else {
                SendError::BadResponse("connection closed in the response head")
            });
        }
    }
}

enum Framing {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// Parses a complete response head at the front of `buf`, consuming it. None: need more bytes.
fn parse_head(buf: &mut BytesMut, is_head: bool) -> Result<Option<(ResponseHead, Framing, bool)>, SendError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(SendError::BadResponse("too many headers")),
        Err(_) => return Err(SendError::BadResponse("malformed response head")),
    };
    let status = StatusCode::from_u16(resp.code.unwrap_or(0)).map_err(|_| SendError::BadResponse("bad status code"))?;
    let version = if resp.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let base = buf.as_ptr() as usize;
    // Offsets into the head, so the values can be slices of the frozen buffer.
    let mut spans: smallvec::SmallVec<[(HeaderName, usize, usize); 24]> = smallvec::SmallVec::new();
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| SendError::BadResponse("bad header name"))?;
        let start = h.value.as_ptr() as usize - base;
        spans.push((name, start, start + h.value.len()));
    }
    let head_bytes = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    let (mut content_length, mut chunked, mut te, mut close, mut keep_alive_token) =
        (None::<u64>, false, false, false, false);
    for (name, start, end) in spans {
        let value = HeaderValue::from_maybe_shared(head_bytes.slice(start..end))
            .map_err(|_| SendError::BadResponse("bad header value"))?;
        if name == header::CONTENT_LENGTH {
            let n = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(SendError::BadResponse("bad content-length"))?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(SendError::BadResponse("conflicting content-length"));
            }
            content_length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            te = true;
            let v = value.as_bytes();
            chunked = v.len() >= 7 && v[v.len() - 7..].eq_ignore_ascii_case(b"chunked");
        } else if name == header::CONNECTION {
            for token in value.as_bytes().split(|b| *b == b',') {
                let t = trim(token);
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive_token |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    let no_body =
        is_head || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Done
    } else if te {
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::UntilClose
        }
    } else {
        match content_length {
            Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let keep_alive =
        !close && !matches!(framing, Framing::UntilClose) && (version == Version::HTTP_11 || keep_alive_token);
    Ok(Some((ResponseHead { status, version, headers }, framing, keep_alive)))
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

/// Where a finished connection goes.
pub struct GiveBack {
    pub pool: Arc<Pool>,
    pub peer: Arc<Peer>,
}

/// The upstream's response body, read straight from the connection; at its end a keep-alive
/// connection goes back to the pool.
pub struct H1Body {
    conn: Option<H1Conn>,
    framing: Framing,
    keep_alive: bool,
    on_done: Option<GiveBack>,
}

impl H1Body {
    pub fn set_give_back(&mut self, g: GiveBack) {
        self.on_done = Some(g);
        if matches!(self.framing, Framing::Done) {
            self.finish();
        }
    }

    /// For protocol switches: the raw connection and the bytes already read past the head.
    pub fn into_upgraded(mut self) -> Option<(Stream, BytesMut)> {
        self.conn.take().map(|c| (c.stream, c.buf))
    }

    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(g) = self.on_done.take() {
            if let Some(conn) = self.conn.take() {
                // Bytes past the end of the body mean the upstream broke framing: do not reuse.
                if self.keep_alive && conn.buf.is_empty() {
                    g.pool.put_h1(g.peer.key(), conn);
                }
            }
        }
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut self.framing {
                Framing::Done => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(remaining) => {
                    if !conn.buf.is_empty() {
                        let take = (*remaining).min(conn.buf.len() as u64) as usize;
                        let data = conn.buf.split_to(take).freeze();
                        *remaining -= take as u64;
                        if *remaining == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(state) => match state {
                    Chunk::Size => {
                        if let Some(end) = find_crlf(&conn.buf) {
                            let line = &conn.buf[..end];
                            let digits = line.split(|b| *b == b';').next().unwrap_or(line);
                            let size = parse_hex(trim(digits)).ok_or_else(|| bad("bad chunk size"))?;
                            conn.buf.advance(end + 2);
                            *state = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
                            continue;
                        }
                        if conn.buf.len() > 4096 {
                            return Poll::Ready(Some(Err(bad("chunk size line too long"))));
                        }
                    }
                    Chunk::Data(remaining) => {
                        if !conn.buf.is_empty() {
                            let take = (*remaining).min(conn.buf.len() as u64) as usize;
                            let data = conn.buf.split_to(take).freeze();
                            *remaining -= take as u64;
                            if *remaining == 0 {
                                *state = Chunk::DataEnd;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                    }
                    Chunk::DataEnd => {
                        if conn.buf.len() >= 2 {
                            if &conn.buf[..2] != b"\r\n" {
                                return Poll::Ready(Some(Err(bad("missing CRLF after chunk"))));
                            }
                            conn.buf.advance(2);
                            *state = Chunk::Size;
                            continue;
                        }
                    }
                    Chunk::Trailers => {
                        if let Some(end) = find_crlf(&conn.buf) {
                            conn.buf.advance(end + 2);
                            if end == 0 {
                                self.finish();
                                return Poll::Ready(None);
                            }
                            continue;
                        }
                        if conn.buf.len() > 16 * 1024 {
                            return Poll::Ready(Some(Err(bad("trailers too large"))));
                        }
                    }
                },
            }
            // Need more bytes.
            conn.buf.reserve(READ_CHUNK);
            let n = ready!(poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf))?;
            if n == 0 {
                return match self.framing {
                    Framing::UntilClose => {
                        self.keep_alive = false;
                        self.finish();
                        Poll::Ready(None)
                    }
                    _ => {
                        self.conn = None;
                        Poll::Ready(Some(Err(bad("upstream closed the connection in the body"))))
                    }
                };
            }
        }
    }
}

fn bad(m: &'static str) -> BoxError {
    Box::new(io::Error::new(io::ErrorKind::InvalidData, m))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn parse_hex(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for c in d {
        n = n * 16 + (*c as char).to_digit(16)? as u64;
    }
    Some(n)
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut().poll_inner(cx)
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A raw upstream that answers each request with the given bytes, and returns what it read.
    async fn raw_upstream(answers: Vec<&'static [u8]>) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let t = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            for a in answers {
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                    if n == 0 || seen.windows(4).filter(|w| *w == b"\r\n\r\n").count() >= 1 {
                        break;
                    }
                }
                s.write_all(a).await.unwrap();
            }
            seen
        });
        (addr, t)
    }

    fn head<'a>(m: &'a Method, h: &'a HeaderMap) -> RequestHead<'a> {
        RequestHead { method: m, path: "/p", query: Some("a=1"), headers: h, host: None }
    }

    #[tokio::test]
    async fn content_length_and_chunked_responses() {
        let (addr, up) = raw_upstream(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        ])
        .await;
        let conn = H1Conn::new(Stream::Plain(TcpStream::connect(addr).await.unwrap()));
        let (m, h) = (Method::GET, HeaderMap::new());
        let (resp, body) = send(conn, head(&m, &h), ReqBody::Empty).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers["x-a"], "b");
        let mut body = body;
        let mut got = Vec::new();
        while let Some(f) = body.frame().await {
            got.extend_from_slice(&f.unwrap().into_data().unwrap());
        }
        assert_eq!(got, b"hello");
        assert!(body.keep_alive);
        let conn = body.conn.take().expect("connection kept for reuse (no pool attached)");
        let (resp, body) = send(conn, head(&m, &h), ReqBody::Empty).await.unwrap();
        assert_eq!(resp.status, 201);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcde");
        let seen = String::from_utf8(up.await.unwrap()).unwrap();
        assert!(seen.starts_with("GET /p?a=1 HTTP/1.1\r\n"), "{seen}");
    }

    #[tokio::test]
    async fn close_before_response_is_reported_as_such() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            drop(s);
        });
        let conn = H1Conn::new(Stream::Plain(TcpStream::connect(addr).await.unwrap()));
        let (m, h) = (Method::GET, HeaderMap::new());
        match send(conn, head(&m, &h), ReqBody::Empty).await {
            Err(SendError::ClosedBeforeResponse { reused: false }) | Err(SendError::Io(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a closed connection answered"),
        }
    }

    #[test]
    fn head_encoding_sets_framing() {
        let mut out = Vec::new();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        let m = Method::POST;
        let rh = RequestHead { method: &m, path: "/x", query: None, headers: &h, host: Some(b"up:80") };
        encode_head(&mut out, &rh, &ReqBody::Empty, Some(0));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /x HTTP/1.1\r\nhost: up:80\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n"
        );
        encode_head(&mut out, &rh, &ReqBody::Full(http_body_util::Full::new(Bytes::from_static(b"abc"))), Some(3));
        assert!(String::from_utf8(out).unwrap().contains("content-length: 3\r\n"));
    }
}

//! Access log: one JSON line per request. The request's thread copies its record, packed, into a
//! buffer of its own; a dedicated writer thread takes the buffers every 100 ms, formats the lines
//! and writes them. A full buffer
//! (the disk is slower than the traffic) drops the line and counts it
//! (`tigateway_access_log_dropped_total`), so a slow disk never slows a request.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, Uri};

/// Which part of the config answered a request (`kind`, `plugin`, `route_id`, `selector_id`,
/// `rule_id`), rendered once as the JSON members its log lines carry. The data plane builds one
/// per route, selector and rule when a config snapshot is compiled, so a line copies the ids
/// instead of checking and escaping them again for every request.
#[derive(Debug, Clone)]
pub struct LogTarget(Arc<[u8]>);

impl LogTarget {
    /// `kind`: `route` (Spring route), `selector` (ShenYu selector/rule) or `none`; `plugin`: the
    /// plugin that answered (`divide`, `route`, `redirect`, …).
    pub fn new(
        kind: &str,
        plugin: Option<&str>,
        route_id: Option<&str>,
        selector_id: Option<&str>,
        rule_id: Option<&str>,
    ) -> LogTarget {
        let mut out = b"\"kind\":".to_vec();
        json_str(kind.as_bytes(), &mut out);
        for (name, v) in
            [("plugin", plugin), ("route_id", route_id), ("selector_id", selector_id), ("rule_id", rule_id)]
        {
            if let Some(v) = v {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                json_str(v.as_bytes(), &mut out);
            }
        }
        LogTarget(out.into())
    }
}

/// One request, as logged. Field names are the documented log format. The record holds the
/// request's own values (shared buffers, not copies): it is built on the request path, and
/// [`AccessLog::log`] turns it into text.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// When the request arrived (RFC 3339, UTC, microseconds).
    pub time: SystemTime,
    /// `kind`, `plugin` and the ids of what answered.
    pub target: LogTarget,
    pub method: Method,
    /// As the client sent it: logged as `path` and `query`.
    pub uri: Uri,
    pub status: u16,
    /// `host:port` of the upstream.
    pub upstream: Option<Arc<str>>,
    /// Request head in → last response byte handed to the connection (the head, for a body that
    /// is complete with it); logged as `duration_ms`, microsecond precision.
    pub duration: Duration,
    /// Logged as `upstream_duration_ms`.
    pub upstream_duration: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client_ip: IpAddr,
    /// W3C trace id of the request, when tracing set one.
    pub trace_id: Option<u128>,
    /// `X-Request-Id`, when one is known.
    pub request_id: Option<HeaderValue>,
}

impl AccessRecord {
    /// Appends the record as one JSON object (no newline), exactly as the writer renders it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let draft = self.draft();
        match Packed::parse(&draft.b) {
            Some((line, _)) => line.write_json(out),
            None => unreachable!("a finished draft parses"),
        }
    }

    /// The record as a finished [`LineDraft`] (the same packing the data plane does in stages).
    fn draft(&self) -> LineDraft {
        let mut d = LineDraft::start(self.time, &self.method, self.uri.path(), self.uri.query());
        d.request(self.trace_id, self.request_id.as_ref().map(HeaderValue::as_bytes));
        d.answer(
            &self.target,
            self.status,
            self.upstream.as_deref(),
            self.upstream_duration,
            self.bytes_in,
            self.client_ip,
        );
        d.end(self.duration, self.bytes_out);
        d
    }
}

/// A request's log record, packed as the request goes: a fixed head of numbers and lengths, then
/// the strings, each stage appending what it learned — [`start`](Self::start) when the head
/// arrives (time, method, path, query), [`request`](Self::request) once the request id and trace
/// are known, [`answer`](Self::answer) with the response head (what answered, status, upstream,
/// client), [`end`](Self::end) when the body is done (duration, bytes out). The request keeps
/// no copies of its method, URI or ids for the log, and [`AccessLog::log_draft`] copies the
/// finished record into its thread's buffer at once. Formatting the JSON (escaping, numbers, the
/// timestamp) is the writer thread's work, done for a whole batch in one tight loop, so the
/// request path keeps its caches for the proxy. A stage called after a later one is ignored.
#[derive(Debug)]
pub struct LineDraft {
    b: Vec<u8>,
    stage: u8,
}

/// Head fields (byte offsets in a packed record), little-endian.
mod at {
    pub const TIME_US: usize = 0;
    pub const DURATION_NS: usize = 8;
    pub const UPSTREAM_NS: usize = 16;
    pub const BYTES_IN: usize = 24;
    pub const BYTES_OUT: usize = 32;
    pub const TRACE_ID: usize = 40;
    pub const IP: usize = 56;
    pub const STATUS: usize = 72;
    pub const METHOD_CODE: usize = 74;
    pub const FLAGS: usize = 75;
    // Lengths (u32) of the strings, which follow the head in this order.
    pub const METHOD_LEN: usize = 76;
    pub const PATH_LEN: usize = 80;
    pub const QUERY_LEN: usize = 84;
    pub const REQUEST_ID_LEN: usize = 88;
    pub const TARGET_LEN: usize = 92;
    pub const UPSTREAM_LEN: usize = 96;
}

/// Room a draft starts with: a typical record fits, so it is allocated once.
const DRAFT_CAPACITY: usize = 320;

impl LineDraft {
    pub fn start(time: SystemTime, method: &Method, path: &str, query: Option<&str>) -> LineDraft {
        let mut b = Vec::with_capacity(DRAFT_CAPACITY);
        b.resize(HEAD, 0);
        let time_us = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        put(&mut b, at::TIME_US, &time_us.to_le_bytes());
        let mut d = LineDraft { b, stage: 1 };
        match method_code(method) {
            Some(c) => d.b[at::METHOD_CODE] = c,
            None => {
                d.b[at::METHOD_CODE] = CUSTOM_METHOD;
                d.push_str(at::METHOD_LEN, 0, method.as_str().as_bytes());
            }
        }
        d.push_str(at::PATH_LEN, 0, path.as_bytes());
        if let Some(q) = query {
            d.push_str(at::QUERY_LEN, F_QUERY, q.as_bytes());
        }
        d
    }

    /// Appends a string after the ones before it, its length at `len_at` in the head and `flag`
    /// set (0: a string that is always there). A string longer than 4 GiB, which the request
    /// head's limits rule out, is cut.
    fn push_str(&mut self, len_at: usize, flag: u8, s: &[u8]) {
        let s = &s[..s.len().min(u32::MAX as usize)];
        put(&mut self.b, len_at, &(s.len() as u32).to_le_bytes());
        self.b[at::FLAGS] |= flag;
        self.b.extend_from_slice(s);
    }

    /// The W3C trace id and the `X-Request-Id` the request carries from here on.
    pub fn request(&mut self, trace_id: Option<u128>, request_id: Option<&[u8]>) {
        if self.stage > 1 {
            return;
        }
        self.stage = 2;
        if let Some(t) = trace_id {
            self.b[at::FLAGS] |= F_TRACE;
            put(&mut self.b, at::TRACE_ID, &t.to_le_bytes());
        }
        if let Some(r) = request_id {
            self.push_str(at::REQUEST_ID_LEN, F_REQUEST_ID, r);
        }
    }

    /// What answered and how, known with the response head.
    pub fn answer(
        &mut self,
        target: &LogTarget,
        status: u16,
        upstream: Option<&str>,
        upstream_duration: Option<Duration>,
        bytes_in: u64,
        client_ip: IpAddr,
    ) {
        if self.stage > 2 {
            return;
        }
        self.stage = 3;
        self.push_str(at::TARGET_LEN, 0, &target.0);
        if let Some(u) = upstream {
            self.push_str(at::UPSTREAM_LEN, F_UPSTREAM, u.as_bytes());
        }
        let b = &mut self.b;
        if let Some(d) = upstream_duration {
            b[at::FLAGS] |= F_UPSTREAM_DURATION;
            put(b, at::UPSTREAM_NS, &nanos(d).to_le_bytes());
        }
        put(b, at::STATUS, &status.to_le_bytes());
        put(b, at::BYTES_IN, &bytes_in.to_le_bytes());
        match client_ip {
            IpAddr::V4(v4) => put(b, at::IP, &v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => {
                b[at::FLAGS] |= F_V6;
                put(b, at::IP, &v6.octets());
            }
        }
    }

    /// Request head in → last response byte handed to the connection, and the body's bytes.
    pub fn end(&mut self, duration: Duration, bytes_out: u64) {
        self.stage = 4;
        put(&mut self.b, at::DURATION_NS, &nanos(duration).to_le_bytes());
        put(&mut self.b, at::BYTES_OUT, &bytes_out.to_le_bytes());
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// Size of a packed record's fixed head (offsets in [`at`]).
const HEAD: usize = 100;
const F_TRACE: u8 = 1;
const F_V6: u8 = 2;
const F_UPSTREAM: u8 = 4;
const F_UPSTREAM_DURATION: u8 = 8;
const F_QUERY: u8 = 16;
const F_REQUEST_ID: u8 = 32;
const CUSTOM_METHOD: u8 = u8::MAX;

fn nanos(d: Duration) -> u64 {
    d.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(d.subsec_nanos()))
}

/// A packed record read back on the writer thread, its strings borrowed from the batch.
struct Packed<'a> {
    time_us: u64,
    target: &'a [u8],
    method_code: u8,
    method: &'a [u8],
    path: &'a [u8],
    query: Option<&'a [u8]>,
    status: u16,
    upstream: Option<&'a [u8]>,
    duration: Duration,
    upstream_duration: Option<Duration>,
    bytes_in: u64,
    bytes_out: u64,
    client_ip: IpAddr,
    trace_id: Option<u128>,
    request_id: Option<&'a [u8]>,
}

/// The `kind` member of a record whose answer was never filled in.
const NO_TARGET: &[u8; 13] = b"\"kind\":\"none\"";

impl<'a> Packed<'a> {
    /// The record at the start of `b` and what follows it; `None` if `b` is cut short (it never
    /// is: the batch holds only whole records, each a finished [`LineDraft`]).
    fn parse(b: &'a [u8]) -> Option<(Packed<'a>, &'a [u8])> {
        let h: &[u8; HEAD] = b.get(..HEAD)?.try_into().ok()?;
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("eight bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("four bytes")) as usize;
        let u16_at = |at: usize| u16::from_le_bytes(h[at..at + 2].try_into().expect("two bytes"));
        let flags = h[at::FLAGS];
        let mut rest = &b[HEAD..];
        let mut take = |n: usize| -> Option<&'a [u8]> {
            let (part, after) = rest.split_at_checked(n)?;
            rest = after;
            Some(part)
        };
        // In the order the stages append them.
        let method = take(u32_at(at::METHOD_LEN))?;
        let path = take(u32_at(at::PATH_LEN))?;
        let query = take(u32_at(at::QUERY_LEN))?;
        let request_id = take(u32_at(at::REQUEST_ID_LEN))?;
        let target = take(u32_at(at::TARGET_LEN))?;
        let upstream = take(u32_at(at::UPSTREAM_LEN))?;
        let ip: [u8; 16] = h[at::IP..at::IP + 16].try_into().expect("sixteen bytes");
        let line = Packed {
            time_us: u64_at(at::TIME_US),
            // A record logged before anything answered (it never is) still renders as JSON.
            target: if target.is_empty() { &NO_TARGET[..] } else { target },
            method_code: h[at::METHOD_CODE],
            method,
            path,
            query: (flags & F_QUERY != 0).then_some(query),
            status: u16_at(at::STATUS),
            upstream: (flags & F_UPSTREAM != 0).then_some(upstream),
            duration: Duration::from_nanos(u64_at(at::DURATION_NS)),
            upstream_duration: (flags & F_UPSTREAM_DURATION != 0)
                .then(|| Duration::from_nanos(u64_at(at::UPSTREAM_NS))),
            bytes_in: u64_at(at::BYTES_IN),
            bytes_out: u64_at(at::BYTES_OUT),
            client_ip: if flags & F_V6 != 0 {
                IpAddr::from(ip)
            } else {
                IpAddr::from([ip[12], ip[13], ip[14], ip[15]])
            },
            trace_id: (flags & F_TRACE != 0)
                .then(|| u128::from_le_bytes(h[at::TRACE_ID..at::TRACE_ID + 16].try_into().expect("sixteen bytes"))),
            request_id: (flags & F_REQUEST_ID != 0).then_some(request_id),
        };
        Some((line, rest))
    }

    /// One JSON object (no newline). Written by hand rather than through serde: the writer formats
    /// every line the gateway serves.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(LINE_RESERVE);
        out.extend_from_slice(b"{\"time\":\"");
        rfc3339_micros(self.time_us, out);
        out.extend_from_slice(b"\",");
        out.extend_from_slice(self.target);
        out.extend_from_slice(b",\"method\":");
        match QUOTED_METHODS.get(self.method_code as usize) {
            Some(m) => out.extend_from_slice(m),
            None => json_str(self.method, out),
        }
        out.extend_from_slice(b",\"path\":");
        json_str(self.path, out);
        if let Some(q) = self.query {
            out.extend_from_slice(b",\"query\":");
            json_str(q, out);
        }
        out.extend_from_slice(b",\"status\":");
        uint(u64::from(self.status), out);
        if let Some(u) = self.upstream {
            out.extend_from_slice(b",\"upstream\":");
            json_str(u, out);
        }
        out.extend_from_slice(b",\"duration_ms\":");
        millis(self.duration, out);
        if let Some(u) = self.upstream_duration {
            out.extend_from_slice(b",\"upstream_duration_ms\":");
            millis(u, out);
        }
        out.extend_from_slice(b",\"bytes_in\":");
        uint(self.bytes_in, out);
        out.extend_from_slice(b",\"bytes_out\":");
        uint(self.bytes_out, out);
        out.extend_from_slice(b",\"client_ip\":\"");
        match self.client_ip {
            IpAddr::V4(v4) => ipv4(v4.octets(), out),
            // An IP address never needs escaping.
            IpAddr::V6(v6) => {
                let _ = write!(out, "{v6}");
            }
        }
        out.extend_from_slice(b"\",\"trace_id\":");
        match self.trace_id {
            Some(t) => {
                let mut hex = [b'"'; 34];
                for (i, d) in hex[1..33].iter_mut().enumerate() {
                    *d = HEX[(t >> (124 - 4 * i) & 0xf) as usize];
                }
                out.extend_from_slice(&hex);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"request_id\":");
        match self.request_id {
            Some(r) => json_str(r, out),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// Wall-clock time of a monotonic instant, from a per-thread anchor read at most once a second:
/// a request's arrival time for its log line without a second clock read per request (the two
/// clocks drift apart by far less than a microsecond within a second).
pub fn wall_clock(at: Instant) -> SystemTime {
    thread_local! {
        static ANCHOR: std::cell::Cell<Option<(Instant, SystemTime)>> = const { std::cell::Cell::new(None) };
    }
    ANCHOR.with(|a| {
        // One subtraction on the common path: a request's start is at or after its thread's anchor.
        if let Some((i, s)) = a.get() {
            if let Some(d) = at.checked_duration_since(i).filter(|d| *d < Duration::from_secs(1)) {
                return s + d;
            }
        }
        let (i, s) = (Instant::now(), SystemTime::now());
        a.set(Some((i, s)));
        match at.checked_duration_since(i) {
            Some(d) => s + d,
            None => s - (i - at),
        }
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Room reserved before a line is encoded: a typical line fits, so the pieces are appended
/// without growing the buffer between them.
const LINE_RESERVE: usize = 512;

/// The standard methods, already quoted, by the code a packed record stores for them.
const QUOTED_METHODS: [&[u8]; 9] = [
    b"\"GET\"",
    b"\"POST\"",
    b"\"PUT\"",
    b"\"DELETE\"",
    b"\"HEAD\"",
    b"\"OPTIONS\"",
    b"\"PATCH\"",
    b"\"CONNECT\"",
    b"\"TRACE\"",
];

fn method_code(m: &Method) -> Option<u8> {
    Some(match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => return None,
    })
}

/// A JSON string. Request bytes that are not UTF-8 (header values may carry obs-text) are
/// replaced, so a line is always valid JSON.
#[inline]
fn json_str(b: &[u8], out: &mut Vec<u8>) {
    // Paths, ids and addresses almost never need escaping: one pass (eight bytes at a time)
    // decides, and the bytes are copied at once.
    if is_plain(b) {
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        out.push(b'"');
        escape_into(String::from_utf8_lossy(b).as_bytes(), out);
        out.push(b'"');
    }
}

/// True when every byte may stand in a JSON string as it is: printable ASCII other than `"`
/// and `\`.
fn is_plain(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        if word_needs_escape(u64::from_le_bytes(w.try_into().expect("eight bytes"))) {
            return false;
        }
    }
    words.remainder().iter().all(|&c| byte_is_plain(c))
}

fn byte_is_plain(c: u8) -> bool {
    (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\'
}

/// Whether any of the eight bytes is below 0x20, 0x7f or above, `"` or `\` (the classic
/// "has a zero byte" bit trick, which is exact for the question "is there any").
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space
        | (w & HIGH)
        | has_zero(w ^ (ONES * 0x7f))
        | has_zero(w ^ (ONES * b'"' as u64))
        | has_zero(w ^ (ONES * b'\\' as u64)))
        != 0
}

fn escape_into(b: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// Dotted quad, built on the stack and appended at once.
fn ipv4(octets: [u8; 4], out: &mut Vec<u8>) {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            buf[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            buf[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + o % 10;
        n += 1;
    }
    out.extend_from_slice(&buf[..n]);
}

fn uint(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Milliseconds with microsecond precision: `12.345`, `0.5`, `3`. Built right to left on the
/// stack and appended at once.
fn millis(d: Duration, out: &mut Vec<u8>) {
    // In u64 (a u128 division is a library call): rounded to the microsecond.
    let micros = d.as_secs().saturating_mul(1_000_000).saturating_add(u64::from((d.subsec_nanos() + 500) / 1000));
    let mut buf = [0u8; 24];
    let mut at = buf.len();
    let mut frac = micros % 1000;
    if frac != 0 {
        let mut digits = 3;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        for _ in 0..digits {
            at -= 1;
            buf[at] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        at -= 1;
        buf[at] = b'.';
    }
    let mut whole = micros / 1000;
    loop {
        at -= 1;
        buf[at] = b'0' + (whole % 10) as u8;
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC.
fn rfc3339_micros(micros: u64, out: &mut Vec<u8>) {
    thread_local! {
        /// The last second formatted on this thread: lines of the same second share it.
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let secs = micros / 1_000_000;
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        civil_second(secs, &mut text);
        SECOND.set((secs, text));
    }
    let mut stamp = [0u8; 27];
    stamp[..19].copy_from_slice(&text);
    stamp[19] = b'.';
    let mut us = micros % 1_000_000;
    for d in stamp[20..26].iter_mut().rev() {
        *d = b'0' + (us % 10) as u8;
        us /= 10;
    }
    stamp[26] = b'Z';
    out.extend_from_slice(&stamp);
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second in UTC (days → civil date by the proleptic Gregorian
/// calendar, counting in 400-year eras).
fn civil_second(secs: u64, text: &mut [u8; 19]) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u64;
    let two = |v: u64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let parts: [(usize, [u8; 2]); 7] = [
        (0, two(year / 100)),
        (2, two(year % 100)),
        (5, two(month as u64)),
        (8, two(day as u64)),
        (11, two(rem / 3600)),
        (14, two(rem / 60 % 60)),
        (17, two(rem % 60)),
    ];
    *text = *b"0000-00-00T00:00:00";
    for (at, v) in parts {
        text[at..at + 2].copy_from_slice(&v);
    }
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Stdout,
    /// A file, rotated when it passes `max_bytes`: `access.log` → `access.log.1` → … `.N`, the oldest
    /// beyond `keep` deleted.
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
    },
}

/// Records a thread has packed and the writer has not taken yet.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
}

/// What the threads that log and the writer share: one buffer per logging thread.
struct Shared {
    buffers: Mutex<Vec<Arc<Mutex<Pending>>>>,
    /// Lines a thread may hold before it drops new ones.
    capacity: usize,
    dropped: AtomicU64,
    written: AtomicU64,
    closed: AtomicBool,
    /// Distinguishes access logs in the per-thread cache (tests start several in one process).
    id: u64,
}

/// Dropping the last [`AccessLog`] clone tells the writer to drain and stop.
struct Handle {
    shared: Arc<Shared>,
    writer: std::thread::Thread,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.writer.unpark();
    }
}

thread_local! {
    /// This thread's buffer of the access log it last wrote to.
    static LOCAL: std::cell::RefCell<Option<(u64, Arc<Mutex<Pending>>)>> = const { std::cell::RefCell::new(None) };
}

/// The request side of the access log (cheap to share). A request copies its packed record into
/// its thread's buffer (an uncontended lock); the writer thread swaps the buffers out every 100 ms,
/// formats them as JSON lines and writes them. So a line costs no channel, no cross-thread
/// hand-over of the request's strings, and a slow disk only fills the buffers: past `capacity`
/// lines per thread, lines are dropped and counted, never waited for.
#[derive(Clone)]
pub struct AccessLog {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("capacity", &self.handle.shared.capacity).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Starts the writer thread for `dest`; each logging thread holds up to `capacity` lines.
    pub fn start(dest: Destination, capacity: usize) -> io::Result<AccessLog> {
        let sink: Box<dyn Sink> = match dest {
            Destination::Stdout => Box::new(Plain(Box::new(io::stdout()))),
            Destination::File { path, max_bytes, keep } => Box::new(Rotating::open(path, max_bytes, keep)?),
        };
        Ok(Self::spawn(sink, capacity))
    }

    /// Starts the writer on any `Write` (no rotation); for embedding and tests.
    pub fn to_writer(w: Box<dyn Write + Send>, capacity: usize) -> AccessLog {
        Self::spawn(Box::new(Plain(w)), capacity)
    }

    fn spawn(sink: Box<dyn Sink>, capacity: usize) -> AccessLog {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            buffers: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            id: NEXT_ID.fetch_add(1, Relaxed),
        });
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("tigw-access-log".into())
            .spawn(move || writer(for_writer, sink))
            .expect("spawning the access log thread");
        AccessLog { handle: Arc::new(Handle { shared, writer: writer.thread().clone() }) }
    }

    /// Runs `f` on this thread's buffer, registered with the writer on first use.
    fn with_local<R>(&self, f: impl FnOnce(&Mutex<Pending>) -> R) -> R {
        let shared = &self.handle.shared;
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if l.as_ref().is_none_or(|(id, _)| *id != shared.id) {
                let buf = Arc::new(Mutex::new(Pending::default()));
                shared.buffers.lock().unwrap_or_else(|p| p.into_inner()).push(buf.clone());
                *l = Some((shared.id, buf));
            }
            let (_, buf) = l.as_ref().expect("set above");
            f(buf)
        })
    }

    /// Logs a record given whole (embedding, tests); the data plane builds [`LineDraft`]s.
    pub fn log(&self, rec: &AccessRecord) -> bool {
        self.log_draft(&rec.draft())
    }

    /// Copies a finished record into this thread's buffer; never blocks on the writer. Returns
    /// false (and counts) when the buffer already holds `capacity` lines.
    pub fn log_draft(&self, d: &LineDraft) -> bool {
        let shared = &self.handle.shared;
        let taken = self.with_local(|buf| {
            let mut p = buf.lock().unwrap_or_else(|e| e.into_inner());
            if p.lines >= shared.capacity {
                return false;
            }
            p.bytes.extend_from_slice(&d.b);
            p.lines += 1;
            true
        });
        if !taken {
            shared.dropped.fetch_add(1, Relaxed);
        }
        taken
    }

    pub fn dropped(&self) -> u64 {
        self.handle.shared.dropped.load(Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.handle.shared.written.load(Relaxed)
    }
}

trait Sink: Send {
    /// Whole lines, `\n`-terminated: a thread's batch, written at once where the sink allows.
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

struct Plain(Box<dyn Write + Send>);

impl Sink for Plain {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.0.write_all(lines)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A file cut into numbered files by size. Batches are already large (a thread's lines of up to
/// 100 ms), so they go to the file unbuffered: one `write` per batch, no copy into a buffer.
struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    size: u64,
}

impl Rotating {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<Rotating> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Rotating { path, max_bytes: max_bytes.max(1), keep, file, size })
    }

    fn numbered(path: &Path, n: usize) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(Self::numbered(&self.path, self.keep)).or_else(ignore_missing)?;
            for n in (1..self.keep).rev() {
                let from = Self::numbered(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, Self::numbered(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, Self::numbered(&self.path, 1))?;
        }
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

impl Sink for Rotating {
    fn write_lines(&mut self, mut lines: &[u8]) -> io::Result<()> {
        while !lines.is_empty() {
            let room = usize::try_from(self.max_bytes.saturating_sub(self.size)).unwrap_or(usize::MAX);
            // The whole lines that fit; a fresh file takes at least one line, however long.
            let take = if lines.len() <= room {
                lines.len()
            } else {
                match lines[..room].iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None if self.size == 0 => lines.iter().position(|&b| b == b'\n').map_or(lines.len(), |i| i + 1),
                    None => 0,
                }
            };
            if take > 0 {
                self.file.write_all(&lines[..take])?;
                self.size += take as u64;
                lines = &lines[take..];
            }
            if !lines.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// How often the writer takes the threads' buffers. Requests never wake the writer (no futex
/// call, no cross-core wake-up per line), and each batch is one write. Lines reach the file at
/// most this much later. Measured (bench/cost.sh): waking it sooner costs more — 20 ms cost ~1 %
/// more CPU per request than 100 ms, 5 ms more still, and waking it per 16 KiB of lines too.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

fn writer(shared: Arc<Shared>, mut sink: Box<dyn Sink>) {
    let mut batch = Pending::default();
    let mut text = Vec::new();
    let mut failing = false;
    loop {
        let closing = shared.closed.load(Ordering::Acquire);
        let mut wrote = false;
        let buffers: Vec<_> = shared.buffers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for buf in buffers {
            {
                let mut p = buf.lock().unwrap_or_else(|e| e.into_inner());
                if p.lines == 0 {
                    continue;
                }
                std::mem::swap(&mut *p, &mut batch);
            }
            render(&batch.bytes, &mut text);
            match sink.write_lines(&text) {
                Ok(()) => {
                    failing = false;
                    wrote = true;
                    shared.written.fetch_add(batch.lines as u64, Relaxed);
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "writing the access log failed; lines are lost until it recovers");
                }
                Err(_) => {}
            }
            text.clear();
            batch.bytes.clear();
            batch.lines = 0;
        }
        if wrote {
            let _ = sink.flush();
        }
        if closing {
            let _ = sink.flush();
            return;
        }
        std::thread::park_timeout(DRAIN_EVERY);
    }
}

/// A thread's batch of packed records as JSON lines.
fn render(mut packed: &[u8], text: &mut Vec<u8>) {
    while !packed.is_empty() {
        let Some((line, rest)) = Packed::parse(packed) else {
            // Only whole records are ever appended; a cut one would be a bug here, not bad input.
            tracing::error!(bytes = packed.len(), "an access log batch ended inside a record; its tail is skipped");
            return;
        };
        line.write_json(text);
        text.push(b'\n');
        packed = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record() -> AccessRecord {
        AccessRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_979_200_123_456),
            target: LogTarget::new("selector", Some("divide"), None, Some("s\"1"), Some("r1")),
            method: Method::GET,
            uri: "/a/b%20c?x=1&y=%22q%22".parse().unwrap(),
            status: 200,
            upstream: Some(Arc::from("127.0.0.1:8080")),
            duration: Duration::from_micros(1500),
            upstream_duration: Some(Duration::from_nanos(12_600)),
            bytes_in: 0,
            bytes_out: 12_345_678_901,
            client_ip: IpAddr::from([10, 0, 0, 1]),
            trace_id: Some(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            request_id: Some(HeaderValue::from_bytes(b"id\\with\ttab").unwrap()),
        }
    }

    #[test]
    fn a_line_is_json_with_every_documented_field() {
        let mut out = Vec::new();
        record().write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2025-12-06T00:00:00.123456Z");
        assert_eq!(v["kind"], "selector");
        assert_eq!(v["plugin"], "divide");
        assert!(v.get("route_id").is_none());
        assert_eq!(v["selector_id"], "s\"1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/a/b%20c");
        assert_eq!(v["query"], "x=1&y=%22q%22");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream"], "127.0.0.1:8080");
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["upstream_duration_ms"], 0.013);
        assert_eq!(v["bytes_out"], 12_345_678_901u64);
        assert_eq!(v["client_ip"], "10.0.0.1");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["request_id"], "id\\with\ttab");

        let mut r = record();
        r.target = LogTarget::new("none", None, None, None, None);
        (r.upstream, r.upstream_duration, r.method) = (None, None, Method::from_bytes(b"PURGE").unwrap());
        (r.trace_id, r.request_id, r.uri) = (None, None, "/".parse().unwrap());
        r.client_ip = "2001:db8::1".parse().unwrap();
        let mut out = Vec::new();
        r.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["trace_id"].is_null() && v["request_id"].is_null());
        assert_eq!((&v["kind"], &v["method"]), (&serde_json::json!("none"), &serde_json::json!("PURGE")));
        assert_eq!(v["client_ip"], "2001:db8::1");
        for absent in ["plugin", "selector_id", "rule_id", "upstream", "upstream_duration_ms", "query"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn a_batch_of_packed_records_renders_one_line_each_in_order() {
        let mut batch = Vec::new();
        let mut want = Vec::new();
        for i in 0..50u64 {
            let mut r = record();
            r.bytes_in = i;
            r.uri = format!("/p/{}?{}", "x".repeat(i as usize * 7), i).parse().unwrap();
            if i % 3 == 0 {
                (r.upstream, r.request_id, r.trace_id) = (None, None, None);
                r.method = Method::from_bytes(b"PURGE").unwrap();
            }
            batch.extend_from_slice(&r.draft().b);
            r.write_json(&mut want);
            want.push(b'\n');
        }
        let mut text = Vec::new();
        render(&batch, &mut text);
        assert_eq!(String::from_utf8(text).unwrap(), String::from_utf8(want).unwrap());
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&{
            let mut t = Vec::new();
            render(&batch, &mut t);
            t
        })
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        assert_eq!(lines.len(), 50);
        assert_eq!(lines[49]["bytes_in"], 49);
        assert_eq!(lines[48]["method"], "PURGE");
        assert_eq!(lines[49]["query"], "49");
        // A batch cut inside a record renders the whole records before it and stops.
        let mut text = Vec::new();
        render(&batch[..batch.len() - 3], &mut text);
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 49);
    }

    /// The JSON line of a finished draft, as the writer renders it.
    fn rendered(d: &LineDraft) -> serde_json::Value {
        let mut text = Vec::new();
        render(&d.b, &mut text);
        assert_eq!(text.iter().filter(|&&c| c == b'\n').count(), 1, "one line");
        serde_json::from_slice(&text).unwrap()
    }

    #[test]
    fn a_stage_called_after_a_later_one_is_ignored_and_the_record_stays_whole() {
        let target = LogTarget::new("route", Some("route"), Some("r1"), None, None);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut d = LineDraft::start(SystemTime::UNIX_EPOCH, &Method::GET, "/p", Some("q=1"));
        d.request(None, Some(b"first"));
        d.answer(&target, 200, Some("up:1"), None, 3, ip);
        // Too late: appending now would put strings out of the order the parser reads them in.
        d.request(Some(7), Some(b"second"));
        d.answer(&LogTarget::new("none", None, None, None, None), 500, None, None, 9, ip);
        d.end(Duration::from_millis(2), 5);
        let v = rendered(&d);
        assert_eq!(
            (&v["request_id"], &v["trace_id"], &v["route_id"]),
            (&"first".into(), &serde_json::Value::Null, &"r1".into())
        );
        assert_eq!((&v["status"], &v["upstream"], &v["bytes_in"]), (&200.into(), &"up:1".into(), &3.into()));
        assert_eq!(
            (&v["path"], &v["query"], &v["duration_ms"], &v["bytes_out"]),
            (&"/p".into(), &"q=1".into(), &2.into(), &5.into())
        );
    }

    #[test]
    fn a_draft_ended_without_an_answer_still_renders_as_json() {
        let mut d = LineDraft::start(SystemTime::UNIX_EPOCH, &Method::from_bytes(b"PURGE").unwrap(), "/x", None);
        d.end(Duration::ZERO, 0);
        let v = rendered(&d);
        assert_eq!((&v["kind"], &v["method"], &v["path"]), (&"none".into(), &"PURGE".into(), &"/x".into()));
        assert!(v.get("query").is_none() && v["request_id"].is_null());
    }

    #[test]
    fn wall_clock_follows_the_system_clock() {
        let now = SystemTime::now();
        for _ in 0..3 {
            let at = Instant::now();
            let t = wall_clock(at);
            let gap = t.duration_since(now).unwrap_or_else(|e| e.duration());
            assert!(gap < Duration::from_secs(1), "{gap:?}");
            // A later instant reads later, by as much, and an earlier one earlier.
            let later = at + Duration::from_millis(300);
            assert_eq!(wall_clock(later).duration_since(t).unwrap(), Duration::from_millis(300));
            // (An instant before the anchor takes a fresh one: read again, so a little later.)
            let earlier = t.duration_since(wall_clock(at - Duration::from_millis(5))).unwrap();
            assert!(
                earlier >= Duration::from_millis(5) - Duration::from_millis(1) && earlier < Duration::from_secs(1),
                "{earlier:?}"
            );
        }
    }

    #[test]
    fn timestamps_match_chrono_across_calendar_edges() {
        // Leap days, year ends, the epoch, far dates, and a spread of ordinary instants.
        let mut secs: Vec<u64> = vec![0, 951_782_400, 951_868_799, 1_709_164_800, 4_107_542_400, 253_402_300_799];
        secs.extend((0..2000u64).map(|i| i * 1_576_800_003 % 4_102_444_800));
        for s in secs {
            for us in [0u64, 7, 999_999] {
                let t = SystemTime::UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us);
                let mut out = Vec::new();
                rfc3339_micros(s * 1_000_000 + us, &mut out);
                let want =
                    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                assert_eq!(String::from_utf8(out).unwrap(), want);
            }
        }
    }

    #[test]
    fn milliseconds_keep_microseconds_without_trailing_zeros() {
        for (ns, want) in [
            (0, "0"),
            (10_000_000_000, "10000"),
            (123_456_789_000, "123456.789"),
            (1_000, "0.001"),
            (100_000, "0.1"),
            (3_000_000, "3"),
            (500_000, "0.5"),
            (12_345_000, "12.345"),
            (1_040_000, "1.04"),
            (400, "0"),
            (1_999_600, "2"),
            (12_600, "0.013"),
        ] {
            let mut out = Vec::new();
            millis(Duration::from_nanos(ns), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{ns} ns");
        }
    }

    #[test]
    fn a_batch_is_cut_between_lines_when_a_rotation_falls_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut sink = Rotating::open(path.clone(), 100, 5).unwrap();
        let line = |c: char, n: usize| format!("{}\n", c.to_string().repeat(n - 1));
        // 3 lines of 40 bytes: two fit in 100, the third starts a new file.
        sink.write_lines(format!("{}{}{}", line('a', 40), line('b', 40), line('c', 40)).as_bytes()).unwrap();
        // A line longer than the limit gets a file of its own; the next one a fresh file again.
        sink.write_lines(format!("{}{}", line('d', 150), line('e', 10)).as_bytes()).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(Rotating::numbered(&path, 3)), line('a', 40) + &line('b', 40));
        assert_eq!(read(Rotating::numbered(&path, 2)), line('c', 40));
        assert_eq!(read(Rotating::numbered(&path, 1)), line('d', 150));
        assert_eq!(read(path.clone()), line('e', 10));
    }

    #[test]
    fn addresses_and_statuses_are_written_like_display_does() {
        for ip in [[0, 0, 0, 0], [127, 0, 0, 1], [10, 99, 100, 255], [192, 168, 9, 10]] {
            let mut out = Vec::new();
            ipv4(ip, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), std::net::Ipv4Addr::from(ip).to_string());
        }
        for status in [100u16, 200, 404, 599, 999, 42, 1000] {
            let mut r = record();
            r.status = status;
            let mut out = Vec::new();
            r.write_json(&mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["status"], status);
        }
    }

    #[test]
    fn standard_methods_are_quoted_as_they_are_spelled() {
        for m in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
            Method::PATCH,
            Method::CONNECT,
            Method::TRACE,
        ] {
            let code = method_code(&m).unwrap();
            assert_eq!(QUOTED_METHODS[code as usize], format!("\"{m}\"").as_bytes());
        }
        assert!(method_code(&Method::from_bytes(b"PURGE").unwrap()).is_none());
    }

    #[test]
    fn the_word_at_a_time_check_agrees_with_the_byte_check() {
        // Every byte value at every position of strings long enough to take the word path and
        // leave a remainder, in an otherwise plain string.
        for len in [1usize, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(is_plain(&b), byte_is_plain(c), "byte {c:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_plain(b"/api/users/42?x=1&y=%22"));
        assert!(!is_plain("/caf\u{e9}".as_bytes()));
        let mut out = Vec::new();
        json_str(b"a\"b\\c\x01\x7fd", &mut out);
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), "a\"b\\c\u{1}\u{7f}d");
    }
}

//! Access log: one JSON line per request, written by a dedicated thread. Requests hand their record
//! over a bounded channel with `try_send`; when the writer falls behind the record is dropped and
//! counted (`tigateway_access_log_dropped_total`), so a slow disk never slows a request.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One request, as logged. Field names are the documented log format.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    /// When the request arrived (RFC 3339, UTC, microseconds).
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// `route` (Spring route), `selector` (ShenYu selector/rule) or `none`.
    pub kind: &'static str,
    /// The plugin that answered (`divide`, `route`, `redirect`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_id: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector_id: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<Arc<str>>,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Request head in → last response byte handed to the connection (the head, for a body that
    /// is complete with it), milliseconds.
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_duration_ms: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client_ip: IpAddr,
    /// W3C trace id of the request, when tracing set one.
    pub trace_id: Option<String>,
    /// `X-Request-Id`, when one is known.
    pub request_id: Option<String>,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let dt = chrono::DateTime::<chrono::Utc>::from(*t);
    s.serialize_str(&dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
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

/// The request side of the access log (cheap to share).
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: SyncSender<AccessRecord>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts the writer thread for `dest` with room for `capacity` records in flight.
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
        let (tx, rx) = sync_channel(capacity.max(1));
        let written = Arc::new(AtomicU64::new(0));
        let w = written.clone();
        std::thread::Builder::new()
            .name("tigw-access-log".into())
            .spawn(move || writer(rx, sink, w))
            .expect("spawning the access log thread");
        AccessLog { tx, dropped: Arc::new(AtomicU64::new(0)), written }
    }

    /// Queues a record; never blocks. Returns false (and counts) when the queue is full.
    pub fn log(&self, rec: AccessRecord) -> bool {
        match self.tx.try_send(rec) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
                false
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }
}

trait Sink: Send {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

struct Plain(Box<dyn Write + Send>);

impl Sink for Plain {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.0.write_all(line)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: BufWriter<File>,
    size: u64,
}

impl Rotating {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<Rotating> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Rotating { path, max_bytes: max_bytes.max(1), keep, file: BufWriter::with_capacity(64 * 1024, file), size })
    }

    fn numbered(path: &Path, n: usize) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
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
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.file = BufWriter::with_capacity(64 * 1024, file);
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
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// How often the writer drains the queue. The writer never blocks on the channel, so a request's
/// `try_send` finds no sleeping receiver to wake: no futex call and no cross-core wake-up per
/// request, and one buffered write per batch instead of one per line. Lines reach the file at most
/// this much later.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

fn writer(rx: Receiver<AccessRecord>, mut sink: Box<dyn Sink>, written: Arc<AtomicU64>) {
    let mut line = Vec::with_capacity(512);
    let mut failing = false;
    loop {
        let mut wrote = false;
        loop {
            let rec = match rx.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = sink.flush();
                    return;
                }
            };
            line.clear();
            if serde_json::to_writer(&mut line, &rec).is_err() {
                continue;
            }
            line.push(b'\n');
            match sink.write_line(&line) {
                Ok(()) => {
                    failing = false;
                    wrote = true;
                    written.fetch_add(1, Relaxed);
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "writing the access log failed; lines are lost until it recovers");
                }
                Err(_) => {}
            }
        }
        if wrote {
            let _ = sink.flush();
        }
        std::thread::sleep(DRAIN_EVERY);
    }
}

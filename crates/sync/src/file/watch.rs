//! Hot reload of a config file or directory.
//!
//! The parent directory is watched, not the file: editors save by writing a temporary file and
//! renaming it over the old one, and Kubernetes updates a mounted ConfigMap by swapping the `..data`
//! symlink; in both cases a watch on the file itself would stay on the old inode and go quiet. Any
//! event in the directory therefore leads to a re-read, and a content hash decides whether anything
//! changed. A slow poll re-reads as well, for what inotify cannot see (a symlink target in another
//! directory, a directory that was itself replaced, a watch that overflowed).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tigateway_model::Config;

use super::error::{ConfigError, LoadError};
use super::{build, process_env, read_sources, Source};

/// Settings of a watch; [`watch`] uses the defaults.
#[derive(Clone)]
pub struct FileWatcher {
    path: PathBuf,
    debounce: Duration,
    poll_interval: Duration,
    report: Option<WatchReport>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher")
            .field("path", &self.path)
            .field("debounce", &self.debounce)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// What the background watch saw, for metrics and readiness (see [`FileWatcher::report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEvent<'a> {
    /// The files changed; a reload follows.
    Changed,
    /// The changed config was refused (parse, validation or `prepare` error); the running one stays.
    Rejected(&'a str),
    /// The files cannot be read; the running config keeps serving.
    Unreadable(&'a str),
    /// The files can be read again after [`WatchEvent::Unreadable`].
    Readable,
}

pub type WatchReport = std::sync::Arc<dyn Fn(WatchEvent<'_>) + Send + Sync>;

impl FileWatcher {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileWatcher {
            path: path.into(),
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_secs(2),
            report: None,
        }
    }

    /// Tells `f` about changes, rejections and read failures seen after the first load.
    pub fn report(mut self, f: impl Fn(WatchEvent<'_>) + Send + Sync + 'static) -> Self {
        self.report = Some(std::sync::Arc::new(f));
        self
    }

    /// Quiet time that ends a burst of events (an editor's save is several). A burst that never goes
    /// quiet is still read after five times this, so a change lands well within a second by default.
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.debounce = quiet;
        self
    }

    /// How often the files are re-read even without an event.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Loads the config, checks it with `Config::validate` and `validate`, hands it to `on_change`
    /// on the calling thread, then keeps doing so on a background thread for every change. A change
    /// that fails either check is logged line by line and dropped: `on_change` is not called and the
    /// running config stays. An invalid config at start is returned as the error instead.
    pub fn start<V, F>(self, validate: V, on_change: F) -> Result<WatchHandle, LoadError>
    where
        V: Fn(&Config) -> Result<(), String> + Send + 'static,
        F: Fn(Config) + Send + 'static,
    {
        self.start_with(move |cfg: Config| validate(&cfg).map(|()| cfg), on_change)
    }

    /// [`FileWatcher::start`] for a caller whose check already builds what it will apply (a compiled
    /// snapshot): `prepare` turns the config into that, or refuses it, and `apply` gets it, so
    /// nothing is compiled twice.
    pub fn start_with<T, P, A>(self, prepare: P, apply: A) -> Result<WatchHandle, LoadError>
    where
        T: 'static,
        P: Fn(Config) -> Result<T, String> + Send + 'static,
        A: Fn(T) + Send + 'static,
    {
        let whole = self.path.display().to_string();
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let relevant = match res {
                // Reads (ours included) are not changes; a writer closing its file is.
                Ok(ev) => !matches!(ev.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write)),
                Err(e) => {
                    tracing::warn!("config watch: {e}; re-reading");
                    true
                }
            };
            if relevant {
                let _ = events.send(Msg::Changed);
            }
        })
        .map_err(|e| LoadError::one(ConfigError::new(whole.clone(), "", format!("cannot watch: {e}"))))?;
        // Watch before the first read, so a change made while loading is not missed.
        if let Err(e) = watcher.watch(&watched_dir(&self.path), RecursiveMode::NonRecursive) {
            read_sources(&self.path)?;
            return Err(LoadError::one(ConfigError::new(whole, "", format!("cannot watch: {e}"))));
        }

        let sources = read_sources(&self.path)?;
        let last_hash = fingerprint(&sources);
        let first = build(&sources, &whole, &process_env)?;
        let first = prepare(first).map_err(|m| rejected(&whole, &m))?;
        apply(first);

        let thread_error = whole.clone();
        let last_stat = stat_print(&self.path);
        let mut worker = Worker {
            path: self.path,
            whole,
            rx,
            debounce: self.debounce,
            poll_interval: self.poll_interval,
            last_hash,
            last_stat,
            quiet_polls: 0,
            read_error: None,
            prepare,
            apply,
            report: self.report,
        };
        let thread =
            thread::Builder::new().name("tigateway-config-watch".into()).spawn(move || worker.run()).map_err(|e| {
                LoadError::one(ConfigError::new(thread_error, "", format!("cannot start the config watch thread: {e}")))
            })?;
        Ok(WatchHandle { stop: tx, watcher: Some(watcher), thread: Some(thread) })
    }
}

/// Watches `path` (a file or a directory) with the default settings; see [`FileWatcher::start`].
pub fn watch<V, F>(path: PathBuf, validate: V, on_change: F) -> Result<WatchHandle, LoadError>
where
    V: Fn(&Config) -> Result<(), String> + Send + 'static,
    F: Fn(Config) + Send + 'static,
{
    FileWatcher::new(path).start(validate, on_change)
}

/// A running watch; dropping it stops watching and waits for a reload in progress to finish.
pub struct WatchHandle {
    stop: Sender<Msg>,
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle").finish_non_exhaustive()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(Msg::Stop);
        drop(self.watcher.take());
        if let Some(t) = self.thread.take() {
            // Dropped from inside `on_change`: joining ourselves would never return.
            if t.thread().id() != thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

enum Msg {
    Changed,
    Stop,
}

fn watched_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn rejected(whole: &str, message: &str) -> LoadError {
    let errors =
        message.lines().filter(|l| !l.trim().is_empty()).map(|l| ConfigError::new(whole, "", l)).collect::<Vec<_>>();
    if errors.is_empty() {
        LoadError::one(ConfigError::new(whole, "", "rejected by the config check"))
    } else {
        LoadError { errors }
    }
}

/// Names are hashed too, so adding or removing a file in a watched directory counts as a change.
/// Polls between full reads when nothing seems to change.
const FULL_READ_EVERY_POLLS: u32 = 15;

/// A cheap fingerprint of the config's files from their metadata (symlinks followed, so a ConfigMap's
/// `..data` swap shows): names, sizes, modification times, inodes. None when it cannot be read.
fn stat_print(path: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut add = |p: &Path| -> Option<()> {
        let m = std::fs::metadata(p).ok()?;
        p.hash(&mut h);
        m.len().hash(&mut h);
        m.modified().ok()?.hash(&mut h);
        #[cfg(unix)]
        m.ino().hash(&mut h);
        Some(())
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            add(&e)?;
        }
    } else {
        add(path)?;
    }
    Some(h.finish())
}

fn fingerprint(sources: &[Source]) -> [u8; 16] {
    let mut h = Md5::new();
    for s in sources {
        h.update((s.name.len() as u64).to_le_bytes());
        h.update(s.name.as_bytes());
        h.update((s.text.len() as u64).to_le_bytes());
        h.update(s.text.as_bytes());
    }
    h.finalize().into()
}

struct Worker<P, A> {
    path: PathBuf,
    whole: String,
    rx: Receiver<Msg>,
    debounce: Duration,
    poll_interval: Duration,
    /// Hash of the last content tried, valid or not: a rejected file is reported once, not at every poll.
    last_hash: [u8; 16],
    /// Size, modification time and inode of what the last poll saw: a poll that finds them unchanged
    /// skips reading and hashing (a 5 MB config would otherwise cost milliseconds of CPU every poll).
    last_stat: Option<u64>,
    /// Polls since the last full read; every so often one reads anyway, in case a file was rewritten
    /// with the same size within the file system's time resolution.
    quiet_polls: u32,
    /// The last read failure, reported once until it changes (a deleted file would otherwise be
    /// logged at every poll).
    read_error: Option<String>,
    prepare: P,
    apply: A,
    report: Option<WatchReport>,
}

impl<T, P, A> Worker<P, A>
where
    P: Fn(Config) -> Result<T, String>,
    A: Fn(T),
{
    fn run(&mut self) {
        loop {
            match self.rx.recv_timeout(self.poll_interval) {
                Ok(Msg::Changed) => {
                    if !self.settle() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let stat = stat_print(&self.path);
                    self.quiet_polls += 1;
                    if stat.is_some() && stat == self.last_stat && self.quiet_polls < FULL_READ_EVERY_POLLS {
                        continue;
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
            self.quiet_polls = 0;
            self.last_stat = stat_print(&self.path);
            self.reload();
        }
    }

    /// Waits for a burst of events to end; false when asked to stop meanwhile.
    fn settle(&self) -> bool {
        let deadline = Instant::now() + self.debounce * 5;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.rx.recv_timeout(self.debounce.min(left)) {
                Ok(Msg::Changed) => {}
                Err(RecvTimeoutError::Timeout) => return true,
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn reload(&mut self) {
        let sources = match read_sources(&self.path) {
            Ok(s) => {
                if self.read_error.take().is_some() {
                    self.emit(WatchEvent::Readable);
                }
                s
            }
            Err(e) => {
                let text = e.to_string();
                if self.read_error.as_deref() != Some(text.as_str()) {
                    self.emit(WatchEvent::Unreadable(&text));
                    for err in &e.errors {
                        tracing::error!("{err}");
                    }
                    tracing::error!("config in {} cannot be read; keeping the running config", self.whole);
                    self.read_error = Some(text);
                }
                return;
            }
        };
        // A writer that truncates and then writes leaves an empty file for a moment; applying that
        // would drop every route. Deliberately empty config is written as `{}`.
        if sources.iter().all(|s| s.text.trim().is_empty()) {
            tracing::warn!("config in {} is empty (being written?); keeping the running config", self.whole);
            return;
        }
        let hash = fingerprint(&sources);
        if hash == self.last_hash {
            return;
        }
        self.last_hash = hash;
        self.emit(WatchEvent::Changed);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let prepared = build(&sources, &self.whole, &process_env)
                .and_then(|cfg| (self.prepare)(cfg).map_err(|m| rejected(&self.whole, &m)))?;
            (self.apply)(prepared);
            Ok::<(), LoadError>(())
        }));
        match outcome {
            Ok(Ok(())) => tracing::info!("config reloaded from {}", self.whole),
            Ok(Err(e)) => {
                for err in &e.errors {
                    tracing::error!("{err}");
                }
                tracing::error!("config change in {} rejected; keeping the running config", self.whole);
                self.emit(WatchEvent::Rejected(&e.to_string()));
            }
            Err(_) => {
                tracing::error!("config reload from {} panicked; keeping the running config", self.whole);
                self.emit(WatchEvent::Rejected("the reload panicked"));
            }
        }
    }

    fn emit(&self, ev: WatchEvent<'_>) {
        if let Some(r) = &self.report {
            r(ev);
        }
    }
}

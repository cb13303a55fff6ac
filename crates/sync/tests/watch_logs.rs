//! A rejected reload is logged error by error. Separate binary: the subscriber is process-global
//! because the reload runs on the watcher's own thread.

use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tigateway_sync::FileWatcher;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn every_error_of_a_rejected_reload_is_logged() {
    let logs = Buffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).init();

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    std::fs::write(&file, "routes:\n  - {id: a, uri: 'http://127.0.0.1:1'}\n").unwrap();
    let (tx, rx) = mpsc::channel();
    let _h = FileWatcher::new(&file)
        .poll_interval(Duration::from_secs(60))
        .start(|_| Ok(()), move |c| tx.send(c).unwrap())
        .unwrap();
    rx.recv().unwrap();

    let bad = "server:\n  listeners: [{address: nowhere}]\nroutes:\n  - {id: a, uri: 'not-a-uri'}\n";
    std::fs::write(&file, bad).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logs.text().contains("keeping the running config") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = logs.text();
    let shown = file.display().to_string();
    let error_lines: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(error_lines.iter().any(|l| l.contains(&format!("{shown}: server.listeners[0].address: "))), "{text}");
    assert!(error_lines.iter().any(|l| l.contains(&format!("{shown}: routes[0].uri: "))), "{text}");
    assert!(error_lines.iter().any(|l| l.contains("rejected; keeping the running config")), "{text}");
    assert!(rx.try_recv().is_err(), "the rejected config must not be applied");
}

//! Hot reload against real files and a real notify watcher. Waits are generous (5 s) so a busy
//! machine does not fail them; the inotify tests set a one-minute poll so that a change arriving
//! proves the event path, not the fallback.

use std::fs;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tigateway_model::Config;
use tigateway_sync::{watch, FileWatcher, WatchHandle};

const WAIT: Duration = Duration::from_secs(5);
const NO_POLL: Duration = Duration::from_secs(60);

fn native(ids: &[&str]) -> String {
    let mut s = String::from("routes:\n");
    for id in ids {
        s.push_str(&format!("  - id: {id}\n    uri: http://127.0.0.1:8081\n    predicates: [Path=/{id}/**]\n"));
    }
    s
}

fn ids(c: &Config) -> Vec<String> {
    c.routes.iter().map(|r| r.id.clone()).collect()
}

fn start(path: &Path, poll: Duration) -> (WatchHandle, Receiver<Config>) {
    let (tx, rx) = mpsc::channel();
    let handle = FileWatcher::new(path)
        .poll_interval(poll)
        .start(
            |cfg: &Config| {
                if cfg.routes.iter().any(|r| r.id == "forbidden") {
                    Err("routes[0].id: forbidden by the caller".into())
                } else {
                    Ok(())
                }
            },
            move |cfg| {
                let _ = tx.send(cfg);
            },
        )
        .unwrap();
    (handle, rx)
}

/// The next config applied must be `want`, within [`WAIT`]; returns how long it took.
fn expect(rx: &Receiver<Config>, want: &[&str]) -> Duration {
    let t = Instant::now();
    match rx.recv_timeout(WAIT) {
        Ok(cfg) => assert_eq!(ids(&cfg), want, "unexpected config applied"),
        Err(e) => panic!("no config applied within {WAIT:?} (wanted {want:?}): {e:?}"),
    }
    t.elapsed()
}

fn expect_nothing(rx: &Receiver<Config>, for_: Duration) {
    match rx.recv_timeout(for_) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(cfg) => panic!("nothing should have been applied, got {:?}", ids(&cfg)),
        Err(e) => panic!("watch ended: {e:?}"),
    }
}

#[test]
fn initial_config_then_a_valid_change_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (_h, rx) = start(&file, NO_POLL);
    assert_eq!(ids(&rx.try_recv().expect("the initial config is applied before watch returns")), vec!["a"]);

    let t = Instant::now();
    fs::write(&file, native(&["a", "b"])).unwrap();
    expect(&rx, &["a", "b"]);
    eprintln!("change applied after {:?}", t.elapsed());
}

#[test]
fn invalid_changes_are_dropped_and_a_later_valid_one_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (_h, rx) = start(&file, NO_POLL);
    expect(&rx, &["a"]);

    // A typo the model refuses, then a config the caller's check refuses.
    fs::write(&file, native(&["b"]).replace("predicates", "predicatez")).unwrap();
    expect_nothing(&rx, Duration::from_millis(1500));
    fs::write(&file, native(&["forbidden"])).unwrap();
    expect_nothing(&rx, Duration::from_millis(1500));

    fs::write(&file, native(&["c"])).unwrap();
    expect(&rx, &["c"]);
}

#[test]
fn replacement_by_rename_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (_h, rx) = start(&file, NO_POLL);
    expect(&rx, &["a"]);

    // Editors save this way; the old inode goes away, so each replacement must be seen anew.
    for (n, id) in ["b", "c"].iter().enumerate() {
        let tmp_file = tmp.path().join(format!(".gw.yaml.swp{n}"));
        fs::write(&tmp_file, native(&[id])).unwrap();
        fs::rename(&tmp_file, &file).unwrap();
        expect(&rx, &[id]);
    }
}

#[cfg(unix)]
#[test]
fn configmap_data_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let version = |name: &str, app: &str, route: &str| {
        let d = dir.join(name);
        fs::create_dir(&d).unwrap();
        fs::write(
            d.join("application.yml"),
            format!("spring.cloud.gateway.routes:\n  - id: {app}\n    uri: http://127.0.0.1:1\n"),
        )
        .unwrap();
        fs::write(d.join("routes.json"), format!(r#"[{{"id": "{route}", "uri": "http://127.0.0.1:2"}}]"#)).unwrap();
    };
    // The layout the kubelet makes for a ConfigMap volume.
    version("..2024_01", "app1", "json1");
    symlink("..2024_01", dir.join("..data")).unwrap();
    symlink("..data/application.yml", dir.join("application.yml")).unwrap();
    symlink("..data/routes.json", dir.join("routes.json")).unwrap();

    let (_h, rx) = start(dir, NO_POLL);
    expect(&rx, &["app1", "json1"]);

    version("..2024_02", "app2", "json2");
    symlink("..2024_02", dir.join("..data_tmp")).unwrap();
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    fs::remove_dir_all(dir.join("..2024_01")).unwrap();
    expect(&rx, &["app2", "json2"]);
}

#[cfg(unix)]
#[test]
fn polling_sees_what_inotify_cannot() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let (real, watched) = (tmp.path().join("real"), tmp.path().join("watched"));
    fs::create_dir(&real).unwrap();
    fs::create_dir(&watched).unwrap();
    fs::write(real.join("gw.yaml"), native(&["a"])).unwrap();
    symlink(real.join("gw.yaml"), watched.join("gw.yaml")).unwrap();

    let (_h, rx) = start(&watched.join("gw.yaml"), Duration::from_millis(200));
    expect(&rx, &["a"]);
    // Only the target changes, in a directory nobody watches.
    fs::write(real.join("gw.yaml"), native(&["b"])).unwrap();
    expect(&rx, &["b"]);
}

#[test]
fn unchanged_content_is_not_applied_again() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (_h, rx) = start(&file, Duration::from_millis(200));
    expect(&rx, &["a"]);
    fs::write(&file, native(&["a"])).unwrap();
    fs::write(tmp.path().join("unrelated.txt"), "x").unwrap();
    expect_nothing(&rx, Duration::from_millis(1200));
    fs::write(&file, native(&["b"])).unwrap();
    expect(&rx, &["b"]);
}

#[test]
fn an_empty_file_mid_write_is_not_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (_h, rx) = start(&file, NO_POLL);
    expect(&rx, &["a"]);
    fs::write(&file, "").unwrap();
    expect_nothing(&rx, Duration::from_millis(1000));
    fs::write(&file, native(&["b"])).unwrap();
    expect(&rx, &["b"]);
}

#[test]
fn dropping_the_handle_stops_watching() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (h, rx) = start(&file, Duration::from_millis(100));
    expect(&rx, &["a"]);
    drop(h);
    // The worker owned the callback; once it is gone, so is the sender.
    fs::write(&file, native(&["b"])).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap_err(), RecvTimeoutError::Disconnected);
}

#[test]
fn an_invalid_config_at_start_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, "routes:\n  - id: a\n    uri: http://127.0.0.1:1\n    filterz: []\n").unwrap();
    let e = watch(file.clone(), |_| Ok(()), |_| panic!("must not be applied")).unwrap_err();
    assert_eq!(e.errors[0].path, "routes[0].filterz", "{e}");

    fs::write(&file, native(&["forbidden"])).unwrap();
    let e = watch(file.clone(), |_| Err("no: forbidden\nsecond line".into()), |_| panic!("must not be applied"))
        .unwrap_err();
    assert_eq!(e.errors.len(), 2, "{e}");
    assert!(e.to_string().contains("gw.yaml: no: forbidden"), "{e}");

    let e = watch(tmp.path().join("missing.yaml"), |_| Ok(()), |_| {}).unwrap_err();
    assert!(e.to_string().contains("missing.yaml: cannot read"), "{e}");
}

#[test]
fn start_with_hands_over_what_the_check_built() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gw.yaml");
    fs::write(&file, native(&["a"])).unwrap();
    let (tx, rx) = mpsc::channel();
    let _h = FileWatcher::new(&file)
        .poll_interval(NO_POLL)
        .start_with(
            |cfg: Config| {
                if cfg.routes.len() > 2 {
                    Err("too many routes".to_string())
                } else {
                    Ok(cfg.routes.len())
                }
            },
            move |n: usize| {
                let _ = tx.send(n);
            },
        )
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 1);
    fs::write(&file, native(&["a", "b", "c"])).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_millis(1500)).unwrap_err(), RecvTimeoutError::Timeout);
    fs::write(&file, native(&["a", "b"])).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 2);
}

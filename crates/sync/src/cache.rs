//! The gateway's local disk cache of the last config it applied from an admin, so a gateway that
//! starts while no admin answers still serves. Written with write-to-temp + fsync + rename: a
//! crash mid-write leaves the previous file whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tigateway_model::Config;

#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// Seconds since the epoch.
    saved_at: u64,
    /// The admin the config came from.
    source: String,
    config: Config,
}

/// A config read back from the cache.
#[derive(Debug, Clone)]
pub struct Cached {
    pub config: Config,
    pub saved_at: u64,
    pub source: String,
    pub path: PathBuf,
}

impl DiskCache {
    pub fn new(dir: impl Into<PathBuf>) -> DiskCache {
        DiskCache { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("tigateway-config.json")
    }

    pub fn save(&self, cfg: &Config, source: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let saved_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let entry = Entry { saved_at, source: source.to_string(), config: cfg.clone() };
        let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        let path = self.path();
        let tmp = self.dir.join(format!(".tigateway-config.json.{}.tmp", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The cached config; `Ok(None)` when there is none, an error naming the file when it cannot
    /// be read.
    pub fn load(&self) -> Result<Option<Cached>, String> {
        load_from(&self.path())
    }
}

fn load_from(path: &Path) -> Result<Option<Cached>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a config cache: {e}", path.display()))?;
    Ok(Some(Cached { config: entry.config, saved_at: entry.saved_at, source: entry.source, path: path.to_path_buf() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(dir.path().join("sub"));
        assert!(cache.load().unwrap().is_none());
        let cfg = Config::from_yaml_str("selectors: [{id: s, pluginName: divide, type: 0}]").unwrap();
        cache.save(&cfg, "ws://a/websocket").unwrap();
        let back = cache.load().unwrap().unwrap();
        assert_eq!(back.config, cfg);
        assert_eq!(back.source, "ws://a/websocket");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
        std::fs::write(cache.path(), "{not json").unwrap();
        let err = cache.load().unwrap_err();
        assert!(err.contains("tigateway-config.json"), "{err}");
    }
}

//! Where a gateway that starts while no admin answers finds a config to serve: the shared Redis
//! level (the admin writes each published config there, `--cache-redis`) and the gateway's own
//! disk file (the last config it applied, written with write-to-temp + fsync + rename, so a crash
//! mid-write leaves the previous file whole).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tigateway_model::Config;

/// The levels a gateway that starts without its source asks, in order: Redis (shared, written by
/// the admin) and then its own disk file.
#[derive(Debug, Clone, Default)]
pub struct CacheLevels {
    pub redis: Option<RedisCache>,
    pub disk: Option<DiskCache>,
}

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
        let saved_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
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
    let entry: Entry =
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a config cache: {e}", path.display()))?;
    Ok(Some(Cached { config: entry.config, saved_at: entry.saved_at, source: entry.source, path: path.to_path_buf() }))
}

/// The Redis level: one key per namespace holding the newest published config.
#[derive(Clone)]
pub struct RedisCache {
    client: redis::Client,
    key: String,
    url: String,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisCache({})", self.key)
    }
}

impl RedisCache {
    pub fn new(url: &str, namespace: &str) -> Result<RedisCache, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--cache-redis {url:?}: {e}"))?;
        Ok(RedisCache { client, key: format!("tigateway:config:{namespace}"), url: url.to_string() })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        tokio::time::timeout(std::time::Duration::from_secs(3), self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| format!("connecting to Redis at {} timed out", self.url))?
            .map_err(|e| format!("connecting to Redis at {}: {e}", self.url))
    }

    /// Stores `cfg` (the admin calls this for every publication).
    pub async fn save(&self, cfg: &Config, source: &str) -> Result<(), String> {
        let saved_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let entry = Entry { saved_at, source: source.to_string(), config: cfg.clone() };
        let text = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
        let mut con = self.connection().await?;
        redis::cmd("SET")
            .arg(&self.key)
            .arg(text)
            .query_async::<()>(&mut con)
            .await
            .map_err(|e| format!("writing {} to Redis: {e}", self.key))
    }

    pub async fn load(&self) -> Result<Option<Cached>, String> {
        let mut con = self.connection().await?;
        let text: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut con)
            .await
            .map_err(|e| format!("reading {} from Redis: {e}", self.key))?;
        let Some(text) = text else { return Ok(None) };
        let entry: Entry =
            serde_json::from_str(&text).map_err(|e| format!("Redis key {} is not a config cache: {e}", self.key))?;
        Ok(Some(Cached {
            config: entry.config,
            saved_at: entry.saved_at,
            source: entry.source,
            path: PathBuf::from(format!("redis:{}", self.key)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the machine's Redis (`TIGATEWAY_TEST_REDIS_URL`), on a key of its own.
    #[tokio::test]
    async fn redis_round_trip() {
        let url = match std::env::var("TIGATEWAY_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => u,
            _ if std::env::var_os("CI").is_some() => panic!("TIGATEWAY_TEST_REDIS_URL is not set but CI is"),
            _ => return eprintln!("note: TIGATEWAY_TEST_REDIS_URL is not set; skipping the Redis cache test"),
        };
        let ns = format!("test-{}", rand::random::<u64>());
        let cache = RedisCache::new(&url, &ns).unwrap();
        assert!(cache.load().await.unwrap().is_none());
        let cfg = Config::from_yaml_str("metadata: [{path: /r, appName: x}]").unwrap();
        cache.save(&cfg, "admin").await.unwrap();
        assert_eq!(cache.load().await.unwrap().unwrap().config, cfg);
        let mut con = cache.connection().await.unwrap();
        redis::cmd("DEL").arg(cache.key()).query_async::<()>(&mut con).await.unwrap();
        let err = RedisCache::new("redis://127.0.0.1:1", "x").unwrap().load().await.unwrap_err();
        assert!(err.contains("127.0.0.1:1"), "{err}");
    }

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

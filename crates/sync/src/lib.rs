//! Config sources for TiGateway. Each source only produces a [`tigateway_model::Config`]; the
//! gateway compiles and swaps it, so the data plane never knows where config came from.

pub mod cache;
pub mod etcd;
pub mod file;
pub mod http_poll;
pub mod layout;
pub mod shenyu;
pub mod tree;
pub mod websocket;
pub mod zookeeper;

pub use file::{
    load_dir, load_file, load_path, parse_config, parse_config_with_env, watch, ConfigError, FileWatcher, LoadError,
    WatchHandle,
};

pub mod api;
pub mod identity;
pub mod store;
pub mod sync;

pub mod api;
pub mod identity;
pub mod publish;
pub mod store;
pub mod sync;

//! Shared stores for berth's cluster mode: backends of
//! [`berth_acme_core::store::Store`] that several berth replicas use at once.
//!
//! [`RedisStore`] keeps per-certificate keys in Redis; every write is one Lua script that
//! compares the expected version and the writer's lease token with the write, so a
//! replica that lost its lease (paused, partitioned) cannot overwrite newer data. A lease
//! is an efficiency lock: the CA cannot check a fencing token, so the worst case of a
//! lost lease is one extra order, never a corrupt store.
//!
//! ```no_run
//! use berth_acme_core::store::Store;
//! use berth_stores::{RedisOptions, RedisStore};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379/0", RedisOptions::default()).await?;
//! println!("{} keys", store.list("certs/").await?.len());
//! # Ok(()) }
//! ```

mod etcd;
mod identity;
mod instrumented;
mod lease;
mod location;
mod open;
mod reconnect;
mod redis;

pub use crate::etcd::{EtcdOptions, EtcdStore};
pub use crate::identity::ClientIdentity;
pub use crate::instrumented::Instrumented;
pub use crate::location::{LocationError, StoreLocation};
pub use crate::open::{Access, OpenError, OpenOptions, open};
pub use crate::redis::{RedisOptions, RedisStore};

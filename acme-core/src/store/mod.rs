//! Persistence behind the [`Store`] trait: per-certificate keys ([`records`]) in a
//! backend. The default backend, [`FileStore`], keeps a Traefik-compatible `acme.json`
//! and berth's state file beside it, in memory. Every file that holds a key is written
//! atomically with mode 0600.

mod acme_json;
pub(crate) mod atomic;
mod catalog;
mod error;
mod export;
mod file;
mod kv;
mod migrate;
mod mount;
pub mod records;
pub(crate) mod state;
mod stats;

pub use acme_json::{AcmeJson, DEFAULT_RESOLVER, Permissions, StoredCert, UnreadableCert};
pub use catalog::{Catalog, CatalogEntry};
pub use error::StoreError;
pub use export::{LivePaths, export_combined, export_live, export_name};
pub use file::FileStore;
pub use kv::{Bytes, Change, Expect, Lease, Store, StoreFuture, Version, Versioned};
pub use migrate::{CopyReport, copy_all};
pub use mount::{single_file_mount, symlinked};
pub use records::{
    CertRecord, CertState, LedgerEntry, PendingOrder, RevokedCert, StagingProof, StateSnapshot,
    StoredAccount,
};
pub use state::{STATE_VERSION, state_path};
pub use stats::{LATENCY_BUCKETS, OpLatency, StoreOp, StoreStats};

//! Opening berth's file store the way the binary does, for tests that drive the
//! libraries directly.

use std::path::Path;
use std::sync::Arc;

use berth_acme_core::store::{DEFAULT_RESOLVER, FileStore, StateSnapshot, Store};

/// The file store at `acme_json`, opened as its owner (as `berth run` and `berth issue`
/// open it).
pub async fn file_store(acme_json: &Path) -> Arc<dyn Store> {
    FileStore::open(acme_json, DEFAULT_RESOLVER)
        .await
        .expect("the test store opens")
}

/// berth's state beside `acme_json`, read without touching any file.
pub async fn read_state(acme_json: &Path) -> StateSnapshot {
    let store = FileStore::open_read_only(acme_json, DEFAULT_RESOLVER)
        .await
        .expect("the test store reads");
    StateSnapshot::read(store.as_ref())
        .await
        .expect("the state reads")
}

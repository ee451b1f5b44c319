//! Persistence: Traefik-compatible `acme.json`, berth's state file beside it, and PEM
//! export. Every file that holds a key is written atomically with mode 0600.

mod acme_json;
pub(crate) mod atomic;
mod error;
mod export;
mod state;

pub use acme_json::{AcmeJson, DEFAULT_RESOLVER, Permissions, StoredCert, UnreadableCert};
pub use error::StoreError;
pub use export::{LivePaths, export_combined, export_live, export_name};
pub use state::{
    LedgerEntry, RevokedCert, STATE_VERSION, StagingProof, State, StoredAccount, ledger_key,
    state_path,
};

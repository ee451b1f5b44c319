//! Errors of the store.

/// What went wrong reading or writing `acme.json`, the state file or an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {}

//! Copying every key of one [`Store`] into another (`berth store migrate`): from the file
//! store into a shared one when moving to cluster mode, and back.

use super::StoreError;
use super::kv::{Expect, Store};

/// What a copy did, key by key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Keys written to the destination.
    pub copied: Vec<String>,
    /// Keys the destination already held with the same value.
    pub unchanged: Vec<String>,
    /// Keys the destination holds with a different value: left as they are (nothing is
    /// overwritten; delete them there first to copy over them).
    pub conflicts: Vec<String>,
}

/// Copies every key of `from` that `to` lacks; idempotent, and never overwrites a
/// different value. Shared challenge answers (short-lived) are left out.
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport::default();
    for key in from.list("").await? {
        if key.starts_with(crate::challenge::shared::CHALLENGES) {
            continue;
        }
        let Some(value) = from.get(&key).await? else {
            continue;
        };
        match to.get(&key).await? {
            Some(existing) if same_json(&existing.value, &value.value) => {
                report.unchanged.push(key)
            }
            Some(_) => report.conflicts.push(key),
            None => match to.put(&key, value.value, Expect::Absent, None).await {
                Ok(_) => report.copied.push(key),
                Err(StoreError::Conflict { .. }) => report.conflicts.push(key),
                Err(e) => return Err(e),
            },
        }
    }
    Ok(report)
}

/// Equal as JSON (one store may write keys in another order or spacing).
fn same_json(a: &[u8], b: &[u8]) -> bool {
    a == b
        || matches!(
            (
                serde_json::from_slice::<serde_json::Value>(a),
                serde_json::from_slice::<serde_json::Value>(b),
            ),
            (Ok(x), Ok(y)) if x == y
        )
}

//! [`StoreStats`]: what a store counts about itself for `/metrics` — how long each kind of
//! operation takes, how many leases were gained and lost, how many fenced writes were
//! refused. A shared store's latency is what a cluster's renewals wait on; a lost lease
//! or a refused fenced write means two replicas overlapped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds (the last bucket, +Inf,
/// is the count).
pub const LATENCY_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// A kind of store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOp {
    /// [`Store::get`](super::Store::get).
    Get,
    /// [`Store::put`](super::Store::put).
    Put,
    /// [`Store::delete`](super::Store::delete).
    Delete,
    /// [`Store::list`](super::Store::list).
    List,
    /// [`Store::try_lock`](super::Store::try_lock).
    Lock,
    /// [`Store::unlock`](super::Store::unlock).
    Unlock,
}

impl StoreOp {
    /// Every kind, in the order [`StoreStats::latencies`] reports them.
    pub const ALL: [Self; 6] = [
        Self::Get,
        Self::Put,
        Self::Delete,
        Self::List,
        Self::Lock,
        Self::Unlock,
    ];

    /// The name used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Put => "put",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Get => 0,
            Self::Put => 1,
            Self::Delete => 2,
            Self::List => 3,
            Self::Lock => 4,
            Self::Unlock => 5,
        }
    }
}

#[derive(Debug, Default)]
struct OpCounters {
    count: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
}

/// One operation kind's latency so far.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OpLatency {
    /// Which operation.
    pub op: StoreOp,
    /// How many were made.
    pub count: u64,
    /// How many of them failed (a refused condition or fence is not a failure).
    pub errors: u64,
    /// Their total duration.
    pub total: Duration,
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound.
    pub buckets: [u64; LATENCY_BUCKETS.len()],
}

/// Counters kept by a store (see the module docs); cheap atomics, safe to share.
#[derive(Debug, Default)]
pub struct StoreStats {
    ops: [OpCounters; 6],
    leases_gained: AtomicU64,
    leases_lost: AtomicU64,
    fenced: AtomicU64,
}

impl StoreStats {
    /// Records one operation that took `elapsed`; `failed` when the store could not
    /// answer it.
    pub fn record(&self, op: StoreOp, elapsed: Duration, failed: bool) {
        let counters = &self.ops[op.index()];
        counters.count.fetch_add(1, Ordering::Relaxed);
        if failed {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.micros.fetch_add(micros, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&counters.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a lease taken.
    pub fn lease_gained(&self) {
        self.leases_gained.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lease lost before it was released (expired, taken over, or fenced).
    pub fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write the store refused because the writer's lease was no longer held.
    pub fn fenced_write(&self) {
        self.fenced.fetch_add(1, Ordering::Relaxed);
    }

    /// Every operation kind's latency so far.
    pub fn latencies(&self) -> Vec<OpLatency> {
        StoreOp::ALL
            .iter()
            .map(|&op| {
                let c = &self.ops[op.index()];
                OpLatency {
                    op,
                    count: c.count.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    total: Duration::from_micros(c.micros.load(Ordering::Relaxed)),
                    buckets: std::array::from_fn(|i| c.buckets[i].load(Ordering::Relaxed)),
                }
            })
            .collect()
    }

    /// Leases taken so far.
    pub fn leases_gained(&self) -> u64 {
        self.leases_gained.load(Ordering::Relaxed)
    }

    /// Leases lost so far.
    pub fn leases_lost(&self) -> u64 {
        self.leases_lost.load(Ordering::Relaxed)
    }

    /// Fenced writes refused so far.
    pub fn fenced_writes(&self) -> u64 {
        self.fenced.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_errors_counted() {
        let stats = StoreStats::default();
        stats.record(StoreOp::Get, Duration::from_micros(500), false);
        stats.record(StoreOp::Get, Duration::from_millis(30), true);
        stats.record(StoreOp::Get, Duration::from_secs(9), false);
        let get = &stats.latencies()[0];
        assert_eq!(get.op, StoreOp::Get);
        assert_eq!((get.count, get.errors), (3, 1));
        assert_eq!(get.buckets, [1, 1, 1, 2, 2, 2, 2, 2]);
        assert_eq!(get.total, Duration::from_micros(9_030_500));
        assert_eq!(stats.latencies()[1].count, 0);
    }
}

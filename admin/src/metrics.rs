//! `/metrics` in Prometheus' text format: the proxy's counters, the certificates, the
//! orders the manager reported, and the shared store's timings.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use berth_acme_core::CertEvent;
use berth_acme_core::store::{LATENCY_BUCKETS, StoreStats};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::CertRow;

/// Orders by result, counted from the manager's events; outlives the manager a reload
/// replaces.
#[derive(Debug, Default)]
pub struct OrderCounters {
    issued: AtomicU64,
    renewed: AtomicU64,
    failed: AtomicU64,
    backing_off: AtomicU64,
    refused: AtomicU64,
    staging_proven: AtomicU64,
}

impl OrderCounters {
    /// Counts events until the manager's event stream ends or `stop` fires.
    pub async fn count(
        self: Arc<Self>,
        mut events: broadcast::Receiver<CertEvent>,
        stop: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = events.recv() => event,
            };
            let counter = match event {
                Ok(CertEvent::Issued { .. }) => &self.issued,
                Ok(CertEvent::Renewed { .. }) => &self.renewed,
                Ok(CertEvent::Failed { .. }) => &self.failed,
                Ok(CertEvent::BackingOff { .. }) => &self.backing_off,
                Ok(CertEvent::Refused { .. }) => &self.refused,
                Ok(CertEvent::StagingProven { .. }) => &self.staging_proven,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "order metrics missed events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP berth_orders_total Certificate orders and decisions by result.\n");
        out.push_str("# TYPE berth_orders_total counter\n");
        for (result, counter) in [
            ("issued", &self.issued),
            ("renewed", &self.renewed),
            ("failed", &self.failed),
            ("backing_off", &self.backing_off),
            ("refused_by_budget", &self.refused),
            ("staging_proven", &self.staging_proven),
        ] {
            let _ = writeln!(
                out,
                "berth_orders_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
}

/// Appends the certificate gauges, the order counters and (with a counting store) the
/// store's metrics to `out`.
pub(crate) fn render(
    out: &mut String,
    rows: &[CertRow],
    orders: &OrderCounters,
    stats: Option<&StoreStats>,
    now: SystemTime,
) {
    certificates(out, rows, now);
    orders.render(out);
    out.push_str(
        "# HELP berth_ready Whether every configured domain set has a valid certificate.\n",
    );
    out.push_str("# TYPE berth_ready gauge\n");
    let _ = writeln!(
        out,
        "berth_ready {}",
        u8::from(rows.iter().all(|r| r.valid))
    );
    if let Some(stats) = stats {
        store_metrics(out, stats);
    }
}

fn certificates(out: &mut String, rows: &[CertRow], now: SystemTime) {
    out.push_str(
        "# HELP berth_certificate_expiry_seconds Seconds until the served certificate expires.\n",
    );
    out.push_str("# TYPE berth_certificate_expiry_seconds gauge\n");
    for row in rows {
        if let Some(not_after) = row.not_after {
            let secs = match not_after.duration_since(now) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            let _ = writeln!(
                out,
                "berth_certificate_expiry_seconds{{domains=\"{}\"}} {secs:.0}",
                row.domains
            );
        }
    }
    out.push_str("# HELP berth_certificate_backoff Whether orders for the domain set are backing off after a failure.\n");
    out.push_str("# TYPE berth_certificate_backoff gauge\n");
    for row in rows {
        let _ = writeln!(
            out,
            "berth_certificate_backoff{{domains=\"{}\"}} {}",
            row.domains,
            u8::from(row.backoff_until.is_some())
        );
    }
    out.push_str(
        "# HELP berth_certificate_days_left Whole days until the served certificate expires.\n",
    );
    out.push_str("# TYPE berth_certificate_days_left gauge\n");
    for row in rows {
        if let Some(days) = row.days_left {
            let _ = writeln!(
                out,
                "berth_certificate_days_left{{domains=\"{}\"}} {days}",
                row.domains
            );
        }
    }
}

/// The shared store's counters (see [`StoreStats`]).
fn store_metrics(out: &mut String, stats: &StoreStats) {
    out.push_str("# HELP berth_store_operation_seconds Time the shared store took to answer, per operation.\n");
    out.push_str("# TYPE berth_store_operation_seconds histogram\n");
    let latencies = stats.latencies();
    for l in &latencies {
        let op = l.op.name();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(l.buckets) {
            let _ = writeln!(
                out,
                "berth_store_operation_seconds_bucket{{op=\"{op}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "berth_store_operation_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
            l.count
        );
        let _ = writeln!(
            out,
            "berth_store_operation_seconds_sum{{op=\"{op}\"}} {}",
            l.total.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "berth_store_operation_seconds_count{{op=\"{op}\"}} {}",
            l.count
        );
    }
    out.push_str(
        "# HELP berth_store_operation_errors_total Operations the shared store did not answer.\n",
    );
    out.push_str("# TYPE berth_store_operation_errors_total counter\n");
    for l in &latencies {
        let _ = writeln!(
            out,
            "berth_store_operation_errors_total{{op=\"{}\"}} {}",
            l.op.name(),
            l.errors
        );
    }
    for (name, help, value) in [
        (
            "berth_store_leases_gained_total",
            "Order leases this replica took.",
            stats.leases_gained(),
        ),
        (
            "berth_store_leases_lost_total",
            "Order leases this replica lost before releasing them (expired, taken over, fenced).",
            stats.leases_lost(),
        ),
        (
            "berth_store_fenced_writes_total",
            "Writes the store refused because this replica's lease was no longer held.",
            stats.fenced_writes(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
}

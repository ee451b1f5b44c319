//! Counters the proxy keeps: handshakes, reloads, responses, upstream latency.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the upstream latency histogram buckets; `+Inf` is implied.
const LATENCY_BUCKETS_SECONDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cheap, cloneable handle on the proxy's counters (plain atomics, no locks), for the
/// admin server and for tests. Clones share the same counters.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    handshakes: AtomicU64,
    handshake_failures: AtomicU64,
    unknown_sni: AtomicU64,
    acme_tls_alpn_handshakes: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    connections_active: AtomicU64,
    connections_total: AtomicU64,
    // Index 0 is for anything outside 100..=599.
    responses_by_class: [AtomicU64; 6],
    upstream_latency_buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len()],
    upstream_latency_count: AtomicU64,
    upstream_latency_micros_sum: AtomicU64,
}

/// The counters at one moment, for assertions and status pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Completed TLS handshakes (including TLS-ALPN-01 challenge handshakes).
    pub handshakes: u64,
    /// Failed TLS handshakes, whatever the reason (unknown SNI, protocol version, timeout).
    pub handshake_failures: u64,
    /// Handshakes refused because no certificate matched the server name and no default
    /// was configured (also counted in `handshake_failures`).
    pub unknown_sni: u64,
    /// Handshakes answered with a TLS-ALPN-01 challenge certificate.
    pub acme_tls_alpn_handshakes: u64,
    /// Certificate sets swapped in after the first.
    pub reloads: u64,
    /// Reloads refused because the new certificates did not load (the old set kept serving).
    pub reload_failures: u64,
    /// Client connections open now.
    pub connections_active: u64,
    /// Client connections accepted since start.
    pub connections_total: u64,
    /// Responses sent, by status class: `[other, 1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses_by_class: [u64; 6],
    /// Upstream responses timed (time to response headers).
    pub upstream_latency_count: u64,
    /// Sum of the timed upstream latencies, in microseconds.
    pub upstream_latency_micros_sum: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Metrics {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.inner;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            handshakes: load(&c.handshakes),
            handshake_failures: load(&c.handshake_failures),
            unknown_sni: load(&c.unknown_sni),
            acme_tls_alpn_handshakes: load(&c.acme_tls_alpn_handshakes),
            reloads: load(&c.reloads),
            reload_failures: load(&c.reload_failures),
            connections_active: load(&c.connections_active),
            connections_total: load(&c.connections_total),
            responses_by_class: std::array::from_fn(|i| load(&c.responses_by_class[i])),
            upstream_latency_count: load(&c.upstream_latency_count),
            upstream_latency_micros_sum: load(&c.upstream_latency_micros_sum),
        }
    }

    /// The counters in the Prometheus text exposition format (version 0.0.4), every
    /// name prefixed `berth_proxy_`.
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        render_singles(&mut out, &s);
        render_responses(&mut out, &s);
        self.render_latency(&mut out, &s);
        out
    }

    /// The upstream latency histogram: cumulative buckets, `+Inf`, sum and count.
    fn render_latency(&self, out: &mut String, s: &MetricsSnapshot) {
        let name = "berth_proxy_upstream_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from forwarding a request to the upstream's response headers."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bucket, le) in self
            .inner
            .upstream_latency_buckets
            .iter()
            .zip(LATENCY_BUCKETS_SECONDS)
        {
            let count = bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            s.upstream_latency_count
        );
        let _ = writeln!(
            out,
            "{name}_sum {}",
            s.upstream_latency_micros_sum as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", s.upstream_latency_count);
    }

    pub(crate) fn handshake_ok(&self) {
        bump(&self.inner.handshakes);
    }

    pub(crate) fn handshake_failed(&self) {
        bump(&self.inner.handshake_failures);
    }

    pub(crate) fn unknown_sni(&self) {
        bump(&self.inner.unknown_sni);
    }

    pub(crate) fn acme_tls_alpn_handshake(&self) {
        bump(&self.inner.acme_tls_alpn_handshakes);
    }

    pub(crate) fn reloaded(&self) {
        bump(&self.inner.reloads);
    }

    pub(crate) fn reload_failed(&self) {
        bump(&self.inner.reload_failures);
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> ConnectionGuard {
        bump(&self.inner.connections_total);
        bump(&self.inner.connections_active);
        ConnectionGuard {
            metrics: self.clone(),
        }
    }

    pub(crate) fn response(&self, status: http::StatusCode) {
        let class = match status.as_u16() {
            100..=599 => usize::from(status.as_u16() / 100),
            _ => 0,
        };
        bump(&self.inner.responses_by_class[class]);
    }

    pub(crate) fn upstream_latency(&self, latency: Duration) {
        let c = &self.inner;
        let seconds = latency.as_secs_f64();
        // Prometheus buckets are cumulative: every bucket whose bound is at least the
        // observation counts it.
        for (i, le) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
            if seconds <= *le {
                bump(&c.upstream_latency_buckets[i]);
            }
        }
        bump(&c.upstream_latency_count);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        c.upstream_latency_micros_sum
            .fetch_add(micros, Ordering::Relaxed);
    }
}

/// Adds one to a counter.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The counters and the gauge that are one value each, with their help texts.
fn render_singles(out: &mut String, s: &MetricsSnapshot) {
    let singles = [
        (
            "tls_handshakes_total",
            "counter",
            "Completed TLS handshakes.",
            s.handshakes,
        ),
        (
            "tls_handshake_failures_total",
            "counter",
            "Failed TLS handshakes, unknown server names included.",
            s.handshake_failures,
        ),
        (
            "tls_unknown_sni_total",
            "counter",
            "Handshakes refused because no certificate matched the server name.",
            s.unknown_sni,
        ),
        (
            "tls_acme_alpn_handshakes_total",
            "counter",
            "Handshakes answered with a TLS-ALPN-01 challenge certificate.",
            s.acme_tls_alpn_handshakes,
        ),
        (
            "cert_reloads_total",
            "counter",
            "Certificate sets swapped in after the first.",
            s.reloads,
        ),
        (
            "cert_reload_failures_total",
            "counter",
            "Certificate reloads refused; the previous set kept serving.",
            s.reload_failures,
        ),
        (
            "connections_active",
            "gauge",
            "Client connections open now.",
            s.connections_active,
        ),
        (
            "connections_total",
            "counter",
            "Client connections accepted.",
            s.connections_total,
        ),
    ];
    for (name, kind, help, value) in singles {
        let _ = writeln!(out, "# HELP berth_proxy_{name} {help}");
        let _ = writeln!(out, "# TYPE berth_proxy_{name} {kind}");
        let _ = writeln!(out, "berth_proxy_{name} {value}");
    }
}

/// Responses by status class.
fn render_responses(out: &mut String, s: &MetricsSnapshot) {
    let _ = writeln!(
        out,
        "# HELP berth_proxy_responses_total Responses sent, by status class."
    );
    let _ = writeln!(out, "# TYPE berth_proxy_responses_total counter");
    let classes = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];
    for (class, count) in classes.iter().zip(s.responses_by_class) {
        let _ = writeln!(
            out,
            "berth_proxy_responses_total{{class=\"{class}\"}} {count}"
        );
    }
}

/// Keeps a connection counted in `connections_active` while alive.
pub(crate) struct ConnectionGuard {
    metrics: Metrics,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .inner
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class_and_latency_buckets_are_cumulative() {
        let m = Metrics::new();
        m.response(http::StatusCode::OK);
        m.response(http::StatusCode::PERMANENT_REDIRECT);
        m.response(http::StatusCode::BAD_GATEWAY);
        m.response(http::StatusCode::GATEWAY_TIMEOUT);
        m.upstream_latency(Duration::from_millis(30));
        m.upstream_latency(Duration::from_secs(20));
        let s = m.snapshot();
        assert_eq!(s.responses_by_class, [0, 0, 1, 1, 0, 2]);
        assert_eq!(s.upstream_latency_count, 2);
        assert_eq!(s.upstream_latency_micros_sum, 20_030_000);
        let text = m.render_prometheus();
        assert!(
            text.contains("berth_proxy_responses_total{class=\"5xx\"} 2"),
            "{text}"
        );
        // 30 ms falls in the 0.05 bucket and every larger one, 20 s only in +Inf.
        assert!(text.contains("_bucket{le=\"0.025\"} 0"), "{text}");
        assert!(text.contains("_bucket{le=\"0.05\"} 1"), "{text}");
        assert!(text.contains("_bucket{le=\"10\"} 1"), "{text}");
        assert!(text.contains("_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(
            text.contains("berth_proxy_upstream_latency_seconds_sum 20.03"),
            "{text}"
        );
    }

    #[test]
    fn connection_guard_tracks_open_connections() {
        let m = Metrics::new();
        let a = m.connection_opened();
        let b = m.connection_opened();
        assert_eq!(m.snapshot().connections_active, 2);
        drop(a);
        assert_eq!(m.snapshot().connections_active, 1);
        drop(b);
        let s = m.snapshot();
        assert_eq!((s.connections_active, s.connections_total), (0, 2));
    }
}

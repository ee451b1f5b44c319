//! `[limits]`: the proxy's limits as one layer sets them. The names and defaults are
//! [`berth_proxy::Limits`]'s; this type only says which ones a layer sets.

use std::time::Duration;

use berth_proxy::Limits;
use serde::{Deserialize, Serialize};

/// The proxy limits one layer (flags, the file) sets; `None` leaves a limit to the layer
/// below and, last, to [`Limits::DEFAULT`]. Durations are written `"30s"`, `"5m"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsLayer {
    /// [`Limits::header_timeout`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub header_timeout: Option<Duration>,
    /// [`Limits::idle_timeout`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub idle_timeout: Option<Duration>,
    /// [`Limits::max_header_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<usize>,
    /// [`Limits::max_connections`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// [`Limits::max_upstream_connections`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upstream_connections: Option<usize>,
    /// [`Limits::max_body_bytes`]; no layer can set "unlimited" over a lower one's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// [`Limits::upstream_timeout`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub upstream_timeout: Option<Duration>,
    /// [`Limits::drain_timeout`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::serde_text::duration_option"
    )]
    pub drain_timeout: Option<Duration>,
}

impl LimitsLayer {
    /// These limits, each unset one taken from `lower`.
    pub fn or(self, lower: Self) -> Self {
        Self {
            header_timeout: self.header_timeout.or(lower.header_timeout),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            max_header_bytes: self.max_header_bytes.or(lower.max_header_bytes),
            max_connections: self.max_connections.or(lower.max_connections),
            max_upstream_connections: self
                .max_upstream_connections
                .or(lower.max_upstream_connections),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            upstream_timeout: self.upstream_timeout.or(lower.upstream_timeout),
            drain_timeout: self.drain_timeout.or(lower.drain_timeout),
        }
    }

    /// The limits: each one this layer sets, else its default.
    pub fn resolve(self) -> Limits {
        let mut limits = Limits::DEFAULT;
        let d = Limits::DEFAULT;
        limits.header_timeout = self.header_timeout.unwrap_or(d.header_timeout);
        limits.idle_timeout = self.idle_timeout.unwrap_or(d.idle_timeout);
        limits.max_header_bytes = self.max_header_bytes.unwrap_or(d.max_header_bytes);
        limits.max_connections = self.max_connections.unwrap_or(d.max_connections);
        limits.max_upstream_connections = self
            .max_upstream_connections
            .unwrap_or(d.max_upstream_connections);
        limits.max_body_bytes = self.max_body_bytes.or(d.max_body_bytes);
        limits.upstream_timeout = self.upstream_timeout.unwrap_or(d.upstream_timeout);
        limits.drain_timeout = self.drain_timeout.unwrap_or(d.drain_timeout);
        limits
    }

    /// Every limit a layer can set, as `limits` has it: what `berth config check`
    /// prints, and reads back as the same limits.
    pub fn of(limits: &Limits) -> Self {
        Self {
            header_timeout: Some(limits.header_timeout),
            idle_timeout: Some(limits.idle_timeout),
            max_header_bytes: Some(limits.max_header_bytes),
            max_connections: Some(limits.max_connections),
            max_upstream_connections: Some(limits.max_upstream_connections),
            max_body_bytes: limits.max_body_bytes,
            upstream_timeout: Some(limits.upstream_timeout),
            drain_timeout: Some(limits.drain_timeout),
        }
    }
}

/// `limits` as the `[limits]` table ([`LimitsLayer::of`]).
pub(crate) fn serialize<S: serde::Serializer>(
    limits: &Limits,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    LimitsLayer::of(limits).serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_layer_wins_then_the_lower_then_the_default() {
        let flags = LimitsLayer {
            drain_timeout: Some(Duration::from_secs(2)),
            ..LimitsLayer::default()
        };
        let file = LimitsLayer {
            drain_timeout: Some(Duration::from_secs(3)),
            max_connections: Some(100),
            ..LimitsLayer::default()
        };
        let limits = flags.or(file).resolve();
        assert_eq!(
            limits.drain_timeout,
            Duration::from_secs(2),
            "flag beats file"
        );
        assert_eq!(limits.max_connections, 100, "file beats default");
        assert_eq!(
            limits.idle_timeout,
            Limits::DEFAULT.idle_timeout,
            "default stays"
        );
        assert_eq!(LimitsLayer::default().resolve(), Limits::default());
    }

    #[test]
    fn every_limit_reads_back_as_itself() {
        let mut limits = Limits::DEFAULT;
        limits.max_body_bytes = Some(1024);
        limits.header_timeout = Duration::from_millis(1500);
        assert_eq!(LimitsLayer::of(&limits).resolve(), limits);
    }
}

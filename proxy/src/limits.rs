//! Timeouts and size limits that keep one slow or greedy client from hurting the rest.

use std::time::Duration;

use crate::error::Error;

/// hyper refuses read buffers below 8 KiB; header limits under it cannot be honoured.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Limits on client connections and upstream requests. Start from
/// [`Limits::default()`] and change the fields you need:
///
/// ```
/// use std::time::Duration;
/// let mut limits = berth_proxy::Limits::default();
/// limits.max_body_bytes = Some(10 * 1024 * 1024);
/// limits.upstream_timeout = Duration::from_secs(120);
/// ```
///
/// Each field's name is also its `berth` flag (`--header-timeout`), `BERTH_*` variable
/// and `[limits]` key in the config file, and [`Limits::DEFAULT`] holds the one default
/// all of them use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How long a client may take to send a request's headers (and to complete the TLS
    /// handshake) before the connection is closed: the defence against slowloris. For
    /// HTTP/1.1 it also bounds the wait for the next request on a kept-alive
    /// connection. Default 10 s.
    pub header_timeout: Duration,
    /// A connection on which nothing was read or written for this long is closed
    /// gracefully (requests in flight still finish). Default 90 s.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers) accepted; larger requests
    /// get `431 Request Header Fields Too Large`. At least 8 KiB. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Client connections served at once, both listeners together; further clients
    /// wait in the kernel's accept queue. Default 10 000.
    pub max_connections: usize,
    /// The largest request body forwarded; larger bodies get `413 Content Too Large`.
    /// Default: no limit (the upstream decides).
    pub max_body_bytes: Option<u64>,
    /// How long to wait for an upstream's response headers before answering
    /// `504 Gateway Timeout`. Default 60 s.
    pub upstream_timeout: Duration,
    /// How long to wait for a TCP connection to an upstream; a timeout answers `504`,
    /// a refusal `502`. Default 5 s.
    pub upstream_connect_timeout: Duration,
    /// Connections open at once to one upstream, idle or busy, the whole proxy
    /// (each worker gets an equal share, at least one). At the cap a request waits for
    /// a connection to be free, within `upstream_timeout`. Without a cap every HTTP/2
    /// stream could open a connection of its own. Default 1024 (Envoy's default
    /// `max_connections` per upstream cluster).
    pub max_upstream_connections: usize,
    /// On shutdown, how long requests in flight may take to finish before their
    /// connections are closed. Default 8 s, inside Docker's default 10 s stop timeout
    /// so draining ends before the container is killed.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Limits {
    /// The defaults, as a constant so that flag definitions can show them.
    pub const DEFAULT: Self = Self {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(90),
        max_header_bytes: 64 * 1024,
        max_connections: 10_000,
        max_body_bytes: None,
        upstream_timeout: Duration::from_secs(60),
        upstream_connect_timeout: Duration::from_secs(5),
        max_upstream_connections: 1024,
        drain_timeout: Duration::from_secs(8),
    };

    /// Refuses values the servers cannot work with.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let bad = |setting, reason: &str| {
            Err(Error::InvalidConfig {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return bad("max_header_bytes", "must be at least 8192 (8 KiB)");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_upstream_connections == 0 {
            return bad("max_upstream_connections", "must be at least 1");
        }
        for (setting, value) in [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("upstream_timeout", self.upstream_timeout),
            ("upstream_connect_timeout", self.upstream_connect_timeout),
        ] {
            if value.is_zero() {
                return bad(setting, "must be longer than zero");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_unworkable_values_are_named() {
        assert!(Limits::default().check().is_ok());
        let small = Limits {
            max_header_bytes: 1024,
            ..Limits::default()
        };
        let err = small.check().unwrap_err().to_string();
        assert!(
            err.contains("max_header_bytes") && err.contains("8192"),
            "{err}"
        );
        let zero = Limits {
            upstream_timeout: Duration::ZERO,
            ..Limits::default()
        };
        let err = zero.check().unwrap_err().to_string();
        assert!(err.contains("upstream_timeout"), "{err}");
        let none = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert!(none.check().is_err());
    }
}

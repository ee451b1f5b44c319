//! The proxy's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the proxy could not be configured, bound or fed certificates.
///
/// Errors on the request path (upstream down, timeouts, oversized requests) are not
/// errors of this type: they become HTTP responses (502, 504, 413, 431) and are counted
/// in [`Metrics`](crate::Metrics).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or out of range.
    #[error("proxy setting {setting}: {reason}")]
    InvalidConfig {
        /// The setting at fault (`tls_addr`, `max_header_bytes`, ...).
        setting: &'static str,
        /// What is wrong and what to change.
        reason: String,
    },
    /// A route (`[host][/prefix]=http://host:port`) does not parse.
    #[error("route {input:?}: {reason}")]
    InvalidRoute {
        /// The route as given.
        input: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// An upstream address is not an `http://host:port` URL.
    #[error("upstream {input:?}: {reason}")]
    InvalidUpstream {
        /// The upstream as given.
        input: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// A trusted-proxy entry is not an IP address or CIDR.
    #[error("trusted proxy {input:?}: {reason}")]
    InvalidTrustedProxy {
        /// The entry as given.
        input: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A worker thread ([`ProxyBuilder::workers`](crate::ProxyBuilder::workers)) or its
    /// runtime could not be started.
    #[error("cannot start proxy worker {index}: {source}")]
    Worker {
        /// Which worker (2 and up; worker 1 is the caller's task).
        index: usize,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A listening socket could not be opened.
    #[error(
        "cannot listen on {addr}: {source}; is another process using the port, or does it need privileges?"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file could not be read or does not hold usable certificates.
    #[error("certificate file {path}: {reason}")]
    CertFile {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong (never the key material itself).
        reason: String,
    },
    /// The certificate files could not be watched for changes.
    #[error("cannot watch {path} for certificate changes: {source}")]
    Watch {
        /// The directory that was to be watched.
        path: PathBuf,
        /// The watcher's reason.
        #[source]
        source: notify::Error,
    },
    /// The rustls server configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

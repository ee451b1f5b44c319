//! berth's TLS-terminating reverse proxy: a rustls certificate resolver whose whole
//! certificate set is swapped atomically on reload, a plain-HTTP listener that answers
//! ACME HTTP-01 challenges and redirects everything else to HTTPS, and a streaming
//! reverse proxy (HTTP/1.1 and HTTP/2 from clients, WebSocket pass-through) in front of
//! plain-HTTP upstreams.
//!
//! The same code runs embedded in an application and in the `berth` sidecar:
//! configure a [`Proxy`] with [`Routes`] and a [`CertSource`], [`bind`](Proxy::bind) it
//! (port 0 is fine; the bound addresses are reported back), then
//! [`serve`](BoundProxy::serve) it until a [`CancellationToken`] is cancelled.
//!
//! - **Certificates** come from a certificate manager's `watch` channel
//!   ([`CertSource::Watch`]) or from files another process rewrites
//!   ([`CertSource::File`], [`CertSource::PemPair`]), watched and reloaded within a
//!   second; a broken rewrite is logged and the previous certificates keep serving.
//!   Server names match exactly, then by one-label wildcard, then an optional default.
//! - **TLS**: 1.3 and 1.2 only, rustls' default suites, ALPN `h2` / `http/1.1`
//!   (and `acme-tls/1` for TLS-ALPN-01), session tickets and a session cache.
//! - **Limits** ([`Limits`]): header read timeout (slowloris), idle timeout (counted in
//!   requests, so HTTP/2 PINGs do not keep a connection open), maximum header size
//!   (431), maximum concurrent connections, connections per upstream, 128 streams per
//!   HTTP/2 connection, optional maximum body (413), upstream timeouts (504; 502 when
//!   the upstream is down), shutdown drain deadline. Request paths holding dot-segments
//!   get 400, and the target's authority is the `Host` an upstream sees.
//! - **Forwarding headers**: `X-Forwarded-For`, `Forwarded` (RFC 7239), `X-Real-IP`
//!   and `X-Forwarded-Proto`/`-Host`/`-Port` say what the proxy saw; a client's own are
//!   replaced unless it connects from a [`TrustedProxies`] range (a load balancer),
//!   whose are kept and appended to. A `Connection` header cannot remove `Host` or
//!   these, and only WebSocket upgrades are tunnelled (others are forwarded as plain
//!   HTTP/1.1 requests). Behind an L4 load balancer, a PROXY protocol v1/v2 header from
//!   a trusted peer names the client ([`ProxyBuilder::proxy_protocol`]).
//! - **Misdirected requests**: a request whose host has another certificate than the
//!   one the handshake's server name selected gets `421`; the plain-HTTP redirect goes
//!   only to names a certificate covers.
//! - **Metrics** ([`Metrics`]): lock-free counters, rendered as Prometheus text by
//!   [`Metrics::render_prometheus`].
//!
//! ```no_run
//! use berth_certs::challenge::Http01Responder;
//! use berth_proxy::{CertSource, Proxy, Routes, Upstream};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let http01 = Http01Responder::new(); // shared with the ACME order flow
//! let proxy = Proxy::builder()
//!     .tls_addr("[::]:443".parse()?)
//!     .http_addr("[::]:80".parse()?)
//!     .routes(Routes::single(Upstream::parse("http://127.0.0.1:3000")?))
//!     .cert_source(CertSource::File("/etc/berth/certs".into()))
//!     .http01(http01)
//!     .build()?
//!     .bind()
//!     .await?;
//! println!("serving HTTPS on {:?}", proxy.tls_addr());
//!
//! let shutdown = CancellationToken::new();
//! let on_signal = shutdown.clone();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     on_signal.cancel();
//! });
//! proxy.serve(shutdown).await?;
//! # Ok(())
//! # }
//! ```

mod conn;
mod error;
mod forward;
mod lifecycle;
mod limits;
mod metrics;
mod plain;
mod pool;
mod proxy_protocol;
mod resolver;
mod routes;
mod server;
mod source;
mod tls;
mod trusted;

pub use error::Error;
pub use limits::Limits;
pub use metrics::{Metrics, MetricsSnapshot};
pub use resolver::CertResolver;
pub use routes::{Route, Routes, Upstream};
pub use server::{BoundProxy, Proxy, ProxyBuilder, RouteTable};
pub use source::CertSource;
pub use tls::server_config;
#[doc(no_inline)]
pub use tokio_util::sync::CancellationToken;
pub use trusted::TrustedProxies;

//! berth's admin server and its client.
//!
//! The server ([`serve`], 127.0.0.1 by default) answers `/healthz`, `/readyz`,
//! `/metrics`, `/api/certs`, `POST /api/renew` and a small status page, all from the
//! [`CertManager`](berth_acme_core::CertManager)'s memory; what only the store knows
//! (lease holders, unmanaged certificates) is asked at most every two seconds.
//! [`AdminClient`] speaks to it (`berth healthcheck`, `berth renew`). Both use the types
//! in [`api`], so the JSON the server writes is the JSON the client reads.
//!
//! Requests from web pages are refused: one carrying an `Origin` header, or (except the
//! probes and `/metrics`) a `Host` that is not the admin address. `/api/renew` also
//! needs [`api::REQUEST_HEADER`] and a loopback client.
//!
//! ```
//! use berth_admin::AdminClient;
//! use berth_admin::api::RenewRequest;
//! use berth_acme_core::DomainName;
//!
//! let client = AdminClient::new("0.0.0.0:9090".parse()?);
//! assert_eq!(client.url("/healthz"), "http://127.0.0.1:9090/healthz");
//! let request = RenewRequest {
//!     force: true,
//!     names: vec![DomainName::parse("app.example.com")?],
//!     ..RenewRequest::default()
//! };
//! assert_eq!(request.to_query(), "force=true&dry_run=false&names=app.example.com");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod api;
mod cache;
mod client;
mod gate;
mod metrics;
mod page;
pub mod renew;
mod server;

pub use client::{AdminClient, ClientError, probe};
pub use metrics::OrderCounters;
pub use server::{AdminServer, AdminState, serve};

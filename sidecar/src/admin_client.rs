//! A tiny HTTP client for the admin server of a running `berth run` (`berth healthcheck`,
//! `berth renew`), so images need no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cli::AdminTarget;

/// A response read whole.
pub(crate) struct AdminResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// `http://<admin-addr><path>`, with an unspecified address (0.0.0.0, ::) turned into
/// this host's loopback.
pub(crate) fn url(target: &AdminTarget, path: &str) -> String {
    let mut addr: SocketAddr = target.admin_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    format!("http://{addr}{path}")
}

/// Sends one request with no body; errors are one readable line.
pub(crate) async fn send(
    method: Method,
    url: &str,
    timeout: Duration,
) -> Result<AdminResponse, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a valid URL: {e}"))?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        // The admin server refuses mutations without it (a web page cannot send it).
        .header(crate::admin::REQUEST_HEADER, "1")
        .body(Empty::new())
        .map_err(|e| format!("building the request to {url}: {e}"))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            // The innermost cause says what happened ("Connection refused").
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            format!(
                "no answer from {url} ({cause}); is `berth run` running with this --admin-addr?"
            )
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer from {url}: {e}"))?
            .to_bytes();
        Ok(AdminResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "{url} did not answer within {}",
            humantime::format_duration(timeout)
        )
    })?
}

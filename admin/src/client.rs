//! A small HTTP client for the admin server (`berth healthcheck`, `berth renew`), so
//! images need no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::api::{CertList, REQUEST_HEADER, RenewRequest, RenewResponse};

/// Why a request to the admin server did not give an answer the caller can use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL does not parse.
    #[error("{url} is not a valid URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Nothing answered (no server there, or the connection broke).
    #[error("no answer from {url} ({cause})")]
    Unreachable {
        /// The URL.
        url: String,
        /// The innermost cause ("Connection refused").
        cause: String,
    },
    /// No complete answer within the time allowed.
    #[error("{url} did not answer within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The URL.
        url: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The server refused the request, or answered something else than was asked.
    #[error("{url} answered {status}: {message}")]
    Answered {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The answer's text (the server's reason, one line).
        message: String,
    },
}

impl ClientError {
    /// Whether the request itself was at fault (an unknown name, a dry run without a
    /// staging CA: 400 or 404), rather than the server or the network.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Self::Answered {
                status: 400 | 404,
                ..
            }
        )
    }
}

/// The admin server of a running berth, at one address.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
}

impl AdminClient {
    /// A client for the server listening on `admin_addr`; an unspecified address
    /// (0.0.0.0, ::) means this host's loopback.
    pub fn new(mut admin_addr: SocketAddr) -> Self {
        if admin_addr.ip().is_unspecified() {
            admin_addr.set_ip(match admin_addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        Self { addr: admin_addr }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET /api/certs`: the managed certificates.
    pub async fn certificates(&self, timeout: Duration) -> Result<CertList, ClientError> {
        let url = self.url("/api/certs");
        let (status, body) = send(Method::GET, &url, timeout).await?;
        read_json(&url, status, &body, &[200])
    }

    /// `POST /api/renew`: renews (or dry-runs) now and waits for the results. An answer
    /// with failed orders is `Ok`; see [`RenewResponse::failed`].
    pub async fn renew(
        &self,
        request: &RenewRequest,
        timeout: Duration,
    ) -> Result<RenewResponse, ClientError> {
        let url = self.url(&format!("/api/renew?{}", request.to_query()));
        let (status, body) = send(Method::POST, &url, timeout).await?;
        // 502: the server answered with results, some of which failed.
        read_json(&url, status, &body, &[200, 502])
    }
}

/// `GET url` and expect 200: the health check of `berth healthcheck`, at any URL.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ClientError> {
    let (status, body) = send(Method::GET, url, timeout).await?;
    if status == 200 {
        Ok(())
    } else {
        Err(answered(url, status, &body))
    }
}

fn answered(url: &str, status: u16, body: &str) -> ClientError {
    ClientError::Answered {
        url: url.to_owned(),
        status,
        message: body.trim().to_owned(),
    }
}

/// The body as `T` when the status is one of `expected`; else the server's text.
fn read_json<T: DeserializeOwned>(
    url: &str,
    status: u16,
    body: &str,
    expected: &[u16],
) -> Result<T, ClientError> {
    if !expected.contains(&status) {
        return Err(answered(url, status, body));
    }
    parse(body).map_err(|_| answered(url, status, body))
}

/// Reads an answer's JSON.
pub(crate) fn parse<T: DeserializeOwned>(body: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(body)
}

/// Sends one request with no body and reads the answer whole: status and text.
async fn send(method: Method, url: &str, timeout: Duration) -> Result<(u16, String), ClientError> {
    let uri: hyper::Uri =
        url.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ClientError::BadUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        // The admin server refuses mutations without it (a web page cannot send it).
        .header(REQUEST_HEADER, "1")
        .body(Empty::new())
        .map_err(|e| ClientError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let unreachable = |e: &dyn std::error::Error| {
        // The innermost cause says what happened ("Connection refused").
        let mut cause = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ClientError::Unreachable {
            url: url.to_owned(),
            cause: cause.to_string(),
        }
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout {
            url: url.to_owned(),
            timeout,
        })?
}

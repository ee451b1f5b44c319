//! The plain-HTTP listener (:80): HTTP-01 challenge answers and the redirect to HTTPS.

use std::sync::Arc;

use berth_certs::challenge::{HTTP01_PATH_PREFIX, Http01Responder};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::forward::{Forwarder, Peer, ResponseBody, local, request_host};
use crate::metrics::Metrics;
use crate::resolver::CertResolver;

/// What the plain-HTTP listener does with requests that are not ACME challenges.
pub(crate) enum Otherwise {
    /// `308 Permanent Redirect` to the same URL on HTTPS at this port.
    RedirectTo { https_port: u16 },
    /// No TLS listener: forward like the HTTPS side does.
    Forward(Arc<Forwarder>),
}

pub(crate) struct PlainHttp {
    pub(crate) http01: Option<Http01Responder>,
    pub(crate) otherwise: Otherwise,
    pub(crate) metrics: Metrics,
    /// The TLS listener's certificates: only names they cover are redirected.
    pub(crate) certs: Option<Arc<CertResolver>>,
}

impl PlainHttp {
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        peer: &Peer,
    ) -> Response<ResponseBody> {
        let path = req.uri().path();
        if path.starts_with(HTTP01_PATH_PREFIX) {
            // RFC 8555 §8.3: the CA fetches the key authorization over plain HTTP; an
            // unknown token gets a 404 rather than a redirect nobody can answer.
            let response = match self.http01.as_ref().and_then(|h| h.respond(path)) {
                Some(key_authorization) => {
                    tracing::info!(path, "answered an HTTP-01 challenge");
                    let mut response =
                        Response::new(Either::Right(Full::new(Bytes::from(key_authorization))));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    response
                }
                None => local(
                    StatusCode::NOT_FOUND,
                    "no pending challenge for this token\n",
                ),
            };
            self.metrics.response(response.status());
            return response;
        }
        match &self.otherwise {
            Otherwise::Forward(forwarder) => forwarder.handle(req, peer).await,
            Otherwise::RedirectTo { https_port } => {
                // A Location built from any Host would send clients wherever a request
                // said (cache poisoning, open redirects): only names served over TLS.
                let unknown = match (&self.certs, request_host(&req)) {
                    (Some(certs), Some(host)) => !certs.covers(host),
                    _ => false,
                };
                let response = if unknown {
                    local(
                        StatusCode::NOT_FOUND,
                        "no certificate for this host, so no https to redirect to\n",
                    )
                } else {
                    redirect(&req, *https_port)
                };
                self.metrics.response(response.status());
                response
            }
        }
    }
}

/// `308` to the same host, path and query on HTTPS (RFC 9110 §15.4.9: 308 keeps the
/// method and body, unlike 301).
fn redirect<B>(req: &Request<B>, https_port: u16) -> Response<ResponseBody> {
    let Some(host) = request_host(req) else {
        return local(
            StatusCode::BAD_REQUEST,
            "a Host header is required to redirect to https\n",
        );
    };
    let host = host.to_ascii_lowercase();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let Ok(location) = HeaderValue::from_str(&format!("https://{host}{port}{target}")) else {
        return local(
            StatusCode::BAD_REQUEST,
            "request target cannot be redirected\n",
        );
    };
    let mut response = local(StatusCode::PERMANENT_REDIRECT, "moved to https\n");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(uri: &str, host: Option<&str>, port: u16) -> (StatusCode, Option<String>) {
        let mut builder = Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let response = redirect(&builder.body(()).unwrap(), port);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[test]
    fn redirect_keeps_host_path_and_query_and_swaps_the_port() {
        assert_eq!(
            location("/a/b?c=d", Some("Example.com:80"), 443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://example.com/a/b?c=d".into())
            )
        );
        assert_eq!(
            location("/", Some("example.com"), 8443).1.as_deref(),
            Some("https://example.com:8443/")
        );
        assert_eq!(
            location("/", Some("[::1]:8080"), 8443).1.as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(location("/", None, 443), (StatusCode::BAD_REQUEST, None));
    }
}

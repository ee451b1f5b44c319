//! A small HTTPS client with explicit trust roots, for talking to Pebble and to berth.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A response read whole.
#[derive(Debug)]
pub struct HttpsResponse {
    /// Status code.
    pub status: u16,
    /// Body, lossily decoded as UTF-8.
    pub body: String,
}

/// A rustls client config trusting exactly the certificates in `roots_pem`.
pub fn tls_client_config(roots_pem: &str) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots
            .add(cert.expect("root PEM parses"))
            .expect("root is a valid trust anchor");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// GETs `url` over HTTPS (or HTTP) trusting `roots_pem`.
pub async fn https_get(url: &str, roots_pem: &str) -> Result<HttpsResponse, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_client_config(roots_pem))
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {url}: {e:?}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading body of {url}: {e}"))?
        .to_bytes();
    Ok(HttpsResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

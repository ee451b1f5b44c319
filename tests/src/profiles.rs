//! A TLS front for Pebble whose directory lists certificate profiles.
//!
//! Debian's Pebble 2.4 has no profiles (draft-ietf-acme-profiles). The front forwards
//! every request to a real Pebble unchanged — the `Host` header too, so Pebble's URLs
//! (and the JWS `url` it checks) name the front — and adds `meta.profiles` to the
//! directory. Pebble ignores a `profile` field it does not know, so an order naming a
//! listed profile is issued for real; the front keeps every new-order payload so a test
//! can see what the client asked for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::http::tls_client_config;
use crate::pebble::Pebble;

type Payloads = Arc<Mutex<Vec<serde_json::Value>>>;

/// Pebble behind a front that lists `profiles`; stops on drop.
pub struct ProfilesFront {
    addr: SocketAddr,
    cert_pem: String,
    new_orders: Payloads,
    task: JoinHandle<()>,
}

impl Drop for ProfilesFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProfilesFront {
    /// Starts a front on a free loopback port for `pebble`, listing `profiles`
    /// (name, description) in its directory.
    pub async fn start(pebble: &Pebble, profiles: &[(&str, &str)]) -> Self {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = pebble.directory_url().trim_end_matches("/dir").to_owned();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_client_config(pebble.tls_root_pem()))
            .https_only()
            .enable_http1()
            .build();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let meta: serde_json::Map<String, serde_json::Value> = profiles
            .iter()
            .map(|(name, description)| ((*name).to_owned(), (*description).into()))
            .collect();
        let new_orders: Payloads = Arc::default();
        let payloads = Arc::clone(&new_orders);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, client, upstream, meta, payloads) = (
                    acceptor.clone(),
                    client.clone(),
                    upstream.clone(),
                    meta.clone(),
                    Arc::clone(&payloads),
                );
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        forward(
                            request,
                            client.clone(),
                            upstream.clone(),
                            meta.clone(),
                            Arc::clone(&payloads),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            cert_pem: cert.pem(),
            new_orders,
            task,
        }
    }

    /// The directory URL clients use.
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.addr)
    }

    /// The front's TLS certificate, for the client's trust roots.
    pub fn tls_root_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The payloads of the new-order requests received so far (decoded JWS payloads).
    pub fn new_orders(&self) -> Vec<serde_json::Value> {
        self.new_orders.lock().unwrap().clone()
    }
}

async fn forward<C>(
    request: Request<Incoming>,
    client: Client<C, Full<Bytes>>,
    upstream: String,
    profiles: serde_json::Map<String, serde_json::Value>,
    payloads: Payloads,
) -> Result<Response<Full<Bytes>>, hyper::Error>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path().to_owned();
    if path == "/order-plz"
        && let Some(payload) = jws_payload(&body)
    {
        payloads.lock().unwrap().push(payload);
    }
    let uri = format!(
        "{upstream}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut outgoing = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = match client
        .request(outgoing.body(Full::new(body)).unwrap())
        .await
    {
        Ok(response) => response,
        Err(e) => {
            return Ok(Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(format!("front: {e}"))))
                .unwrap());
        }
    };
    let (mut parts, body) = response.into_parts();
    let mut body = body.collect().await?.to_bytes();
    if path == "/dir"
        && let Ok(mut directory) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        let meta = directory
            .as_object_mut()
            .unwrap()
            .entry("meta")
            .or_insert_with(|| serde_json::json!({}));
        meta["profiles"] = serde_json::Value::Object(profiles);
        body = Bytes::from(serde_json::to_vec(&directory).unwrap());
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The decoded payload of a flattened JWS (RFC 7515 §7.2.2).
fn jws_payload(body: &[u8]) -> Option<serde_json::Value> {
    let jws: serde_json::Value = serde_json::from_slice(body).ok()?;
    let bytes = base64url_decode(jws.get("payload")?.as_str()?)?;
    serde_json::from_slice(&bytes).ok()
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

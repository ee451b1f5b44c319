//! Standalone challenge servers for `berth issue` when no berth proxy owns :80 / :443:
//! a minimal HTTP-01 server and a TLS-ALPN-01 handshake-only server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{ACME_TLS_ALPN_PROTOCOL, ChallengeKind, Http01Responder, TlsAlpn01Responder};
use crate::crypto;
use crate::error::Error;

/// A validation request is a few hundred bytes; a connection that takes longer than this
/// is not the CA.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// CAs validate from a handful of vantage points; more open connections than this are
/// not the CA either.
const MAX_CONNECTIONS: usize = 64;

/// A running standalone challenge server. Stops when its shutdown token is cancelled,
/// on [`stop`](Self::stop), or when dropped.
#[derive(Debug)]
pub struct ChallengeListener {
    local_addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ChallengeListener {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes open connections and waits for the server task to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(addr = %self.local_addr, error = %e, "challenge listener task failed");
        }
    }
}

impl Drop for ChallengeListener {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` and serves HTTP-01 (RFC 8555 §8.3) from `responder`:
/// `GET /.well-known/acme-challenge/<token>` answers 200 `text/plain` with the key
/// authorization for a pending token, anything else 404. Returns once bound, so a
/// binding error (port 80 needs privileges) is reported before an order is placed.
pub async fn serve_http01(
    addr: SocketAddr,
    responder: Http01Responder,
    shutdown: CancellationToken,
) -> Result<ChallengeListener, Error> {
    let listener = bind(addr, ChallengeKind::Http01).await?;
    spawn_listener(listener, ChallengeKind::Http01, shutdown, move |stream| {
        let responder = responder.clone();
        async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = http01_response(&responder, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "http-01 connection ended with an error");
            }
        }
    })
}

/// Binds `addr` and answers TLS-ALPN-01 (RFC 8737) from `responder`: handshakes that
/// offer `acme-tls/1` for a name with a pending challenge get its `acmeIdentifier`
/// certificate; every other handshake fails. The connection is closed after the
/// handshake (RFC 8737 §3: the CA only checks the certificate).
pub async fn serve_tls_alpn01(
    addr: SocketAddr,
    responder: TlsAlpn01Responder,
    shutdown: CancellationToken,
) -> Result<ChallengeListener, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Error::Cert(berth_certs::CertError::InvalidKey {
                reason: format!("TLS configuration for tls-alpn-01: {e}"),
            })
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ChallengeOnly(responder)));
    config.alpn_protocols = vec![ACME_TLS_ALPN_PROTOCOL.to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = bind(addr, ChallengeKind::TlsAlpn01).await?;
    spawn_listener(
        listener,
        ChallengeKind::TlsAlpn01,
        shutdown,
        move |stream| {
            let acceptor = acceptor.clone();
            async move {
                match acceptor.accept(stream).await {
                    Ok(mut tls) => {
                        tracing::debug!(
                            server_name = tls.get_ref().1.server_name().unwrap_or_default(),
                            "answered tls-alpn-01 handshake"
                        );
                        // Best effort: the CA has what it came for.
                        let _ = tls.shutdown().await;
                    }
                    Err(e) => tracing::debug!(error = %e, "tls-alpn-01 handshake failed"),
                }
            }
        },
    )
}

/// Serves only challenge certificates; a handshake without `acme-tls/1` or for a name
/// with no pending challenge gets no certificate and fails.
#[derive(Debug)]
struct ChallengeOnly(TlsAlpn01Responder);

impl ResolvesServerCert for ChallengeOnly {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.resolve_hello(&client_hello)
    }
}

fn http01_response(
    responder: &Http01Responder,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body = match *request.method() {
        Method::GET | Method::HEAD => responder.respond(request.uri().path()),
        _ => None,
    };
    let (status, body) = match body {
        Some(key_authorization) => {
            tracing::debug!(path = request.uri().path(), "answered http-01 challenge");
            (StatusCode::OK, Bytes::from(key_authorization))
        }
        None => (StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

async fn bind(addr: SocketAddr, challenge: ChallengeKind) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| listen_error(addr, challenge, &e))
}

fn listen_error(addr: SocketAddr, challenge: ChallengeKind, err: &std::io::Error) -> Error {
    use std::io::ErrorKind;
    let reason = match err.kind() {
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::AddrInUse => "address already in use".to_owned(),
        ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        _ => err.to_string(),
    };
    Error::Listen {
        addr,
        challenge,
        kind: err.kind(),
        reason,
    }
}

fn spawn_listener<F, Fut>(
    listener: TcpListener,
    challenge: ChallengeKind,
    shutdown: CancellationToken,
    handle: F,
) -> Result<ChallengeListener, Error>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local_addr = listener.local_addr().map_err(|e| {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        listen_error(unspecified, challenge, &e)
    })?;
    let stop = shutdown.child_token();
    let task = tokio::spawn(accept_loop(listener, stop.clone(), handle));
    Ok(ChallengeListener {
        local_addr,
        stop,
        task: Some(task),
    })
}

async fn accept_loop<F, Fut>(listener: TcpListener, stop: CancellationToken, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Connections are owned by this set: dropping it when the loop ends aborts them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::warn!(%peer, "too many open challenge connections; dropping one");
                        continue;
                    }
                    let connection = handle(stream);
                    connections.spawn(async move {
                        if tokio::time::timeout(CONNECTION_TIMEOUT, connection).await.is_err() {
                            tracing::debug!(%peer, "challenge connection timed out");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a challenge connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn http01_listener_answers_pending_tokens_and_404s_the_rest() {
        let responder = Http01Responder::new();
        responder.insert("tok", "tok.thumb");
        let shutdown = CancellationToken::new();
        let listener = serve_http01("127.0.0.1:0".parse().unwrap(), responder, shutdown.clone())
            .await
            .unwrap();
        let addr = listener.local_addr();

        let hit = get(
            addr,
            "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: example.com\r\n\r\n",
        )
        .await;
        assert!(hit.starts_with("HTTP/1.1 200"), "{hit}");
        assert!(hit.contains("content-type: text/plain"), "{hit}");
        assert!(hit.ends_with("tok.thumb"), "{hit}");

        let miss = get(
            addr,
            "GET /.well-known/acme-challenge/other HTTP/1.1\r\nHost: example.com\r\n\r\n",
        )
        .await;
        assert!(miss.starts_with("HTTP/1.1 404"), "{miss}");
        let post = get(addr, "POST /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 404"), "{post}");

        shutdown.cancel();
        listener.stop().await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "listener still accepts after stop"
        );
    }

    /// Connects offering `alpn` for `name` with a client that trusts nothing: a handshake
    /// in which the server presented a certificate fails verifying it (webpki rejects the
    /// critical `acmeIdentifier` extension first), one in which the server refused fails
    /// with an alert.
    async fn alpn_handshake(addr: SocketAddr, name: &str, alpn: &[u8]) -> rustls::Error {
        let mut config = rustls::ClientConfig::builder_with_provider(crypto::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = TcpStream::connect(addr).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let err = connector.connect(server_name, stream).await.unwrap_err();
        let inner = err.into_inner().unwrap();
        *inner.downcast::<rustls::Error>().unwrap()
    }

    #[tokio::test]
    async fn tls_alpn01_listener_presents_a_certificate_only_for_pending_acme_tls_handshakes() {
        let responder = TlsAlpn01Responder::new();
        let name = crate::domain::DomainName::parse("alpn.example.com").unwrap();
        responder.insert(&name, &[1; 32]).unwrap();
        let listener = serve_tls_alpn01(
            "127.0.0.1:0".parse().unwrap(),
            responder,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let addr = listener.local_addr();

        let presented = alpn_handshake(addr, "alpn.example.com", ACME_TLS_ALPN_PROTOCOL).await;
        // RFC 8737 §3: the acmeIdentifier extension is critical, and generic TLS clients
        // refuse it — proof that the challenge certificate was the one presented.
        assert!(
            matches!(
                &presented,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
                    if format!("{other:?}").contains("UnsupportedCriticalExtension")
            ),
            "{presented:?}"
        );
        let other_name = alpn_handshake(addr, "other.example.com", ACME_TLS_ALPN_PROTOCOL).await;
        assert!(
            matches!(other_name, rustls::Error::AlertReceived(_)),
            "{other_name:?}"
        );
        let plain_https = alpn_handshake(addr, "alpn.example.com", b"http/1.1").await;
        assert!(
            matches!(plain_https, rustls::Error::AlertReceived(_)),
            "{plain_https:?}"
        );
        listener.stop().await;
    }

    #[tokio::test]
    async fn binding_a_taken_port_names_the_address_the_challenge_and_the_fix() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve_http01(addr, Http01Responder::new(), CancellationToken::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "cannot listen on {addr} for http-01: address already in use"
            )),
            "{err}"
        );
        assert!(err.contains("another server holds it"), "{err}");
        let err = serve_tls_alpn01(addr, TlsAlpn01Responder::new(), CancellationToken::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("for tls-alpn-01"), "{err}");
    }

    #[test]
    fn permission_denied_says_how_to_get_the_port() {
        let addr: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = listen_error(addr, ChallengeKind::Http01, &denied);
        assert_eq!(
            err.to_string(),
            "cannot listen on 0.0.0.0:80 for http-01: permission denied; run as root, grant CAP_NET_BIND_SERVICE, or listen on a port the CA reaches through a redirect"
        );
        assert_eq!(
            err.setting(),
            Some(crate::Setting::ListenAddr(ChallengeKind::Http01))
        );
        let err = listen_error(
            "0.0.0.0:443".parse().unwrap(),
            ChallengeKind::TlsAlpn01,
            &denied,
        );
        assert!(
            err.to_string()
                .ends_with("listen on a port that port 443 is forwarded to"),
            "{err}"
        );
        assert_eq!(
            err.setting(),
            Some(crate::Setting::ListenAddr(ChallengeKind::TlsAlpn01))
        );
    }
}

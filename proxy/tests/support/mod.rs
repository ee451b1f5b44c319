//! Shared pieces of the proxy's integration tests: a test CA issuing leaves with rcgen,
//! a small hyper upstream on 127.0.0.1:0, a proxy started on loopback ports, and TLS
//! clients that report which certificate they were served.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_certs::{CertInfo, CertSet, Certificate};
use berth_proxy::{BoundProxy, CertSource, Metrics, Proxy, ProxyBuilder, Routes};
use berth_secrets::Secret;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

/// Any wait in these tests gives up after this long, so a broken proxy fails the test
/// instead of hanging it.
pub const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------
// Test PKI

/// A throwaway CA that issues leaf certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A leaf certificate and its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
    pub serial: u64,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "berth proxy test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A leaf for `names` (the first is also the CN) with this serial number.
    pub fn leaf(&self, names: &[&str], serial: u64) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }
}

impl Leaf {
    pub fn certificate(&self) -> Certificate {
        Certificate::from_pem(&self.chain_pem, Secret::new(self.key_pem.clone())).unwrap()
    }

    /// Chain then key, the combined `<name>.pem` layout.
    pub fn combined_pem(&self) -> String {
        format!("{}{}", self.chain_pem, self.key_pem)
    }
}

pub fn cert_set(leaves: &[&Leaf]) -> CertSet {
    CertSet::new(leaves.iter().map(|l| l.certificate()).collect())
}

/// The serial number of a served leaf, as rcgen was given it.
pub fn serial_of(info: &CertInfo) -> u64 {
    u64::from_str_radix(&info.serial_hex, 16).unwrap()
}

// ---------------------------------------------------------------------------------
// Upstream

type UpBody = BoxBody<Bytes, Infallible>;

/// Lets a test hold the upstream's `/gate` and `/stream` responses until it says so.
#[derive(Default)]
pub struct UpstreamControl {
    /// Signalled when a `/gate`, `/hang` or `/stream` request has arrived.
    pub arrived: Notify,
    /// Releases one held `/gate` or `/stream` response.
    pub release: Notify,
    /// TCP connections accepted so far.
    pub connections: AtomicUsize,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub control: Arc<UpstreamControl>,
    stop: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A small HTTP/1.1 server on 127.0.0.1:0:
/// - `/headers`: the request line and headers it received, one per line;
/// - `/hang`: never answers (signals `arrived`);
/// - `/gate`: answers `gate passed` once the test releases it;
/// - `/stream`: sends `first\n`, waits for the test's release, sends `second\n`;
/// - `/body`: reads the whole body and answers its length;
/// - `/ws`: a WebSocket echo (one frame at a time, payloads under 126 bytes);
/// - `/close`: `closing`, then closes the connection (`Connection: close`);
/// - anything else: `hello from upstream`, with hop-by-hop headers the proxy must drop.
pub async fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let control = Arc::new(UpstreamControl::default());
    let stop = CancellationToken::new();
    let (ctl, token) = (Arc::clone(&control), stop.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = token.cancelled() => return,
                accepted = listener.accept() => accepted.unwrap(),
            };
            ctl.connections.fetch_add(1, Ordering::SeqCst);
            let ctl = Arc::clone(&ctl);
            tokio::spawn(async move {
                let service = service_fn(move |req| upstream_handle(Arc::clone(&ctl), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream {
        addr,
        control,
        stop,
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<UpBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

async fn upstream_handle(
    ctl: Arc<UpstreamControl>,
    mut req: Request<Incoming>,
) -> Result<Response<UpBody>, Infallible> {
    let response = match req.uri().path() {
        "/headers" => {
            let mut out = format!("{} {}\n", req.method(), req.uri());
            for (name, value) in req.headers() {
                out.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            text(StatusCode::OK, out)
        }
        "/hang" => {
            ctl.arrived.notify_one();
            std::future::pending().await
        }
        "/gate" => {
            ctl.arrived.notify_one();
            ctl.release.notified().await;
            text(StatusCode::OK, "gate passed")
        }
        "/stream" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            let ctl = Arc::clone(&ctl);
            tokio::spawn(async move {
                tx.send_data(Bytes::from_static(b"first\n")).await.unwrap();
                ctl.arrived.notify_one();
                ctl.release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"second\n")).await;
            });
            Response::new(body.boxed())
        }
        "/body" => {
            let body = req.into_body().collect().await;
            match body {
                Ok(body) => text(StatusCode::OK, body.to_bytes().len().to_string()),
                Err(_) => text(StatusCode::BAD_REQUEST, "body aborted"),
            }
        }
        "/close" => {
            let mut response = text(StatusCode::OK, "closing");
            response
                .headers_mut()
                .insert("connection", "close".parse().unwrap());
            response
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                while let Some(payload) = read_ws_frame(&mut io).await {
                    write_ws_frame(&mut io, &payload, false).await;
                }
            });
            let mut response = text(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
            let h = response.headers_mut();
            h.insert("upgrade", "websocket".parse().unwrap());
            h.insert("connection", "Upgrade".parse().unwrap());
            // RFC 6455 §1.3's example accept value, for the fixed key the client sends.
            h.insert(
                "sec-websocket-accept",
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().unwrap(),
            );
            response
        }
        _ => {
            let mut response = text(StatusCode::OK, "hello from upstream\n");
            let h = response.headers_mut();
            h.insert("connection", "x-drop-me".parse().unwrap());
            h.insert("x-drop-me", "1".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("x-kept", "1".parse().unwrap());
            response
        }
    };
    Ok(response)
}

/// Reads one small WebSocket frame (RFC 6455 §5.2) and returns its unmasked payload.
pub async fn read_ws_frame<S: AsyncRead + Unpin>(io: &mut S) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.ok()?;
    let masked = head[1] & 0x80 != 0;
    let len = usize::from(head[1] & 0x7f);
    assert!(len < 126, "test frames are small");
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some(payload)
}

/// Writes one text frame; clients mask (RFC 6455 §5.3), servers do not.
pub async fn write_ws_frame<S: AsyncWrite + Unpin>(io: &mut S, payload: &[u8], mask: bool) {
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, payload.len() as u8 | if mask { 0x80 } else { 0 }];
    if mask {
        let key = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    io.write_all(&frame).await.unwrap();
    io.flush().await.unwrap();
}

// ---------------------------------------------------------------------------------
// Proxy

/// A proxy serving in the background; shut down when dropped.
pub struct Running {
    pub tls: SocketAddr,
    pub http: SocketAddr,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), berth_proxy::Error>>,
    _stop_on_drop: tokio_util::sync::DropGuard,
}

impl Running {
    /// Waits for `serve` to return (it has been told to shut down) and asserts that it
    /// returned `Ok`; `what` says when it should have.
    pub async fn returned(self, what: &str) -> Metrics {
        let Self { task, metrics, .. } = self;
        tokio::time::timeout(DEADLINE, task)
            .await
            .unwrap_or_else(|_| panic!("serve returned {what}"))
            .unwrap()
            .unwrap();
        metrics
    }
}

/// A proxy serving `www.example.com` (a leaf of `ca`, serial 1) with every request
/// routed to `upstream`, to configure further.
pub fn www_in_front_of(ca: &TestCa, upstream: &str) -> ProxyBuilder {
    Proxy::builder()
        .routes(Routes::single(
            berth_proxy::Upstream::parse(upstream).unwrap(),
        ))
        .cert_source(CertSource::Static(cert_set(&[
            &ca.leaf(&["www.example.com"], 1)
        ])))
}

/// A proxy with static certificates of its own test CA in front of the test upstream.
pub struct Fixture {
    pub ca: TestCa,
    pub proxy: Running,
    pub upstream: Upstream,
}

impl Fixture {
    /// Serves a leaf for each `(names, serial)` of `certs`, every request routed to the
    /// test upstream, with `limits`; `configure` adds to the builder.
    pub async fn start(
        limits: berth_proxy::Limits,
        certs: &[(&[&str], u64)],
        configure: impl FnOnce(ProxyBuilder, &Upstream) -> ProxyBuilder,
    ) -> Self {
        let ca = TestCa::new();
        let leaves: Vec<Leaf> = certs
            .iter()
            .map(|(names, serial)| ca.leaf(names, *serial))
            .collect();
        let upstream = start_upstream().await;
        let builder = Proxy::builder()
            .routes(Routes::single(
                berth_proxy::Upstream::parse(&upstream.url()).unwrap(),
            ))
            .cert_source(CertSource::Static(cert_set(
                &leaves.iter().collect::<Vec<_>>(),
            )))
            .limits(limits);
        let proxy = start_proxy(configure(builder, &upstream)).await;
        Self {
            ca,
            proxy,
            upstream,
        }
    }

    /// A TLS connection for `sni` offering HTTP/1.1.
    pub async fn tls(&self, sni: &str) -> TlsStream<TcpStream> {
        tls_connect(
            self.proxy.tls,
            sni,
            client_config(&self.ca.pem, &[b"http/1.1"]),
        )
        .await
        .unwrap()
    }

    /// An HTTP/2 client over a TLS connection for `sni`.
    pub async fn h2(&self, sni: &str) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        let stream = tls_connect(self.proxy.tls, sni, client_config(&self.ca.pem, &[b"h2"]))
            .await
            .unwrap();
        http2(stream).await
    }
}

/// Binds `builder` (which must set no addresses) on 127.0.0.1:0 for both listeners.
pub async fn start_proxy(builder: ProxyBuilder) -> Running {
    let bound = builder
        .tls_addr("127.0.0.1:0".parse().unwrap())
        .http_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap();
    run(bound)
}

pub fn run(bound: BoundProxy) -> Running {
    let shutdown = CancellationToken::new();
    Running {
        tls: bound.tls_addr().unwrap(),
        http: bound.http_addr().unwrap(),
        metrics: bound.metrics(),
        shutdown: shutdown.clone(),
        _stop_on_drop: shutdown.clone().drop_guard(),
        task: tokio::spawn(bound.serve(shutdown)),
    }
}

/// Whether connecting to `addr` is refused (nothing listens there any more).
pub async fn refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Polls `condition` every 10 ms until it holds or [`DEADLINE`] passes.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`eventually`] for conditions that need to await.
pub async fn eventually_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------
// TLS clients

/// A client trusting only the test CA, offering these ALPN protocols.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut config = berth_tests::tls_client_config(ca_pem);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client limited to TLS 1.2, trusting only the test CA.
pub fn tls12_client_config(ca_pem: &str) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Like [`client_config`] but never resuming, so every handshake shows the certificate
/// the server picks now.
pub fn fresh_client_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut config = berth_tests::tls_client_config(ca_pem);
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client that accepts any certificate and any handshake signature, to see which
/// certificate the server chose when it does not match the requested name.
pub fn inspect_only_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    // TLS-ALPN-01 certificates carry a critical extension webpki does not know, so it
    // would refuse to even parse them; these tests only look at what was served.
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `addr` with `sni` as the server name (an IP address sends no SNI).
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(DEADLINE, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("TLS handshake finished or failed in time")
}

/// What the server presented on this connection.
pub fn served(stream: &TlsStream<TcpStream>) -> CertInfo {
    let (_, conn) = stream.get_ref();
    let leaf = &conn.peer_certificates().expect("server sent certificates")[0];
    CertInfo::from_der(leaf).unwrap()
}

/// A served leaf's serial, over a fresh (non-resumed) handshake with `sni`.
pub async fn served_serial(addr: SocketAddr, sni: &str, ca_pem: &str) -> u64 {
    let stream = tls_connect(addr, sni, fresh_client_config(ca_pem))
        .await
        .unwrap();
    serial_of(&served(&stream))
}

/// An HTTP/1.1 client connection over `io`.
pub async fn http1<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// An HTTP/2 client connection over `io`.
pub async fn http2<I>(io: I) -> hyper::client::conn::http2::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

pub fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends a request and reads the whole response.
pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, String) {
    let response = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .expect("response in time")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Sends `GET /gate` over a new HTTPS connection to `tls` and returns once `upstream`
/// holds it: the request is in flight until the test releases it
/// (`upstream.control.release`), and the task then yields its response.
pub async fn request_held_at_gate(
    tls: SocketAddr,
    config: Arc<ClientConfig>,
    upstream: &Upstream,
) -> tokio::task::JoinHandle<(StatusCode, http::HeaderMap, String)> {
    let mut sender = http1(tls_connect(tls, "www.example.com", config).await.unwrap()).await;
    let held =
        tokio::spawn(async move { send(&mut sender, get("www.example.com", "/gate")).await });
    tokio::time::timeout(DEADLINE, upstream.control.arrived.notified())
        .await
        .expect("the request reached the upstream");
    held
}

/// Lets the upstream answer the request [`request_held_at_gate`] sent, and asserts
/// that the answer reaches the client whole.
pub async fn release_gate(
    upstream: &Upstream,
    held: tokio::task::JoinHandle<(StatusCode, http::HeaderMap, String)>,
) {
    upstream.control.release.notify_one();
    let (status, _, body) = tokio::time::timeout(DEADLINE, held).await.unwrap().unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "gate passed"));
}

/// Reads from `io` until the end of an HTTP response head (or EOF), as text.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(DEADLINE, io.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

// ---------------------------------------------------------------------------------
// External tools

/// Runs a tool to completion (bounded by [`DEADLINE`]), returning (success, stdout, stderr).
pub async fn run_tool(program: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("tool finished in time")
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

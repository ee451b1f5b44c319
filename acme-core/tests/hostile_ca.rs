//! What berth does when a CA answers in ways Pebble never does: an authorization for a
//! name the order did not ask for, Let's Encrypt's refusal of an ARI `replaces`
//! naming a certificate another account ordered, and `badNonce` on chosen requests.
//!
//! Pebble (2.4, the harness's CA) produces neither of the first two — it has no ARI and
//! always authorizes exactly the order's names — and rejects nonces only at random, so
//! these tests run against a small local
//! HTTPS server answering like a CA (`fake_ca` in the test names): it accepts any JWS
//! without checking signatures and sends the recorded Let's Encrypt problem document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_acme_core::challenge::{
    ChallengeKind, Http01Responder, Http01Solver, PendingChallenge, Solver, SolverFuture,
};
use berth_acme_core::store::PendingOrder;
use berth_acme_core::{
    AccountConfig, AcmeAccount, Ca, Certificate, DomainSet, Issuer, OrderJournal, OrderRequest,
};
use berth_secrets::Secret;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer as RcIssuer, KeyPair};

/// What the fake CA answers and what it was asked.
#[derive(Default)]
struct Script {
    /// The identifier its authorization names, whatever the order asked for.
    authz_for: String,
    /// Refuse a new-order carrying `replaces` as Let's Encrypt does for a certificate
    /// another account ordered.
    refuse_replaces: bool,
    /// Each new-order's payload.
    new_orders: Vec<serde_json::Value>,
    /// Each challenge URL the client asked to validate.
    validations: Vec<String>,
    /// Answer this many POSTs to `bad_nonce_path` with `badNonce` (RFC 8555 §6.5) before
    /// serving one.
    bad_nonces: usize,
    bad_nonce_path: &'static str,
    /// The path of each POST, rejected ones included.
    posts: Vec<String>,
}

/// The real HTTP-01 solver, recording what it was asked to publish.
#[derive(Debug)]
struct Watched {
    inner: Http01Solver,
    presented: Arc<Mutex<Vec<String>>>,
}

impl Solver for Watched {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn present<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        self.presented
            .lock()
            .unwrap()
            .push(challenge.identifier().to_string());
        self.inner.present(challenge)
    }

    fn cleanup<'a>(&'a self, challenge: &'a PendingChallenge) -> SolverFuture<'a> {
        self.inner.cleanup(challenge)
    }
}

/// Keeps what the issuer records about each placed order.
#[derive(Default)]
struct Recorded(Mutex<Vec<PendingOrder>>);

impl OrderJournal for Recorded {
    fn placed(&self, order: PendingOrder) -> SolverFuture<'_> {
        self.0.lock().unwrap().push(order);
        Box::pin(async { Ok(()) })
    }
}

/// A CA certificate and a server certificate for 127.0.0.1 signed by it.
fn tls_identity() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = RcIssuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), config)
}

/// A certificate with an Authority Key Identifier, as a CA issues them, so an order
/// can name it in `replaces`.
fn replaced_certificate() -> Certificate {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = RcIssuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["app.example.com".to_owned()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&key, &issuer).unwrap();
    Certificate::from_pem(
        &format!("{}{}", leaf.pem(), ca.pem()),
        Secret::new(key.serialize_pem()),
    )
    .unwrap()
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let problem = status.is_client_error();
    Response::builder()
        .status(status)
        .header("Replay-Nonce", format!("n{}", rand_nonce()))
        .header(
            "Content-Type",
            if problem {
                "application/problem+json"
            } else {
                "application/json"
            },
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn rand_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The JWS payload of a POST (empty for POST-as-GET).
fn payload(body: &[u8]) -> serde_json::Value {
    let jws: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = jws["payload"].as_str().unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

async fn answer(
    request: Request<Incoming>,
    base: String,
    script: Arc<Mutex<Script>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let post = request.method() == hyper::Method::POST;
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut script = script.lock().unwrap();
    if post {
        script.posts.push(path.clone());
        if path == script.bad_nonce_path && script.bad_nonces > 0 {
            script.bad_nonces -= 1;
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"type": "urn:ietf:params:acme:error:badNonce", "detail": "JWS has an invalid anti-replay nonce", "status": 400}),
            ));
        }
    }
    let response = match path.as_str() {
        "/dir" => json_response(
            StatusCode::OK,
            serde_json::json!({
                "newNonce": format!("{base}/nonce"),
                "newAccount": format!("{base}/new-acct"),
                "newOrder": format!("{base}/new-order"),
                "revokeCert": format!("{base}/revoke"),
                "keyChange": format!("{base}/key-change"),
                "renewalInfo": format!("{base}/ari"),
                "meta": {}
            }),
        ),
        "/nonce" => json_response(StatusCode::OK, serde_json::json!({})),
        "/new-acct" => {
            let mut r = json_response(
                StatusCode::CREATED,
                serde_json::json!({"status": "valid", "orders": format!("{base}/orders")}),
            );
            r.headers_mut()
                .insert("Location", format!("{base}/acct/1").parse().unwrap());
            r
        }
        "/new-order" => {
            let order = payload(&body);
            let replaces = order.get("replaces").cloned();
            script.new_orders.push(order);
            if replaces.is_some() && script.refuse_replaces {
                // Recorded from Let's Encrypt (lego #2789).
                json_response(
                    StatusCode::FORBIDDEN,
                    serde_json::json!({
                        "type": "urn:ietf:params:acme:error:unauthorized",
                        "detail": "Could not validate ARI 'replaces' field :: requester account did not request the certificate being replaced by this order",
                        "status": 403
                    }),
                )
            } else {
                // An accepted `replaces` is echoed in the order (RFC 9773 §5).
                let mut order = serde_json::json!({
                    "status": "pending",
                    "identifiers": [{"type": "dns", "value": "app.example.com"}],
                    "authorizations": [format!("{base}/authz/1")],
                    "finalize": format!("{base}/finalize/1")
                });
                if let Some(replaces) = replaces {
                    order["replaces"] = replaces;
                }
                let mut r = json_response(StatusCode::CREATED, order);
                r.headers_mut()
                    .insert("Location", format!("{base}/order/1").parse().unwrap());
                r
            }
        }
        "/authz/1" => json_response(
            StatusCode::OK,
            serde_json::json!({
                "identifier": {"type": "dns", "value": script.authz_for},
                "status": "pending",
                "challenges": [{"type": "http-01", "url": format!("{base}/chall/1"), "token": "tok3n", "status": "pending"}]
            }),
        ),
        "/chall/1" => {
            script.validations.push(path.clone());
            json_response(
                StatusCode::OK,
                serde_json::json!({"type": "http-01", "url": format!("{base}/chall/1"), "token": "tok3n", "status": "processing"}),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            serde_json::json!({"type": "urn:ietf:params:acme:error:malformed", "detail": "no such resource", "status": 404}),
        ),
    };
    Ok(response)
}

/// Starts the fake CA on 127.0.0.1; returns its address and the PEM root to trust.
async fn start_fake_ca(script: Arc<Mutex<Script>>) -> (SocketAddr, String) {
    let (root, config) = tls_identity();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("https://{addr}");
    // Ends with the test's runtime.
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, base, script) = (acceptor.clone(), base.clone(), Arc::clone(&script));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    answer(request, base.clone(), Arc::clone(&script))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, root)
}

async fn issuer_against(
    script: &Arc<Mutex<Script>>,
) -> (Issuer, Http01Responder, Arc<Mutex<Vec<String>>>) {
    let (addr, root) = start_fake_ca(Arc::clone(script)).await;
    let mut config = AccountConfig::new(Ca::custom(&format!("https://{addr}/dir"), None).unwrap());
    config.agree_tos = true;
    config.ca_roots_pem = Some(root);
    let (account, _) = AcmeAccount::load_or_create(&config, None).await.unwrap();
    let responder = Http01Responder::new();
    let presented = Arc::new(Mutex::new(Vec::new()));
    let solver = Watched {
        inner: Http01Solver::new(responder.clone()),
        presented: Arc::clone(&presented),
    };
    (Issuer::new(account, Arc::new(solver)), responder, presented)
}

/// An order for `app.example.com` that gives up after 20 s.
fn app_order() -> OrderRequest {
    let mut request = OrderRequest::new(DomainSet::parse(["app.example.com"]).unwrap());
    request.timeout = std::time::Duration::from_secs(20);
    request
}

#[tokio::test]
async fn fake_ca_authorization_for_a_name_not_ordered_gets_no_answer_and_aborts_the_order() {
    let script = Arc::new(Mutex::new(Script {
        authz_for: "evil.example.net".into(),
        ..Script::default()
    }));
    let (issuer, responder, presented) = issuer_against(&script).await;
    let request = app_order();
    let err = issuer.issue(&request).await.unwrap_err().to_string();
    assert!(
        err.contains("evil.example.net") && err.contains("not requested"),
        "{err}"
    );
    assert!(
        presented.lock().unwrap().is_empty(),
        "an answer was published for a name nobody ordered: {:?}",
        presented.lock().unwrap()
    );
    assert!(responder.is_empty());
    assert!(script.lock().unwrap().validations.is_empty());
}

/// Places a renewal of [`replaced_certificate`] against a fake CA that authorizes
/// `stop.example.net` (so the order ends right after placement); returns the new-order
/// payloads the CA saw and what the issuer recorded about the order.
async fn renew_against(refuse_replaces: bool) -> (Vec<serde_json::Value>, Vec<PendingOrder>) {
    let script = Arc::new(Mutex::new(Script {
        authz_for: "stop.example.net".into(),
        refuse_replaces,
        ..Script::default()
    }));
    let (issuer, _, _) = issuer_against(&script).await;
    let mut request = app_order();
    request.replaces = Some(replaced_certificate());
    let journal = Recorded::default();
    let err = issuer
        .issue_resumable(&request, None, Some(&journal))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stop.example.net"), "{err}");
    let orders = script.lock().unwrap().new_orders.clone();
    (orders, journal.0.into_inner().unwrap())
}

#[tokio::test]
async fn fake_ca_refusing_replaces_for_another_accounts_certificate_gets_one_plain_order() {
    let (orders, recorded) = renew_against(true).await;
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert!(orders[0].get("replaces").is_some(), "{orders:?}");
    assert!(orders[1].get("replaces").is_none(), "{orders:?}");
    assert_eq!(recorded.len(), 1);
    assert!(!recorded[0].replaces_accepted, "recorded as an ARI renewal");
}

#[tokio::test]
async fn fake_ca_accepting_replaces_records_the_order_as_an_ari_renewal() {
    let (orders, recorded) = renew_against(false).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert!(orders[0].get("replaces").is_some(), "{orders:?}");
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].replaces_accepted);
}

/// Orders `app.example.com` from a fake CA that authorizes `authz_for` and answers the
/// first `bad_nonces` POSTs to `path` with `badNonce`; returns the order's error and the
/// paths of the POSTs the CA saw, and what the solver presented.
async fn order_with_bad_nonces(
    authz_for: &str,
    path: &'static str,
    bad_nonces: usize,
) -> (String, Vec<String>, Vec<String>) {
    let script = Arc::new(Mutex::new(Script {
        authz_for: authz_for.into(),
        bad_nonces,
        bad_nonce_path: path,
        ..Script::default()
    }));
    let (issuer, responder, presented) = issuer_against(&script).await;
    let request = app_order();
    let err = issuer.issue(&request).await.unwrap_err().to_string();
    assert!(
        responder.is_empty(),
        "answers are withdrawn after the order"
    );
    let posts = script.lock().unwrap().posts.clone();
    let presented = presented.lock().unwrap().clone();
    (err, posts, presented)
}

fn count(posts: &[String], path: &str) -> usize {
    posts.iter().filter(|p| *p == path).count()
}

// instant-acme sends a request three times on `badNonce`; berth repeats that for three
// rounds, so a request survives 8 rejections in a row and gives up on the 9th.

#[tokio::test]
async fn fake_ca_rejecting_eight_nonces_in_a_row_still_gets_the_order_placed() {
    let (err, posts, _) = order_with_bad_nonces("stop.example.net", "/new-order", 8).await;
    // The order was placed: it ends at the authorization for a name not ordered.
    assert!(err.contains("stop.example.net"), "{err}");
    assert_eq!(count(&posts, "/new-order"), 9, "{posts:?}");
}

#[tokio::test]
async fn fake_ca_rejecting_nine_nonces_in_a_row_fails_the_order_after_three_rounds() {
    let (err, posts, presented) = order_with_bad_nonces("stop.example.net", "/new-order", 9).await;
    assert!(err.contains("badNonce"), "{err}");
    assert!(err.contains("placing an order"), "{err}");
    assert_eq!(count(&posts, "/new-order"), 9, "{posts:?}");
    assert!(presented.is_empty());
}

#[tokio::test]
async fn fake_ca_rejecting_nonces_when_validation_starts_repeats_it_and_presents_once() {
    // The order never becomes ready at the fake CA (it has no order resource), so it
    // fails after validation was started.
    let (_, posts, presented) = order_with_bad_nonces("app.example.com", "/chall/1", 4).await;
    assert_eq!(count(&posts, "/chall/1"), 5, "{posts:?}");
    assert_eq!(presented, ["app.example.com"], "one answer, presented once");
}

//! ACME accounts: created on first use, reused from stored credentials afterwards.
//!
//! The account is the caller's to persist: [`AcmeAccount::load_or_create`] takes the
//! credentials stored last time and hands back new ones only when it registered an
//! account, so the store decides where they live (berth keeps them in its state file,
//! never in `acme.json`; see docs/ARCHITECTURE.md, "The acme.json account rule").

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use berth_secrets::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, CertificateIdentifier,
    ExternalAccountKey, HttpClient, NewAccount, RevocationRequest,
};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, Der};
use serde::Deserialize;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
use zeroize::Zeroizing;

use crate::ca::Ca;
use crate::certificate::Certificate;
use crate::crypto;
use crate::error::{AcmeProblem, Error};
use crate::renewal::RenewalWindow;

/// How long one request to the CA may take, connection and body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing a TCP connection to the CA may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// ACME answers are small JSON documents and PEM chains; anything bigger is not one.
const MAX_BODY_BYTES: usize = 1 << 20;
/// instant-acme retries `badNonce` itself (two more attempts, see `Client::post` in
/// instant-acme 0.8.5); berth retries a request that still fails that way this many more
/// rounds. A `badNonce` rejection means the CA did not act on the request (RFC 8555
/// §6.5), so repeating it is always safe.
pub(crate) const BAD_NONCE_ROUNDS: usize = 3;

/// An error that may be the CA's `badNonce` rejection (RFC 8555 §6.5), which
/// [`retry_bad_nonce`] answers by trying again.
pub(crate) trait MaybeBadNonce {
    /// Whether the CA rejected the request for a stale nonce.
    fn is_bad_nonce(&self) -> bool;
}

impl MaybeBadNonce for instant_acme::Error {
    fn is_bad_nonce(&self) -> bool {
        matches!(self, instant_acme::Error::Api(p) if p.is_bad_nonce())
    }
}

impl MaybeBadNonce for instant_acme::Problem {
    fn is_bad_nonce(&self) -> bool {
        self.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce")
    }
}

/// Evaluates the future expression `call` and awaits it, again while it fails with
/// `badNonce`, for at most [`BAD_NONCE_ROUNDS`] rounds (each round is instant-acme's own
/// three attempts); any other outcome, or the last round's `badNonce`, is the value.
/// Every request berth sends to a CA goes through here, so one rule decides how hard
/// berth tries. A macro rather than a function taking an async closure: the expression
/// borrows the order mutably, and a generic async closure's future is not provably
/// `Send` for the manager's spawned tasks.
macro_rules! retry_bad_nonce {
    ($call:expr) => {{
        let mut round = 1;
        loop {
            match $call.await {
                Err(e)
                    if $crate::account::MaybeBadNonce::is_bad_nonce(&e)
                        && round < $crate::account::BAD_NONCE_ROUNDS =>
                {
                    round += 1
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use retry_bad_nonce;

/// How to reach a CA and register with it.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// The CA (`--ca`).
    pub ca: Ca,
    /// Contact address for expiry and incident mail from the CA (`--email`).
    pub email: Option<String>,
    /// Whether the user agreed to the CA's terms of service (`--agree-tos`). Needed only
    /// to create an account, and only when the CA publishes terms.
    pub agree_tos: bool,
    /// External Account Binding, for CAs that require it (ZeroSSL, Google).
    pub eab: Option<Eab>,
    /// PEM root certificates to trust for the CA's HTTPS API instead of the platform's
    /// trust store (`--ca-root`): for private CAs such as step-ca or Pebble.
    pub ca_roots_pem: Option<String>,
}

impl AccountConfig {
    /// A configuration for `ca` with no email, no agreement, no EAB and the platform's
    /// trust store.
    pub fn new(ca: Ca) -> Self {
        Self {
            ca,
            email: None,
            agree_tos: false,
            eab: None,
            ca_roots_pem: None,
        }
    }
}

/// External Account Binding credentials (RFC 8555 §7.3.4), as the CA hands them out.
#[derive(Debug, Clone)]
pub struct Eab {
    /// The key id (`--eab-kid`).
    pub kid: String,
    /// The HMAC key, base64url as given by the CA (`--eab-hmac-file`).
    pub hmac: Secret,
}

/// An ACME account at one CA, ready to place orders. Cheap to clone.
#[derive(Clone)]
pub struct AcmeAccount {
    account: Account,
    ca: Ca,
    http: AcmeHttp,
    terms_of_service: Option<String>,
}

impl std::fmt::Debug for AcmeAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeAccount")
            .field("ca", &self.ca.name())
            .field("id", &self.account.id())
            .finish_non_exhaustive()
    }
}

/// Why a certificate is revoked (RFC 5280 §5.3.1); the CA may refuse some reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The private key leaked: CAs then also block the key for future certificates.
    KeyCompromise,
    /// The names' owner changed.
    AffiliationChanged,
    /// A newer certificate replaces this one.
    Superseded,
    /// The names are no longer served.
    CessationOfOperation,
}

impl AcmeAccount {
    /// Reuses the stored account in `existing` (instant-acme credentials JSON, as
    /// returned by an earlier call) when it belongs to the configured CA; otherwise
    /// registers a new account. Returns the account and, only when one was registered,
    /// the credentials the caller must persist.
    ///
    /// The CA's directory is fetched first, so an unreachable or untrusted CA, missing
    /// `--agree-tos` (the error names the terms URL) and missing EAB are reported before
    /// any account request. The account key is ECDSA P-256, the only kind instant-acme
    /// supports.
    pub async fn load_or_create(
        config: &AccountConfig,
        existing: Option<&Secret>,
    ) -> Result<(Self, Option<Secret>), Error> {
        let ca = &config.ca;
        let http = AcmeHttp::new(config.ca_roots_pem.as_deref())?;
        let directory = fetch_directory(&http, ca).await?;

        if let Some(stored) = existing {
            let (credentials, stored_directory) = parse_credentials(stored)?;
            if stored_directory.as_deref() == Some(ca.directory()) {
                let this = Self::from_stored(ca, http, &directory, credentials).await?;
                return Ok((this, None));
            }
            tracing::info!(
                ca = %ca.name(),
                stored_for = stored_directory.as_deref().unwrap_or("unknown"),
                "stored ACME account belongs to another CA; registering a new one"
            );
        }
        let (this, credentials) = Self::register(config, http, &directory).await?;
        Ok((this, Some(credentials)))
    }

    /// The account `stored` holds for `config.ca`, never registering one: `None` when the
    /// credentials were made for another CA's directory (or do not say which), where
    /// [`load_or_create`](Self::load_or_create) would register a new account.
    pub(crate) async fn load_stored(
        config: &AccountConfig,
        stored: &Secret,
    ) -> Result<Option<Self>, Error> {
        let ca = &config.ca;
        let (credentials, stored_directory) = parse_credentials(stored)?;
        if stored_directory.as_deref() != Some(ca.directory()) {
            return Ok(None);
        }
        let http = AcmeHttp::new(config.ca_roots_pem.as_deref())?;
        let directory = fetch_directory(&http, ca).await?;
        Self::from_stored(ca, http, &directory, credentials)
            .await
            .map(Some)
    }

    /// The account `credentials` stored for `ca`.
    async fn from_stored(
        ca: &Ca,
        http: AcmeHttp,
        directory: &Directory,
        credentials: AccountCredentials,
    ) -> Result<Self, Error> {
        let account = Account::builder_with_http(Box::new(http.clone()))
            .from_credentials(credentials)
            .await
            .map_err(|e| match e {
                instant_acme::Error::KeyRejected => Error::InvalidAccountCredentials {
                    reason: "the account key is not an ECDSA P-256 PKCS#8 key".into(),
                },
                e => map_error(ca, &http, "loading the stored account", e),
            })?;
        tracing::debug!(ca = %ca.name(), account = %account.id(), "reusing stored ACME account");
        Ok(Self {
            account,
            ca: ca.clone(),
            http,
            terms_of_service: directory.meta.terms_of_service.clone(),
        })
    }

    /// Registers a new account (RFC 8555 §7.3); returns it and the credentials to store.
    async fn register(
        config: &AccountConfig,
        http: AcmeHttp,
        directory: &Directory,
    ) -> Result<(Self, Secret), Error> {
        let ca = &config.ca;
        let terms_of_service = directory.meta.terms_of_service.clone();
        if let Some(tos_url) = &terms_of_service
            && !config.agree_tos
        {
            return Err(Error::TermsNotAgreed {
                ca: ca.to_string(),
                tos_url: tos_url.clone(),
            });
        }
        let eab = external_account_key(config, directory)?;
        let contact = match &config.email {
            Some(email) => vec![mailto(email)?],
            None => Vec::new(),
        };
        let contact_refs: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contact_refs,
            terms_of_service_agreed: config.agree_tos,
            only_return_existing: false,
        };

        let (account, credentials) =
            retry_bad_nonce!(Account::builder_with_http(Box::new(http.clone())).create(
                &new_account,
                ca.directory().to_owned(),
                eab.as_ref()
            ))
            .map_err(|e| map_error(ca, &http, "creating an account", e))?;
        let json = serde_json::to_string(&credentials).map_err(|e| Error::AcmeProtocol {
            ca: ca.to_string(),
            action: "creating an account",
            reason: format!("cannot serialize the account credentials: {e}"),
        })?;
        tracing::info!(ca = %ca.name(), account = %account.id(), "registered ACME account");
        let this = Self {
            account,
            ca: ca.clone(),
            http,
            terms_of_service,
        };
        Ok((this, Secret::new(json)))
    }

    /// The account URL at the CA (its id, RFC 8555 §7.3).
    pub fn id(&self) -> &str {
        self.account.id()
    }

    /// The CA this account belongs to.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The CA's terms of service URL, if its directory names one.
    pub fn terms_of_service(&self) -> Option<&str> {
        self.terms_of_service.as_deref()
    }

    /// Revokes `certificate` (RFC 8555 §7.6), signed with this account's key: the
    /// account must be the one that ordered it (or hold valid authorizations for all its
    /// names).
    pub async fn revoke(
        &self,
        certificate: &Certificate,
        reason: RevocationReason,
    ) -> Result<(), Error> {
        let leaf = leaf_der(certificate)?;
        let request = RevocationRequest {
            certificate: &leaf,
            reason: Some(reason.into()),
        };
        retry_bad_nonce!(self.account.revoke(&request))
            .map_err(|e| self.error("revoking the certificate", e))?;
        tracing::info!(
            ca = %self.ca.name(),
            domains = %certificate.info().domains,
            serial = %certificate.info().serial_hex,
            ?reason,
            "revoked certificate"
        );
        Ok(())
    }

    /// The CA's suggested renewal window for `certificate` (ACME Renewal Information,
    /// RFC 9773), or `None` when the CA does not offer it. The window is the CA's hint
    /// for renewing early (e.g. ahead of a mass revocation).
    pub async fn renewal_window(
        &self,
        certificate: &Certificate,
    ) -> Result<Option<RenewalWindow>, Error> {
        let Some(id) = certificate_id(certificate)? else {
            // RFC 9773 §4.1 identifies a certificate by its AKI; without one there is
            // nothing to ask about.
            return Ok(None);
        };
        match self.account.renewal_info(&id).await {
            Ok((info, retry_after)) => Ok(Some(RenewalWindow::from_info(info, retry_after))),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(self.error("fetching renewal information", e)),
        }
    }

    pub(crate) fn inner(&self) -> &Account {
        &self.account
    }

    /// Maps an instant-acme error from `action` to berth's error.
    pub(crate) fn error(&self, action: &'static str, err: instant_acme::Error) -> Error {
        map_error(&self.ca, &self.http, action, err)
    }
}

/// The RFC 9773 §4.1 identifier of `certificate` (authority key identifier and serial),
/// or `None` when it carries no AKI.
pub(crate) fn certificate_id(
    certificate: &Certificate,
) -> Result<Option<CertificateIdentifier<'static>>, Error> {
    let leaf = leaf_der(certificate)?;
    let (_, parsed) = X509Certificate::from_der(&leaf).map_err(|e| invalid_cert(certificate, e))?;
    let aki = parsed
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        });
    Ok(aki.map(|aki| {
        CertificateIdentifier::new(
            Der::from_slice(aki.0),
            Der::from_slice(parsed.tbs_certificate.raw_serial()),
        )
        .into_owned()
    }))
}

impl From<RevocationReason> for instant_acme::RevocationReason {
    fn from(reason: RevocationReason) -> Self {
        match reason {
            RevocationReason::Unspecified => Self::Unspecified,
            RevocationReason::KeyCompromise => Self::KeyCompromise,
            RevocationReason::AffiliationChanged => Self::AffiliationChanged,
            RevocationReason::Superseded => Self::Superseded,
            RevocationReason::CessationOfOperation => Self::CessationOfOperation,
        }
    }
}

impl RevocationReason {
    /// The name `FromStr` reads and the state file records: `superseded`,
    /// `key-compromise`, ...
    ///
    /// ```
    /// use berth_acme_core::RevocationReason;
    ///
    /// let reason: RevocationReason = "KeyCompromise".parse()?;
    /// assert_eq!(reason.as_str(), "key-compromise");
    /// assert_eq!(reason.to_string().parse::<RevocationReason>()?, reason);
    /// # Ok::<(), String>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
        }
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "unspecified" => Ok(Self::Unspecified),
            "key-compromise" | "keycompromise" => Ok(Self::KeyCompromise),
            "affiliation-changed" | "affiliationchanged" => Ok(Self::AffiliationChanged),
            "superseded" => Ok(Self::Superseded),
            "cessation-of-operation" | "cessationofoperation" => Ok(Self::CessationOfOperation),
            _ => Err(format!(
                "unknown revocation reason {s:?}; use unspecified, key-compromise, affiliation-changed, superseded or cessation-of-operation"
            )),
        }
    }
}

fn leaf_der(certificate: &Certificate) -> Result<CertificateDer<'static>, Error> {
    certificate
        .certified_key()
        .cert
        .first()
        .map(|der| der.clone().into_owned())
        .ok_or_else(|| invalid_cert(certificate, "the chain has no leaf certificate"))
}

fn invalid_cert(certificate: &Certificate, err: impl std::fmt::Display) -> Error {
    Error::invalid_certificate(
        Some(certificate.info().domains.main().to_string()),
        err.to_string(),
    )
}

/// The CA's problem document as berth's own type.
pub(crate) fn problem(p: &instant_acme::Problem) -> AcmeProblem {
    AcmeProblem {
        problem_type: p.r#type.clone(),
        detail: p.detail.clone(),
        status: p.status,
        identifier: None,
        subproblems: p
            .subproblems
            .iter()
            .map(|sub| AcmeProblem {
                problem_type: sub.r#type.clone(),
                detail: sub.detail.clone(),
                status: None,
                identifier: sub
                    .identifier
                    .as_ref()
                    .map(|id| id.authorized(false).to_string()),
                subproblems: Vec::new(),
            })
            .collect(),
    }
}

fn map_error(ca: &Ca, http: &AcmeHttp, action: &'static str, err: instant_acme::Error) -> Error {
    match err {
        instant_acme::Error::Api(p) => {
            let problem = problem(&p);
            if problem.is("rateLimited") {
                Error::RateLimited {
                    ca: ca.to_string(),
                    detail: problem
                        .detail
                        .clone()
                        .unwrap_or_else(|| problem.to_string()),
                    retry_after: http.take_rate_limit_retry_after(),
                }
            } else if problem.is("externalAccountRequired") {
                Error::EabRequired { ca: ca.to_string() }
            } else {
                Error::Acme {
                    ca: ca.to_string(),
                    action,
                    problem: Box::new(problem),
                }
            }
        }
        instant_acme::Error::Other(source) => transport_error(ca, source.as_ref()),
        instant_acme::Error::Hyper(source) => transport_error(ca, &source),
        other => Error::AcmeProtocol {
            ca: ca.to_string(),
            action,
            reason: other.to_string(),
        },
    }
}

/// Turns a failed HTTPS exchange into "untrusted certificate" or "unreachable", walking
/// the error chain (hyper-rustls wraps the rustls error in an `io::Error`).
fn transport_error(ca: &Ca, err: &(dyn std::error::Error + 'static)) -> Error {
    let mut reasons: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        match find_rustls_error(e) {
            Some(rustls::Error::InvalidCertificate(cert_error)) => {
                return Error::CaUntrusted {
                    ca: ca.to_string(),
                    reason: format!("{cert_error:?}"),
                };
            }
            Some(other) => {
                return Error::CaUnreachable {
                    ca: ca.to_string(),
                    reason: format!("TLS handshake failed: {other}"),
                };
            }
            None => {}
        }
        let text = e.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        current = e.source();
    }
    Error::CaUnreachable {
        ca: ca.to_string(),
        reason: reasons.join(": "),
    }
}

/// The rustls error inside `err`, if any: tokio-rustls wraps it in an `io::Error`, and
/// hyper-rustls wraps that in another, whose `source()` skips both layers.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    find_rustls_error(inner)
}

/// Returns the credentials and the directory URL they were made for.
fn parse_credentials(stored: &Secret) -> Result<(AccountCredentials, Option<String>), Error> {
    // serde_json's messages name a line and column, never the input, but instant-acme's
    // base64 error inside can quote a key byte: report only where parsing failed.
    let shape = |e: serde_json::Error| Error::InvalidAccountCredentials {
        reason: format!(
            "not instant-acme account credentials JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    };
    #[derive(Deserialize)]
    struct Directory {
        directory: Option<String>,
    }
    let directory = serde_json::from_str::<Directory>(stored.expose())
        .map_err(shape)?
        .directory;
    let credentials = serde_json::from_str::<AccountCredentials>(stored.expose()).map_err(shape)?;
    Ok((credentials, directory))
}

fn decode_eab_hmac(eab: &Eab) -> Result<Zeroizing<Vec<u8>>, Error> {
    let invalid = |reason| Error::InvalidEab {
        kid: eab.kid.clone(),
        reason,
    };
    let text = eab.hmac.expose().trim().trim_end_matches('=');
    if text.is_empty() {
        return Err(invalid("it is empty"));
    }
    // CAs hand out base64url (RFC 8555 §7.3.4); accept standard base64 pasted by hand.
    // The decoder's error can quote a character of the key, so it is not passed on.
    let key = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| invalid("it is not base64url"))?;
    Ok(Zeroizing::new(key))
}

fn mailto(email: &str) -> Result<String, Error> {
    let email = email.trim();
    let email = email.strip_prefix("mailto:").unwrap_or(email);
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.contains(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '>')
        }
        None => false,
    };
    if valid {
        Ok(format!("mailto:{email}"))
    } else {
        Err(Error::InvalidEmail {
            email: email.to_owned(),
        })
    }
}

/// The parts of an ACME directory (RFC 8555 §7.1.1) berth reads before instant-acme.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Directory {
    #[allow(dead_code)] // Present in every ACME directory; its absence means "not one".
    new_account: String,
    #[serde(default)]
    meta: DirectoryMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryMeta {
    terms_of_service: Option<String>,
    #[serde(default)]
    external_account_required: bool,
    /// Certificate profiles by name, with their descriptions (the ACME profiles
    /// extension, draft-ietf-acme-profiles §3).
    #[serde(default)]
    profiles: std::collections::BTreeMap<String, String>,
}

/// The profiles `config`'s CA lists in its directory (name → description); empty when
/// it lists none. Fetches the directory only: no account is needed or created.
pub(crate) async fn directory_profiles(
    config: &AccountConfig,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let http = AcmeHttp::new(config.ca_roots_pem.as_deref())?;
    Ok(fetch_directory(&http, &config.ca).await?.meta.profiles)
}

/// The profiles of a directory document, parsed as [`directory_profiles`] parses it.
#[cfg(test)]
pub(crate) fn parse_directory_profiles(
    body: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, serde_json::Error> {
    Ok(serde_json::from_slice::<Directory>(body)?.meta.profiles)
}

/// The external account binding key to register with (RFC 8555 §7.3.4), refusing to
/// register without one at a CA that needs it.
fn external_account_key(
    config: &AccountConfig,
    directory: &Directory,
) -> Result<Option<ExternalAccountKey>, Error> {
    match &config.eab {
        Some(eab) => Ok(Some(ExternalAccountKey::new(
            eab.kid.clone(),
            &decode_eab_hmac(eab)?,
        ))),
        None if config.ca.requires_eab() || directory.meta.external_account_required => {
            Err(Error::EabRequired {
                ca: config.ca.to_string(),
            })
        }
        None => Ok(None),
    }
}

async fn fetch_directory(http: &AcmeHttp, ca: &Ca) -> Result<Directory, Error> {
    let request = http::Request::get(ca.directory())
        .header(http::header::USER_AGENT, user_agent())
        .body(BodyWrapper::<Bytes>::default())
        .map_err(|e| Error::CaUnreachable {
            ca: ca.to_string(),
            reason: format!("invalid directory URL: {e}"),
        })?;
    let response = http
        .request(request)
        .await
        .map_err(|e| map_error(ca, http, "fetching the directory", e))?;
    let status = response.parts.status;
    let mut body = response.body;
    let bytes = body
        .into_bytes()
        .await
        .map_err(|e| transport_error(ca, e.as_ref()))?;
    if !status.is_success() {
        return Err(Error::CaUnreachable {
            ca: ca.to_string(),
            reason: format!(
                "the directory URL answered HTTP {status} (is it the ACME directory URL?)"
            ),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::CaUnreachable {
        ca: ca.to_string(),
        reason: format!("the directory URL did not return an ACME directory ({e})"),
    })
}

fn user_agent() -> &'static str {
    concat!("berth/", env!("CARGO_PKG_VERSION"))
}

/// The HTTPS client instant-acme talks to the CA through: our crypto provider, the
/// trust roots the user chose, bounded request times, and a note of the CA's
/// `Retry-After` on rate-limit answers (instant-acme drops the headers of error
/// responses, and the failure ledger needs the time).
#[derive(Clone)]
struct AcmeHttp {
    client: HyperClient<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    rate_limit_retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl AcmeHttp {
    fn new(ca_roots_pem: Option<&str>) -> Result<Self, Error> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match ca_roots_pem {
            Some(pem) => builder.with_tls_config(
                rustls::ClientConfig::builder_with_provider(crypto::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Error::InvalidCaRoots {
                        reason: e.to_string(),
                    })?
                    .with_root_certificates(root_store(pem)?)
                    .with_no_client_auth(),
            ),
            None => builder
                .with_provider_and_platform_verifier(crypto::provider())
                .map_err(|e| Error::InvalidCaRoots {
                    reason: format!("the platform trust store is unusable: {e}"),
                })?,
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = builder
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(Self {
            client: HyperClient::builder(TokioExecutor::new()).build(connector),
            rate_limit_retry_after: Arc::default(),
        })
    }

    fn take_rate_limit_retry_after(&self) -> Option<SystemTime> {
        self.rate_limit_retry_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

fn root_store(pem: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::InvalidCaRoots {
            reason: format!("the PEM does not parse ({e})"),
        })?;
        roots.add(cert).map_err(|e| Error::InvalidCaRoots {
            reason: format!("a certificate is not a usable trust anchor ({e})"),
        })?;
    }
    if roots.is_empty() {
        return Err(Error::InvalidCaRoots {
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(roots)
}

#[derive(Debug, thiserror::Error)]
#[error("no complete answer within {}s", REQUEST_TIMEOUT.as_secs())]
struct RequestTimedOut;

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        let rate_limit = Arc::clone(&self.rate_limit_retry_after);
        Box::pin(async move {
            let exchange = async {
                let response = client
                    .request(req)
                    .await
                    .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_BODY_BYTES)
                    .collect()
                    .await
                    .map_err(instant_acme::Error::Other)?
                    .to_bytes();
                Ok::<_, instant_acme::Error>((parts, body))
            };
            let (parts, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                .await
                .map_err(|_| instant_acme::Error::Other(Box::new(RequestTimedOut)))??;
            // RFC 8555 §6.6: rate-limit answers are 429 with a Retry-After header.
            if parts.status == http::StatusCode::TOO_MANY_REQUESTS
                && let Some(at) = retry_after(&parts.headers)
            {
                *rate_limit.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
            }
            Ok(BytesResponse::from(http::Response::from_parts(
                parts,
                Full::new(body),
            )))
        })
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn retry_after(headers: &http::HeaderMap) -> Option<SystemTime> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    match value.parse::<u64>() {
        Ok(seconds) => SystemTime::now().checked_add(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
        let at = retry_after(&headers).unwrap();
        let ahead = at.duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(100) && ahead <= Duration::from_secs(120));
        headers.insert(
            http::header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn eab_hmac_decodes_base64url_with_or_without_padding() {
        let eab = |hmac: &str| Eab {
            kid: "kid-1".into(),
            hmac: Secret::new(hmac.into()),
        };
        assert_eq!(&*decode_eab_hmac(&eab("_-8")).unwrap(), &[0xff, 0xef]);
        assert_eq!(&*decode_eab_hmac(&eab("_-8=\n")).unwrap(), &[0xff, 0xef]);
        assert_eq!(&*decode_eab_hmac(&eab("/+8")).unwrap(), &[0xff, 0xef]);
    }

    #[test]
    fn bad_eab_hmac_is_refused_without_echoing_it() {
        for bad in ["", "hunter2!secret", "ab$cd"] {
            let eab = Eab {
                kid: "kid-1".into(),
                hmac: Secret::new(bad.into()),
            };
            let err = decode_eab_hmac(&eab).unwrap_err().to_string();
            assert!(err.contains("kid-1"), "{err}");
            assert!(!err.contains('$') && !err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn contact_email_becomes_a_mailto_uri() {
        assert_eq!(
            mailto("admin@example.com").unwrap(),
            "mailto:admin@example.com"
        );
        assert_eq!(
            mailto("mailto:admin@example.com").unwrap(),
            "mailto:admin@example.com"
        );
        for bad in [
            "admin",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@example.com,b@example.com",
        ] {
            let err = mailto(bad).unwrap_err();
            assert_eq!(err.setting(), Some(crate::Setting::Email), "{bad}");
            assert!(
                err.to_string().contains("is not an address"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn stored_credentials_that_do_not_parse_are_refused_without_key_material() {
        let stored =
            Secret::new(r#"{"id":"x","key_pkcs8":"SECRET$KEY","directory":"https://ca"}"#.into());
        let Err(err) = parse_credentials(&stored) else {
            panic!("credentials with a broken key parsed")
        };
        let err = err.to_string();
        assert!(err.contains("state file"), "{err}");
        assert!(!err.contains("SECRET") && !err.contains('$'), "{err}");
        assert!(parse_credentials(&Secret::new("not json".into())).is_err());
    }

    #[test]
    fn ca_roots_without_a_certificate_are_refused() {
        let err = root_store("just text").unwrap_err();
        assert_eq!(err.setting(), Some(crate::Setting::CaRoots));
        assert!(err.to_string().contains("give them as PEM"), "{err}");
    }

    #[test]
    fn problem_documents_keep_type_detail_and_subproblem_identifiers() {
        let p: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"policy","status":400,
                "subproblems":[{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","identifier":{"type":"dns","value":"a.example.com"}}]}"#,
        )
        .unwrap();
        let ours = problem(&p);
        assert_eq!(ours.short_type(), Some("rejectedIdentifier"));
        assert!(ours.is("rateLimited"));
        assert_eq!(
            ours.subproblems[0].identifier.as_deref(),
            Some("a.example.com")
        );
        let text = ours.to_string();
        assert!(
            text.contains("policy") && text.contains("a.example.com: too many"),
            "{text}"
        );
    }

    fn test_root_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn api_error(problem_type: &str, detail: &str) -> instant_acme::Error {
        instant_acme::Error::Api(
            serde_json::from_value(serde_json::json!({"type": problem_type, "detail": detail}))
                .unwrap(),
        )
    }

    #[test]
    fn rate_limit_problems_carry_the_recorded_retry_after() {
        let ca = Ca::custom("https://ca.example/dir", None).unwrap();
        let http = AcmeHttp::new(Some(&test_root_pem())).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        *http.rate_limit_retry_after.lock().unwrap() = Some(at);

        let err = map_error(
            &ca,
            &http,
            "placing an order",
            api_error(
                "urn:ietf:params:acme:error:rateLimited",
                "too many certificates for example.com",
            ),
        );

        match &err {
            Error::RateLimited {
                detail,
                retry_after,
                ..
            } => {
                assert_eq!(detail, "too many certificates for example.com");
                assert_eq!(*retry_after, Some(at));
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        assert!(
            err.to_string().contains("retry after 2033-05-18T03:33:20Z"),
            "{err}"
        );
        // The recorded time belongs to that one answer.
        assert_eq!(http.take_rate_limit_retry_after(), None);
    }

    #[test]
    fn other_problems_keep_the_action_and_the_problem_document() {
        let ca = Ca::custom("https://ca.example/dir", None).unwrap();
        let http = AcmeHttp::new(Some(&test_root_pem())).unwrap();
        let err = map_error(
            &ca,
            &http,
            "placing an order",
            api_error(
                "urn:ietf:params:acme:error:rejectedIdentifier",
                "policy forbids",
            ),
        );
        match &err {
            Error::Acme {
                action, problem, ..
            } => {
                assert_eq!(*action, "placing an order");
                assert_eq!(problem.short_type(), Some("rejectedIdentifier"));
            }
            other => panic!("expected Acme, got {other:?}"),
        }
        let eab = map_error(
            &ca,
            &http,
            "creating an account",
            api_error("urn:ietf:params:acme:error:externalAccountRequired", "eab"),
        );
        assert!(matches!(eab, Error::EabRequired { .. }), "{eab:?}");
    }

    #[test]
    fn revocation_reasons_parse_by_name() {
        assert_eq!(
            "key-compromise".parse::<RevocationReason>().unwrap(),
            RevocationReason::KeyCompromise
        );
        assert_eq!(
            "Superseded".parse::<RevocationReason>().unwrap(),
            RevocationReason::Superseded
        );
        assert!(
            "because"
                .parse::<RevocationReason>()
                .unwrap_err()
                .contains("key-compromise")
        );
    }
}

//! A real Pebble ACME server (and pebble-challtestsrv as its DNS) on loopback.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;

use crate::http::https_get;
use crate::tools::{free_port, require_tool, wait_for_port};

/// How to start Pebble. The defaults keep Pebble's fault injection (5 % `badNonce`
/// rejections, authorization reuse) but skip its random 0–15 s validation sleep so the
/// suite stays fast (`PEBBLE_VA_NOSLEEP=1`; `va_nosleep: false` brings the sleep back).
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// Skip the VA's random sleep before validating.
    pub va_nosleep: bool,
    /// Percentage of requests rejected with `badNonce` (`PEBBLE_WFE_NONCEREJECT`); `None`
    /// keeps Pebble's default of 5.
    pub nonce_reject_percent: Option<u8>,
    /// Accept every validation without contacting the client (`PEBBLE_VA_ALWAYS_VALID`).
    pub always_valid: bool,
    /// Lifetime of issued certificates, for renewal tests.
    pub validity: Option<Duration>,
    /// External Account Binding keys (`kid`, base64url HMAC); makes EAB required.
    pub eab_keys: Vec<(String, String)>,
    /// Port Pebble's VA connects to for HTTP-01; a free one is chosen when `None`.
    pub http_port: Option<u16>,
    /// Port Pebble's VA connects to for TLS-ALPN-01; a free one is chosen when `None`.
    pub tls_port: Option<u16>,
    /// A DNS server Pebble resolves (and checks DNS-01 TXT records) through, e.g. a
    /// BIND started by the test. When `None`, a pebble-challtestsrv DNS answering
    /// 127.0.0.1 for every name is started.
    pub dns_server: Option<SocketAddr>,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        Self {
            va_nosleep: true,
            nonce_reject_percent: None,
            always_valid: false,
            validity: None,
            eab_keys: Vec::new(),
            http_port: None,
            tls_port: None,
            dns_server: None,
        }
    }
}

/// A running Pebble, stopped (with its challtestsrv) on drop.
pub struct Pebble {
    dir: TempDir,
    pebble: Child,
    challtestsrv: Option<Child>,
    listen: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    http_port: u16,
    tls_port: u16,
    tls_root_pem: String,
}

impl std::fmt::Debug for Pebble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pebble")
            .field("directory", &self.directory_url())
            .finish_non_exhaustive()
    }
}

impl Pebble {
    /// Starts Pebble with default options and waits until its directory answers.
    pub async fn start() -> Self {
        Self::start_with(PebbleOptions::default()).await
    }

    /// Starts Pebble with `options` and waits until its directory answers.
    pub async fn start_with(options: PebbleOptions) -> Self {
        let pebble_bin = require_tool("pebble", "pebble");
        let dir = tempfile::Builder::new()
            .prefix("berth-pebble-")
            .tempdir()
            .expect("tempdir");
        let (tls_root_pem, cert_path, key_path) = write_tls_identity(dir.path());

        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http_port = options.http_port.unwrap_or_else(free_port);
        let tls_port = options.tls_port.unwrap_or_else(free_port);

        let (dns, challtestsrv) = match options.dns_server {
            Some(dns) => (dns, None),
            None => {
                let bin = require_tool("pebble-challtestsrv", "pebble");
                let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                let mgmt = format!("127.0.0.1:{}", free_port());
                let log = fs::File::create(dir.path().join("challtestsrv.log")).unwrap();
                let child = Command::new(bin)
                    .args(["-management", &mgmt, "-dns01", &dns.to_string()])
                    .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                    .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("start pebble-challtestsrv");
                (dns, Some(child))
            }
        };

        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": cert_path,
                "privateKey": key_path,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": !options.eab_keys.is_empty(),
            }
        });
        if let Some(validity) = options.validity {
            config["pebble"]["certificateValidityPeriod"] = validity.as_secs().into();
        }
        if !options.eab_keys.is_empty() {
            let keys: serde_json::Map<String, serde_json::Value> = options
                .eab_keys
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            config["pebble"]["externalAccountMACKeys"] = keys.into();
        }
        let config_path = dir.path().join("pebble-config.json");
        fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

        let log = fs::File::create(dir.path().join("pebble.log")).unwrap();
        let mut command = Command::new(pebble_bin);
        command
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &dns.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if options.va_nosleep {
            command.env("PEBBLE_VA_NOSLEEP", "1");
        }
        if let Some(percent) = options.nonce_reject_percent {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        if options.always_valid {
            command.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        let pebble = command.spawn().expect("start pebble");

        let mut this = Self {
            dir,
            pebble,
            challtestsrv,
            listen,
            management,
            dns,
            http_port,
            tls_port,
            tls_root_pem,
        };
        this.wait_ready().await;
        this
    }

    async fn wait_ready(&mut self) {
        if !wait_for_port(self.listen, Duration::from_secs(20)) {
            panic!(
                "pebble did not start listening on {}; its log:\n{}",
                self.listen,
                self.log()
            );
        }
        for _ in 0..100 {
            if let Ok(response) = https_get(&self.directory_url(), &self.tls_root_pem).await
                && response.status == 200
                && response.body.contains("newOrder")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pebble directory {} never answered; its log:\n{}",
            self.directory_url(),
            self.log()
        );
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    /// PEM of the CA that signed Pebble's own HTTPS certificate: what an ACME client
    /// must trust to talk to it (`--ca-root`).
    pub fn tls_root_pem(&self) -> &str {
        &self.tls_root_pem
    }

    /// The path of [`Self::tls_root_pem`] on disk.
    pub fn tls_root_path(&self) -> PathBuf {
        self.dir.path().join("pebble-tls-root.pem")
    }

    /// PEM of Pebble's issuing root (from its management API): what a TLS client must
    /// trust to accept certificates Pebble issued. It changes on every Pebble start.
    pub async fn issuing_root_pem(&self) -> String {
        let url = format!("https://{}/roots/0", self.management);
        let response = https_get(&url, &self.tls_root_pem)
            .await
            .expect("pebble management API");
        assert_eq!(response.status, 200, "GET {url}: {}", response.body);
        response.body
    }

    /// Base URL of Pebble's management API (`https://127.0.0.1:<port>`; trust
    /// [`Self::tls_root_pem`]), e.g. for `GET /cert-status-by-serial/<hex serial>`.
    pub fn management_url(&self) -> String {
        format!("https://{}", self.management)
    }

    /// Port the VA connects to for HTTP-01 (serve tokens here).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Port the VA connects to for TLS-ALPN-01.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The DNS server Pebble resolves through.
    pub fn dns_server(&self) -> SocketAddr {
        self.dns
    }

    /// A scratch directory that lives as long as this Pebble.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything Pebble logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// How many accounts Pebble registered (its "accounts in memory" log lines).
    pub fn accounts_registered(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("accounts in memory"))
            .count()
    }

    /// How many orders Pebble created (its "Added order" log lines; a `POST /order-plz`
    /// that Pebble rejected with `badNonce` and the client retried is not an order).
    pub fn orders_received(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Added order"))
            .count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.pebble.wait();
        if let Some(child) = self.challtestsrv.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A throwaway CA and a `localhost`/127.0.0.1/::1 certificate for Pebble's listener.
fn write_tls_identity(dir: &Path) -> (String, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "berth test Pebble TLS root");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let root_path = dir.join("pebble-tls-root.pem");
    let cert_path = dir.join("pebble-tls-cert.pem");
    let key_path = dir.join("pebble-tls-key.pem");
    fs::write(&root_path, ca_cert.pem()).unwrap();
    fs::write(&cert_path, leaf.pem()).unwrap();
    fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
    (ca_cert.pem(), cert_path, key_path)
}

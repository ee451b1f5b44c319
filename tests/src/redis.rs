//! A real `redis-server` on a loopback port, for the cluster-mode stores: optionally with a
//! password, and stoppable for outage tests (data survives a restart, as with a Redis that
//! persists).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_for_port};

/// A running `redis-server`, stopped on drop.
pub struct Redis {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    /// TLS only, clients must show a certificate of this CA.
    tls: Option<StoreTls>,
}

/// Files for a store that speaks TLS and checks clients: a throwaway CA, the server's
/// certificate for 127.0.0.1, and a client certificate berth may present.
#[derive(Debug, Clone)]
pub(crate) struct StoreTls {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
}

impl StoreTls {
    /// Generates the CA and both certificates into `dir` (keys 0600).
    pub(crate) fn write(dir: &std::path::Path) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "berth test store CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).expect("leaf");
            (cert.pem(), key.serialize_pem())
        };
        let server = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(vec!["berth".into()], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text).expect("write");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
            path
        };
        Self {
            ca: write("store-ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server.0),
            server_key: write("server-key.pem", &server.1),
            client_cert: write("client.pem", &client.0),
            client_key: write("client-key.pem", &client.1),
        }
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("port", &self.port).finish()
    }
}

impl Redis {
    /// Starts Redis on a free loopback port without a password.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts Redis that requires `password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::launch(Some(password.to_owned()))
    }

    /// Starts Redis that speaks only TLS and refuses clients without a certificate of
    /// its CA (`--tls-auth-clients yes`); see [`client_cert`](Self::client_cert).
    pub fn start_tls_client_auth() -> Self {
        Self::launch_with(None, true)
    }

    fn launch(password: Option<String>) -> Self {
        Self::launch_with(password, false)
    }

    fn launch_with(password: Option<String>, tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-redis-")
            .tempdir()
            .expect("tempdir");
        let tls = tls.then(|| StoreTls::write(dir.path()));
        let mut redis = Self {
            dir,
            child: None,
            port: free_port(),
            password,
            tls,
        };
        redis.restart();
        redis
    }

    /// (Re)starts the server on the same port, with the data written before (every write
    /// is appended and fsynced, so even a killed server keeps it).
    pub fn restart(&mut self) {
        let server = require_tool("redis-server", "redis-server");
        self.stop();
        let mut command = Command::new(server);
        command.args(["--bind", "127.0.0.1"]);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.server_cert)
                .arg("--tls-key-file")
                .arg(&tls.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "yes"]),
        };
        command
            .args(["--save", "", "--protected-mode", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        assert!(
            wait_for_port(self.addr(), Duration::from_secs(10)),
            "redis-server did not listen on {}",
            self.addr()
        );
    }

    /// Stops the server (for outage tests); [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` when started with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA (PEM) of a TLS server, for `--store-ca`.
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca.clone())
    }

    /// A client certificate and its key (0600) the TLS server accepts, for
    /// `--store-cert` and `--store-key`.
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls
            .as_ref()
            .map(|t| (t.client_cert.clone(), t.client_key.clone()))
    }

    /// A file (mode 0600) holding the password, for `--store-password-file`.
    pub fn password_file(&self) -> PathBuf {
        let path = self.dir.path().join("password");
        fs::write(&path, self.password.as_deref().unwrap_or_default()).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

//! A store server the harness runs (Redis, etcd): its scratch directory, its process
//! (killed on stop and on drop) and, for a server that checks its clients, its TLS files.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::wait_for_port;

/// One server process and the directory it keeps its data in.
pub(crate) struct Daemon {
    pub(crate) dir: TempDir,
    child: Option<Child>,
    /// TLS only, clients must show a certificate of this CA.
    pub(crate) tls: Option<StoreTls>,
}

impl Daemon {
    /// A fresh directory named `berth-<name>-…`, with TLS files in it when `tls`.
    pub(crate) fn new(name: &str, tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-{name}-"))
            .tempdir()
            .expect("tempdir");
        let tls = tls.then(|| StoreTls::write(dir.path()));
        Self {
            dir,
            child: None,
            tls,
        }
    }

    /// Stops the running process, if any, starts `command` (output discarded) and waits
    /// up to `timeout` until it listens on `addr`.
    pub(crate) fn spawn(&mut self, command: &mut Command, addr: SocketAddr, timeout: Duration) {
        self.stop();
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
        self.child = Some(child);
        assert!(
            wait_for_port(addr, timeout),
            "{program} did not listen on {addr}"
        );
    }

    /// Kills the process and waits for it.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The CA (PEM) of a TLS server, for `--store-ca`.
    pub(crate) fn ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca.clone())
    }

    /// A client certificate and its key (0600) the TLS server accepts, for
    /// `--store-cert` and `--store-key`.
    pub(crate) fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls
            .as_ref()
            .map(|t| (t.client_cert.clone(), t.client_key.clone()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
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

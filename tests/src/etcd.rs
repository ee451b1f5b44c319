//! A real single-member etcd (`etcd` from Debian's etcd-server) on loopback ports, for the
//! cluster-mode stores; stoppable for outage tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::redis::StoreTls;
use crate::{free_port, require_tool, wait_for_port};

/// A running etcd, stopped on drop.
pub struct Etcd {
    dir: TempDir,
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    /// TLS only for clients, who must show a certificate of this CA.
    tls: Option<StoreTls>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("client_port", &self.client_port)
            .finish()
    }
}

impl Etcd {
    /// Starts etcd on free loopback ports.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// Starts etcd whose clients must speak TLS and show a certificate of its CA
    /// (`--client-cert-auth`); see [`client_cert`](Self::client_cert).
    pub fn start_tls_client_auth() -> Self {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd-")
            .tempdir()
            .expect("tempdir");
        let tls = tls.then(|| StoreTls::write(dir.path()));
        let mut etcd = Self {
            dir,
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            tls,
        };
        etcd.restart();
        etcd
    }

    /// (Re)starts etcd on the same ports and data directory (data is kept).
    pub fn restart(&mut self) {
        let server = require_tool("etcd", "etcd-server");
        self.stop();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(server);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--name", "berth-test"])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("berth-test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        assert!(
            wait_for_port(self.addr(), Duration::from_secs(20)),
            "etcd did not listen on {}",
            self.addr()
        );
    }

    /// Stops etcd (for outage tests); [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// `etcd://127.0.0.1:<port>` (`etcds://` when started with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "etcds" } else { "etcd" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The CA (PEM) of a TLS etcd, for `--store-ca`.
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca.clone())
    }

    /// A client certificate and its key (0600) the TLS etcd accepts, for `--store-cert`
    /// and `--store-key`.
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls
            .as_ref()
            .map(|t| (t.client_cert.clone(), t.client_key.clone()))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

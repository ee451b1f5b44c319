//! A real single-member etcd (`etcd` from Debian's etcd-server) on loopback ports, for the
//! cluster-mode stores; stoppable for outage tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::{free_port, require_tool};

/// A running etcd, stopped on drop.
pub struct Etcd {
    daemon: Daemon,
    client_port: u16,
    peer_port: u16,
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
        let mut etcd = Self {
            daemon: Daemon::new("etcd", tls),
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.restart();
        etcd
    }

    /// (Re)starts etcd on the same ports and data directory (data is kept).
    pub fn restart(&mut self) {
        let scheme = if self.daemon.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(require_tool("etcd", "etcd-server"));
        if let Some(tls) = &self.daemon.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        command
            .arg("--data-dir")
            .arg(self.daemon.dir.path().join("data"))
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
            .args(["--initial-cluster", &format!("berth-test={peer}")]);
        let addr = self.addr();
        self.daemon
            .spawn(&mut command, addr, Duration::from_secs(20));
    }

    /// Stops etcd (for outage tests); [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// `etcd://127.0.0.1:<port>` (`etcds://` when started with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.daemon.tls.is_some() {
            "etcds"
        } else {
            "etcd"
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The CA (PEM) of a TLS etcd, for `--store-ca`.
    pub fn ca(&self) -> Option<PathBuf> {
        self.daemon.ca()
    }

    /// A client certificate and its key (0600) the TLS etcd accepts, for `--store-cert`
    /// and `--store-key`.
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.daemon.client_cert()
    }
}

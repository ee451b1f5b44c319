//! A real single-member etcd (`etcd` from Debian's etcd-server) on loopback ports, for the
//! cluster-mode stores; stoppable for outage tests.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_for_port};

/// A running etcd, stopped on drop.
pub struct Etcd {
    dir: TempDir,
    child: Option<Child>,
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
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd-")
            .tempdir()
            .expect("tempdir");
        let mut etcd = Self {
            dir,
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.restart();
        etcd
    }

    /// (Re)starts etcd on the same ports and data directory (data is kept).
    pub fn restart(&mut self) {
        let server = require_tool("etcd", "etcd-server");
        self.stop();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(server)
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

    /// `etcd://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

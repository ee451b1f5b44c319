//! A real `redis-server` on a loopback port, for the cluster-mode stores: optionally with a
//! password, and stoppable for outage tests (data survives a restart, as with a Redis that
//! persists).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::{free_port, require_tool};

/// A running `redis-server`, stopped on drop.
pub struct Redis {
    daemon: Daemon,
    port: u16,
    password: Option<String>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("port", &self.port).finish()
    }
}

impl Redis {
    /// Starts Redis on a free loopback port without a password.
    pub fn start() -> Self {
        Self::launch(None, false)
    }

    /// Starts Redis that requires `password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::launch(Some(password.to_owned()), false)
    }

    /// Starts Redis that speaks only TLS and refuses clients without a certificate of
    /// its CA (`--tls-auth-clients yes`); see [`client_cert`](Self::client_cert).
    pub fn start_tls_client_auth() -> Self {
        Self::launch(None, true)
    }

    fn launch(password: Option<String>, tls: bool) -> Self {
        let mut redis = Self {
            daemon: Daemon::new("redis", tls),
            port: free_port(),
            password,
        };
        redis.restart();
        redis
    }

    /// (Re)starts the server on the same port, with the data written before (every write
    /// is appended and fsynced, so even a killed server keeps it).
    pub fn restart(&mut self) {
        let mut command = Command::new(require_tool("redis-server", "redis-server"));
        command.args(["--bind", "127.0.0.1"]);
        match &self.daemon.tls {
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
            .arg(self.daemon.dir.path());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let addr = self.addr();
        self.daemon
            .spawn(&mut command, addr, Duration::from_secs(10));
    }

    /// Stops the server (for outage tests); [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` when started with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.daemon.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA (PEM) of a TLS server, for `--store-ca`.
    pub fn ca(&self) -> Option<PathBuf> {
        self.daemon.ca()
    }

    /// A client certificate and its key (0600) the TLS server accepts, for
    /// `--store-cert` and `--store-key`.
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.daemon.client_cert()
    }

    /// A file (mode 0600) holding the password, for `--store-password-file`.
    pub fn password_file(&self) -> PathBuf {
        let path = self.daemon.dir.path().join("password");
        fs::write(&path, self.password.as_deref().unwrap_or_default()).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }
}

//! A real `redis-server` on a loopback port, for the cluster-mode stores: started with no
//! persistence, optionally with a password, and stoppable for outage tests.

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

    fn launch(password: Option<String>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-redis-")
            .tempdir()
            .expect("tempdir");
        let mut redis = Self {
            dir,
            child: None,
            port: free_port(),
            password,
        };
        redis.restart();
        redis
    }

    /// (Re)starts the server on the same port; data is not kept across restarts.
    pub fn restart(&mut self) {
        let server = require_tool("redis-server", "redis-server");
        self.stop();
        let mut command = Command::new(server);
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
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

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
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

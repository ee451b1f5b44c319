//! Finding test tools and loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Finds `tool` on PATH, or panics with the Debian package that provides it. Under
/// `CI=true` and elsewhere alike: a test that needs a tool never passes without it.
pub fn require_tool(tool: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    panic!(
        "`{tool}` is not on PATH{}; install it with `apt-get install -y {debian_package}` (or run .ci/run, which installs every test dependency)",
        if ci { " on CI" } else { "" }
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until something accepts TCP connections on `addr`, up to `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

//! Running the real `berth` binary as a sidecar in tests: a tiny upstream app, the
//! process with its output captured to files, and real clients (curl, openssl).

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{Pebble, free_port, require_tool};

/// The `berth` binary under test.
pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// A tiny HTTP/1.1 app on 127.0.0.1: answers `hello from upstream <path>`; paths under
/// `/slow` answer after 1.5 s (for drain tests). Runs on a thread until the test ends.
pub fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    addr
}

/// Reads a request's head (up to the blank line) from `stream`, waiting at most 10 s
/// for each byte; `None` when the client stops or goes silent first.
pub fn read_request_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

fn answer(mut stream: TcpStream) {
    let Some(head) = read_request_head(&mut stream) else {
        return;
    };
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if path.starts_with("/slow") {
        std::thread::sleep(Duration::from_millis(1500));
    }
    let body = format!("hello from upstream {path}");
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A running `berth run`, killed on drop; stdout and stderr go to files.
pub struct Sidecar {
    pub child: Child,
    pub tls_port: u16,
    pub admin: SocketAddr,
    pub dir: PathBuf,
}

impl Sidecar {
    /// Starts `berth run` for `names` (`-d` each) in front of `upstream`, agreeing to
    /// Pebble's terms, with `extra` flags; returns once it is ready (`/readyz` 200).
    pub async fn serving(
        pebble: &Pebble,
        dir: &Path,
        upstream: SocketAddr,
        names: &[&str],
        extra: &[&str],
    ) -> Self {
        let upstream = format!("http://{upstream}");
        let mut args: Vec<&str> = names.iter().flat_map(|name| ["-d", name]).collect();
        args.extend(["--upstream", &upstream, "--agree-tos"]);
        args.extend(extra);
        let sidecar = Self::start(pebble, dir, &args);
        sidecar.wait_ready(Duration::from_secs(60)).await;
        sidecar
    }

    /// Starts `berth run` against `pebble` with the common flags plus `extra`.
    pub fn start(pebble: &Pebble, dir: &Path, extra: &[&str]) -> Self {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Self::start_with_admin(pebble, dir, admin, extra)
    }

    /// As [`Sidecar::start`], with the admin server on `admin`.
    pub fn start_with_admin(
        pebble: &Pebble,
        dir: &Path,
        admin: SocketAddr,
        extra: &[&str],
    ) -> Self {
        let tls_port = free_port();
        let stdout = std::fs::File::create(dir.join("berth.stdout")).unwrap();
        let stderr = std::fs::File::create(dir.join("berth.stderr")).unwrap();
        let child = Command::new(berth_bin())
            .arg("run")
            .args(["--ca", &pebble.directory_url()])
            .args(["--ca-root", &pebble.tls_root_path().display().to_string()])
            .args(["--store", &dir.join("acme.json").display().to_string()])
            .args(["--http-addr", &format!("127.0.0.1:{}", pebble.http_port())])
            .args(["--tls-addr", &format!("127.0.0.1:{tls_port}")])
            .args(["--admin-addr", &admin.to_string()])
            .args(extra)
            .env_remove("BERTH_LOG_FORMAT")
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self {
            child,
            tls_port,
            admin,
            dir: dir.to_path_buf(),
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("berth.stdout"), read("berth.stderr"))
    }

    /// GET on the admin server: (status, body).
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://{}{path}", self.admin);
        berth_tests::https_get(&url, "")
            .await
            .ok()
            .map(|r| (r.status, r.body))
    }

    /// One raw HTTP/1.1 request to the admin server: see [`admin_request`].
    pub fn admin_raw(&self, head: &str) -> (u16, String) {
        admin_request(self.admin.port(), head)
    }

    /// Waits for `/readyz` to answer 200; returns every status seen on the way.
    pub async fn wait_ready(&self, limit: Duration) -> Vec<u16> {
        let mut seen = Vec::new();
        let ready = poll(limit, Duration::from_millis(20), async || {
            let (status, _) = self.admin_get("/readyz").await?;
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            (status == 200).then_some(())
        })
        .await;
        if ready.is_none() {
            panic!("not ready after {limit:?}: saw {seen:?}\n{}", self.output());
        }
        seen
    }

    /// Sends a signal by name (TERM, HUP).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("berth did not exit within {limit:?}\n{}", self.output());
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 request to the admin server on 127.0.0.1:`port`, `head` being the
/// request line and headers without the final blank line: (status, body).
pub fn admin_request(port: u16, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{head}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

/// `curl` over HTTPS to `name` at 127.0.0.1:`port`, trusting `root`: (status, body).
pub fn curl(name: &str, port: u16, path: &str, root: &Path) -> (u16, String) {
    require_tool("curl", "curl");
    let output = curl_command(name, port, path, root).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The curl command behind [`curl`], for running it in the background.
pub fn curl_command(name: &str, port: u16, path: &str, root: &Path) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "15", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .arg(format!("https://{name}:{port}{path}"))
        .args(["-w", "\n%{http_code}"]);
    command
}

/// The serial number of the certificate served for `name` (openssl s_client).
pub fn served_serial(name: &str, port: u16) -> String {
    require_tool("openssl", "openssl");
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let output = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Pebble's issuing root, written to `dir` for curl.
pub async fn issuing_root(pebble: &Pebble, dir: &Path) -> PathBuf {
    let path = dir.join("issuing-root.pem");
    std::fs::write(&path, pebble.issuing_root_pem().await).unwrap();
    path
}

/// Asks `found` every `every` until it returns something or `limit` passes: every wait
/// of these tests is one of these.
pub async fn poll<T>(
    limit: Duration,
    every: Duration,
    mut found: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = found().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll(limit, Duration::from_millis(100), async || {
        check().then_some(())
    })
    .await
    .is_some()
}

/// The value of an unlabelled or labelled Prometheus sample line starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A `berth` command that has exited: its exit code and what it printed.
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `berth args` with no `BERTH_*` setting inherited from the test's environment and
/// text logs, ready to spawn with piped output (see [`finish`]).
pub fn berth_command(args: &[&str]) -> Command {
    let mut command = Command::new(berth_bin());
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BERTH_") {
            command.env_remove(name);
        }
    }
    command
        .env("BERTH_LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for a command spawned from [`berth_command`]; kills it and fails the test if
/// it is still running after `limit`.
pub fn finish(mut child: Child, limit: Duration) -> Finished {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "berth did not exit within {limit:?}\nstdout: {}\nstderr: {}",
                stdout.join().unwrap(),
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `berth args` to completion (at most two minutes).
pub fn berth(args: &[&str]) -> Finished {
    finish(
        berth_command(args).spawn().unwrap(),
        Duration::from_secs(120),
    )
}

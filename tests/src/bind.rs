//! A real BIND 9 (`named`) on a loopback port, authoritative for test zones that take
//! RFC 2136 updates signed with TSIG keys made by `tsig-keygen` — the narrow
//! `update-policy` setup the README recommends, exercised for real.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_for_port};

/// A zone BIND serves.
#[derive(Debug, Clone)]
pub struct BindZone {
    /// The zone name, without the trailing dot (`example.test`).
    pub name: String,
    /// Extra zone-file lines, relative to the origin (`www IN A 127.0.0.1`). SOA, NS
    /// (`ns1.<zone>`) and the nameserver's A record (127.0.0.1) are added.
    pub records: Vec<String>,
    /// `update-policy` rules, e.g. `grant berth-acme. name _acme-challenge.example.test. TXT`.
    pub update_policy: Vec<String>,
}

/// A running `named`, stopped on drop.
pub struct Bind {
    dir: TempDir,
    child: Option<Child>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind").field("addr", &self.addr).finish()
    }
}

impl Bind {
    /// Makes a TSIG key for each name in `keys` (hmac-sha256, with `tsig-keygen`), writes
    /// the zones and starts `named` on a free loopback port.
    pub fn start(zones: &[BindZone], keys: &[&str]) -> Self {
        let named = require_tool("named", "bind9");
        let keygen = require_tool("tsig-keygen", "bind9");
        require_tool("dig", "bind9-dnsutils");
        let dir = tempfile::Builder::new()
            .prefix("berth-bind-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().display().to_string();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

        let mut keys_conf = String::new();
        for key in keys {
            let out = Command::new(&keygen)
                .args(["-a", "hmac-sha256", key])
                .output()
                .expect("run tsig-keygen");
            assert!(out.status.success(), "tsig-keygen failed: {out:?}");
            let block = String::from_utf8(out.stdout).unwrap();
            let path = dir.path().join(format!("{key}.key"));
            fs::write(&path, &block).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            keys_conf.push_str(&block);
        }
        fs::write(dir.path().join("keys.conf"), keys_conf).unwrap();

        let mut conf = format!(
            r#"options {{
    directory "{root}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    // Recursion on for loopback clients only, so that like a real resolver BIND
    // follows a CNAME from one of its zones into another (Pebble's VA relies on that
    // for CNAME-delegated challenges). Nothing outside these zones is ever asked.
    recursion yes;
    allow-recursion {{ 127.0.0.1; }};
    dnssec-validation no;
    notify no;
    pid-file "{root}/named.pid";
    session-keyfile "{root}/session.key";
    managed-keys-directory "{root}";
}};
controls {{ }};
include "{root}/keys.conf";
"#
        );
        for zone in zones {
            let mut db = format!(
                "$TTL 60\n@ IN SOA ns1.{z}. hostmaster.{z}. 1 3600 600 86400 60\n@ IN NS ns1.{z}.\nns1 IN A 127.0.0.1\n",
                z = zone.name
            );
            for line in &zone.records {
                writeln!(db, "{line}").unwrap();
            }
            fs::write(dir.path().join(format!("{}.db", zone.name)), db).unwrap();
            let policy: String = zone
                .update_policy
                .iter()
                .map(|rule| format!(" {rule};"))
                .collect();
            let update = if policy.is_empty() {
                String::new()
            } else {
                format!(" update-policy {{{policy} }};")
            };
            writeln!(
                conf,
                r#"zone "{name}" {{ type primary; file "{root}/{name}.db";{update} }};"#,
                name = zone.name
            )
            .unwrap();
        }
        let conf_path = dir.path().join("named.conf");
        fs::write(&conf_path, conf).unwrap();

        let log = fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new(named)
            .args(["-g", "-4", "-c"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start named");
        let mut bind = Self {
            dir,
            child: Some(child),
            addr,
        };
        // The port opens before the zones are loaded, and a query in between gets
        // SERVFAIL: wait for named's "running", which it logs once every zone is loaded.
        if !wait_for_port(addr, Duration::from_secs(20)) || !bind.wait_running() {
            let log = bind.log();
            bind.stop();
            panic!("named did not start on {addr}:\n{log}");
        }
        bind
    }

    /// Whether named logged that it is running (all zones loaded) within 20 s.
    fn wait_running(&self) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if self.log().lines().any(|line| line.ends_with(" running")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Where BIND answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key file `tsig-keygen` wrote for `key` (mode 0600): what
    /// `--dns-tsig-secret-file` points at.
    pub fn key_file(&self, key: &str) -> PathBuf {
        self.dir.path().join(format!("{key}.key"))
    }

    /// The TXT values at `name`, asked with `dig` (an independent client).
    pub fn txt(&self, name: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([
                &format!("@{}", self.addr.ip()),
                "-p",
                &self.addr.port().to_string(),
                "+short",
                "+norecurse",
                "TXT",
                name,
            ])
            .output()
            .expect("run dig");
        assert!(out.status.success(), "dig failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_matches('"').to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Adds a TXT record with `nsupdate -k`, as an operator or another tool would.
    pub fn nsupdate_add_txt(&self, key: &str, zone: &str, name: &str, value: &str) {
        let script = format!(
            "server {} {}\nzone {zone}\nupdate add {name} 60 TXT \"{value}\"\nsend\n",
            self.addr.ip(),
            self.addr.port()
        );
        let mut child = Command::new(require_tool("nsupdate", "bind9-dnsutils"))
            .arg("-k")
            .arg(self.key_file(key))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nsupdate");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "nsupdate failed: {out:?}");
    }

    /// What `named` logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// Stops `named` (for "server down" tests); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.stop();
    }
}

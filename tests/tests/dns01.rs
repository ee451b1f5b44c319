//! DNS-01 end to end against a real BIND 9 and a real Pebble whose VA resolves through
//! that BIND: RFC 2136 + TSIG with a key `update-policy` limits to `_acme-challenge` TXT
//! names, wildcard + apex in one order, CNAME delegation, the exec hook, and every
//! failure leaving nothing behind in the zone and a ledger entry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::Solver;
use berth_acme_core::challenge::dns01::{
    Dns01Config, Dns01Solver, DnsError, DnsProvider, ExecProvider, Rfc2136Provider, TsigKey,
    journal_path,
};
use berth_acme_core::{
    CertManager, ChallengeKind, DomainSet, Error, Issuer, KeyType, ManagedCert, ManagerConfig,
    Setting,
};
use berth_secrets::Secret;
use berth_tests::{Bind, BindZone, Pebble, PebbleOptions, file_store, read_state};
use issue_support::{bounded, order, pebble_account, pebble_config};

const KEY: &str = "berth-acme";

/// `example.test`, where the key may only touch the TXT records of the listed
/// `_acme-challenge` names, and `acme.test`, a throwaway zone for CNAME delegation.
fn zones() -> Vec<BindZone> {
    vec![
        BindZone {
            name: "example.test".into(),
            records: vec![
                "www IN A 127.0.0.1".into(),
                "_acme-challenge.deleg IN CNAME deleg.acme.test.".into(),
            ],
            update_policy: vec![
                format!("grant {KEY}. name _acme-challenge.example.test. TXT"),
                format!("grant {KEY}. name _acme-challenge.www.example.test. TXT"),
            ],
        },
        BindZone {
            name: "acme.test".into(),
            records: vec![],
            update_policy: vec![format!("grant {KEY}. name deleg.acme.test. TXT")],
        },
    ]
}

struct Setup {
    bind: Bind,
    pebble: Pebble,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let bind = Bind::start(&zones(), &[KEY]);
    let pebble = Pebble::start_with(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::default()
    })
    .await;
    Setup {
        bind,
        pebble,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn key(&self) -> TsigKey {
        let file = std::fs::read_to_string(self.bind.key_file(KEY)).unwrap();
        TsigKey::parse(None, None, &Secret::new(file)).unwrap()
    }

    fn rfc2136(&self) -> Arc<dyn DnsProvider> {
        Arc::new(Rfc2136Provider::new(
            self.bind.addr(),
            self.key(),
            Duration::from_secs(3),
        ))
    }

    fn config(&self) -> Dns01Config {
        Dns01Config {
            resolver: Some(self.bind.addr()),
            nameserver_port: self.bind.addr().port(),
            propagation_interval: Duration::from_millis(200),
            propagation_timeout: Duration::from_secs(20),
            journal: Some(journal_path(&self.store())),
            ..Dns01Config::default()
        }
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("acme.json")
    }

    fn solver(&self, provider: Arc<dyn DnsProvider>, config: Dns01Config) -> Arc<dyn Solver> {
        Arc::new(Dns01Solver::new(provider, config))
    }

    /// Orders `names` through a CertManager (so failures reach the ledger).
    async fn manager_order(
        &self,
        names: &[&str],
        solver: Arc<dyn Solver>,
    ) -> Result<berth_acme_core::Outcome, Error> {
        self.manager_order_forced(names, solver, false).await
    }

    /// As [`Setup::manager_order`]; `force` orders even inside a backoff window.
    async fn manager_order_forced(
        &self,
        names: &[&str],
        solver: Arc<dyn Solver>,
        force: bool,
    ) -> Result<berth_acme_core::Outcome, Error> {
        let cert = ManagedCert::new(
            DomainSet::parse(names).unwrap(),
            ChallengeKind::Dns01,
            KeyType::Ec256,
        )
        .unwrap();
        let manager = CertManager::new(
            ManagerConfig::new(file_store(&self.store()).await, pebble_config(&self.pebble)),
            vec![cert.clone()],
            vec![solver],
        );
        manager.ensure(&cert, force).await
    }

    async fn ledger_error(&self) -> String {
        let state = read_state(&self.store()).await;
        let entry = state.ledger().next().expect("a ledger entry");
        assert_eq!(entry.last_error_type, "dns");
        assert_eq!(entry.consecutive_failures, 1);
        entry.last_error.clone()
    }

    fn assert_no_challenge_records(&self) {
        for name in [
            "_acme-challenge.example.test",
            "_acme-challenge.www.example.test",
            "deleg.acme.test",
        ] {
            assert_eq!(
                self.bind.txt(name),
                Vec::<String>::new(),
                "{name} left behind"
            );
        }
    }
}

#[tokio::test]
async fn wildcard_and_apex_in_one_order_through_rfc2136() {
    bounded(async {
        let s = setup().await;
        let issuer = Issuer::new(
            pebble_account(&s.pebble).await,
            s.solver(s.rfc2136(), s.config()),
        );
        let cert = issuer
            .issue(&order(&["example.test", "*.example.test"]))
            .await
            .unwrap();
        let names = &cert.info().domains;
        assert!(names.to_string().contains("*.example.test"), "{names}");
        assert!(names.to_string().contains("example.test"), "{names}");
        s.assert_no_challenge_records();
        assert!(
            !journal_path(&s.store()).exists(),
            "the journal is empty once every record is removed"
        );
        assert!(
            s.bind.log().contains("_acme-challenge.example.test"),
            "BIND saw the updates"
        );
    })
    .await;
}

#[tokio::test]
async fn cname_delegation_writes_in_the_throwaway_zone() {
    bounded(async {
        let s = setup().await;
        // The key has no rights on _acme-challenge.deleg.example.test itself: only the
        // CNAME target in acme.test is writable.
        let issuer = Issuer::new(
            pebble_account(&s.pebble).await,
            s.solver(s.rfc2136(), s.config()),
        );
        let cert = issuer.issue(&order(&["deleg.example.test"])).await.unwrap();
        assert_eq!(cert.info().domains.to_string(), "deleg.example.test");
        assert!(
            s.bind.log().contains("deleg.acme.test"),
            "the update went to the delegated name"
        );
        s.assert_no_challenge_records();
    })
    .await;
}

#[tokio::test]
async fn exec_hook_publishes_through_nsupdate() {
    bounded(async {
        let s = setup().await;
        // A lego-style hook script that uses nsupdate with the same narrow key.
        let hook = s.dir.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nset -e\ncase \"$1\" in present) op=add;; cleanup) op=delete;; *) exit 2;; esac\nprintf 'server {ip} {port}\\nzone %s\\nupdate %s %s 60 TXT \"%s\"\\nsend\\n' \"$BERTH_DNS_HOOK_ZONE\" \"$op\" \"$2\" \"$3\" | nsupdate -k {key}\n",
                ip = s.bind.addr().ip(),
                port = s.bind.addr().port(),
                key = s.bind.key_file(KEY).display(),
            ),
        )
        .unwrap();
        make_executable(&hook);
        let provider = Arc::new(ExecProvider::new(&hook, Duration::from_secs(20)));
        let issuer = Issuer::new(
            pebble_account(&s.pebble).await,
            s.solver(provider, s.config()),
        );
        let cert = issuer.issue(&order(&["www.example.test"])).await.unwrap();
        assert_eq!(cert.info().domains.to_string(), "www.example.test");
        s.assert_no_challenge_records();
    })
    .await;
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A failure is an `Error::Dns` naming the provider and the record, recorded in the
/// ledger, with nothing left in the zone.
async fn assert_dns_failure(
    s: &Setup,
    result: Result<berth_acme_core::Outcome, Error>,
) -> DnsError {
    let err = match result {
        Err(Error::Dns(e)) => e,
        other => panic!("expected a DNS error, got {other:?}"),
    };
    let ledger = s.ledger_error().await;
    assert_eq!(ledger, err.to_string(), "the ledger holds the error");
    s.assert_no_challenge_records();
    err
}

#[tokio::test]
async fn wrong_tsig_key_is_named_and_leaves_nothing() {
    bounded(async {
        let s = setup().await;
        // Right name, wrong secret.
        let wrong = TsigKey::parse(
            Some(KEY),
            None,
            &Secret::new("c2VjcmV0LXRoYXQtYmluZC1kb2VzLW5vdC1rbm93".into()),
        )
        .unwrap();
        let provider = Arc::new(Rfc2136Provider::new(
            s.bind.addr(),
            wrong,
            Duration::from_secs(3),
        ));
        let result = s
            .manager_order(&["example.test"], s.solver(provider, s.config()))
            .await;
        let err = assert_dns_failure(&s, result).await.to_string();
        assert!(
            err.contains(&format!("rfc2136 ({})", s.bind.addr())),
            "{err}"
        );
        assert!(err.contains("_acme-challenge.example.test"), "{err}");
        assert!(err.contains(&format!("rejected TSIG key {KEY}")), "{err}");
        assert!(!err.contains("c2VjcmV0"), "the secret never appears: {err}");
        assert!(
            !journal_path(&s.store()).exists(),
            "a refused addition is not kept for cleanup"
        );
    })
    .await;
}

#[tokio::test]
async fn update_refused_by_policy_points_at_update_policy() {
    bounded(async {
        let s = setup().await;
        // The key may not write _acme-challenge.other.example.test.
        let result = s
            .manager_order(&["other.example.test"], s.solver(s.rfc2136(), s.config()))
            .await;
        let err = assert_dns_failure(&s, result).await.to_string();
        assert!(
            err.contains("REFUSED") && err.contains("update-policy"),
            "{err}"
        );
        assert!(err.contains("_acme-challenge.other.example.test"), "{err}");
        assert_eq!(
            s.bind.txt("_acme-challenge.other.example.test"),
            Vec::<String>::new()
        );
    })
    .await;
}

#[tokio::test]
async fn update_server_down_is_named() {
    bounded(async {
        let s = setup().await;
        let dead: std::net::SocketAddr = format!("127.0.0.1:{}", berth_tests::free_port())
            .parse()
            .unwrap();
        let provider = Arc::new(Rfc2136Provider::new(dead, s.key(), Duration::from_secs(1)));
        let result = s
            .manager_order(&["example.test"], s.solver(provider, s.config()))
            .await;
        let err = assert_dns_failure(&s, result).await.to_string();
        assert!(err.contains(&format!("rfc2136 ({dead})")), "{err}");
        assert!(err.contains("_acme-challenge.example.test"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn dns_server_down_fails_the_lookup_with_the_server_named() {
    bounded(async {
        let mut s = setup().await;
        let config = s.config();
        let provider = s.rfc2136();
        s.bind.stop();
        let result = s
            .manager_order(&["example.test"], s.solver(provider, config))
            .await;
        let err = match result {
            Err(Error::Dns(e)) => e.to_string(),
            other => panic!("expected a DNS error, got {other:?}"),
        };
        assert!(err.contains(&s.bind.addr().to_string()), "{err}");
        assert!(err.contains("_acme-challenge.example.test"), "{err}");
        assert!(
            s.ledger_error()
                .await
                .contains("_acme-challenge.example.test")
        );
    })
    .await;
}

#[tokio::test]
async fn propagation_timeout_names_the_lagging_server_and_cleans_up() {
    bounded(async {
        let s = setup().await;
        // A "secondary" that never receives the update: same zone, static.
        let secondary = Bind::start(&zones()[..1], &[]);
        let config = Dns01Config {
            propagation_servers: vec![s.bind.addr(), secondary.addr()],
            propagation_timeout: Duration::from_secs(2),
            ..s.config()
        };
        let result = s
            .manager_order(&["example.test"], s.solver(s.rfc2136(), config))
            .await;
        let err = assert_dns_failure(&s, result).await;
        let DnsError::Propagation {
            record, missing, ..
        } = &err
        else {
            panic!("expected a propagation error, got {err}");
        };
        assert_eq!(record, "_acme-challenge.example.test.");
        assert_eq!(missing, &vec![secondary.addr().to_string()]);
        assert!(
            err.to_string()
                .contains("allow a longer propagation timeout"),
            "{err}"
        );
        assert_eq!(err.setting(), Some(Setting::DnsPropagationTimeout));
        assert_eq!(s.pebble.orders_received(), 1);
    })
    .await;
}

#[tokio::test]
async fn exec_hook_that_fails_or_hangs_is_named_with_its_exit_status_never_its_stderr() {
    bounded(async {
        let s = setup().await;
        let failing = s.dir.path().join("failing.sh");
        std::fs::write(
            &failing,
            "#!/bin/sh\necho \"zone API said: token PLANTED-HOOK-SECRET expired\" >&2\nexit 4\n",
        )
        .unwrap();
        make_executable(&failing);
        let result = s
            .manager_order(
                &["example.test"],
                s.solver(
                    Arc::new(ExecProvider::new(&failing, Duration::from_secs(10))),
                    s.config(),
                ),
            )
            .await;
        let err = assert_dns_failure(&s, result).await.to_string();
        assert!(
            err.contains(&format!("exec ({})", failing.display())),
            "{err}"
        );
        // The hook's stderr may hold its credentials; the ledger (asserted equal to `err`
        // above, and so /api/certs and the status page) gets the exit status only.
        assert!(err.contains("exit status: 4"), "{err}");
        assert!(!err.contains("PLANTED-HOOK-SECRET"), "{err}");
        assert!(err.contains("_acme-challenge.example.test"), "{err}");

        let hanging = s.dir.path().join("hanging.sh");
        std::fs::write(&hanging, "#!/bin/sh\nexec sleep 60\n").unwrap();
        make_executable(&hanging);
        let solver = s.solver(
            Arc::new(ExecProvider::new(&hanging, Duration::from_millis(500))),
            s.config(),
        );
        // Forced: the first failure put the set in backoff.
        let err = s
            .manager_order_forced(&["example.test"], solver, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not finish") && err.contains("killed"),
            "{err}"
        );
        assert!(
            err.contains(&format!("exec ({})", hanging.display())),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_configured_zone_overrides_detection_and_a_wrong_one_is_named() {
    bounded(async {
        let s = setup().await;
        let wrong = Dns01Config {
            zone: Some("acme.test".into()),
            ..s.config()
        };
        let result = s
            .manager_order(&["www.example.test"], s.solver(s.rfc2136(), wrong))
            .await;
        let err = assert_dns_failure(&s, result).await;
        assert_eq!(err.setting(), Some(Setting::DnsZone));
        let err = err.to_string();
        assert!(
            err.contains("not inside the configured zone acme.test"),
            "{err}"
        );

        let right = Dns01Config {
            zone: Some("example.test".into()),
            ..s.config()
        };
        let issuer = Issuer::new(
            pebble_account(&s.pebble).await,
            s.solver(s.rfc2136(), right),
        );
        let cert = issuer.issue(&order(&["www.example.test"])).await.unwrap();
        assert_eq!(cert.info().domains.to_string(), "www.example.test");
        s.assert_no_challenge_records();
    })
    .await;
}

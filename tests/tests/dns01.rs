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
use berth_acme_core::store::{State, state_path};
use berth_acme_core::{
    CertManager, ChallengeKind, DomainSet, Error, Issuer, KeyType, ManagedCert, ManagerConfig,
};
use berth_secrets::Secret;
use berth_tests::{Bind, BindZone, Pebble, PebbleOptions};
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
        let cert = ManagedCert::new(
            DomainSet::parse(names).unwrap(),
            ChallengeKind::Dns01,
            KeyType::Ec256,
        )
        .unwrap();
        let manager = CertManager::new(
            ManagerConfig::new(self.store(), pebble_config(&self.pebble)),
            vec![cert.clone()],
            vec![solver],
        );
        manager.ensure(&cert, false).await
    }

    fn ledger_error(&self) -> String {
        let state = State::load(&state_path(&self.store())).unwrap();
        let entry = state.ledger.values().next().expect("a ledger entry");
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

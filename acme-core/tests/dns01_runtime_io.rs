//! The DNS-01 solver's record journal is read and written off its runtime: `berth run`
//! serves the admin API on the same single-threaded runtime as the manager's orders, so a
//! slow disk under the journal must not stall it.
//!
//! The journal refuses FIFOs and opens without blocking, so no file can be made slow from
//! outside; instead the test watches which thread the journal's own log lines come from.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use berth_acme_core::challenge::dns01::{Dns01Config, Dns01Solver, ExecProvider};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Remembers the thread of every event logged from the journal's module.
struct ThreadRecorder {
    journal_events: Arc<Mutex<Vec<ThreadId>>>,
    next_span: AtomicU64,
}

impl Subscriber for ThreadRecorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target().ends_with("dns01::journal") {
            self.journal_events
                .lock()
                .unwrap()
                .push(std::thread::current().id());
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn the_record_journal_is_read_off_the_runtime() {
    let journal_events = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(ThreadRecorder {
        journal_events: Arc::clone(&journal_events),
        next_span: AtomicU64::new(0),
    })
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("acme.json.berth-dns");
    // Unreadable as JSON: reading it logs a warning from wherever the read runs.
    std::fs::write(&journal, "{not json").unwrap();
    std::fs::set_permissions(
        &journal,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let solver = Dns01Solver::new(
        Arc::new(ExecProvider::new("/bin/true", Duration::from_secs(5))),
        Dns01Config {
            resolver: Some("127.0.0.1:9".parse().unwrap()),
            journal: Some(journal.clone()),
            ..Dns01Config::default()
        },
    );

    // `block_on` on a current-thread runtime runs the solver on this very thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(solver.remove_leftovers());
    let runtime_thread = std::thread::current().id();

    let threads = journal_events.lock().unwrap().clone();
    assert!(
        !threads.is_empty(),
        "reading an unreadable journal logged nothing"
    );
    assert!(
        threads.iter().all(|t| *t != runtime_thread),
        "the journal was read on the runtime's thread"
    );
    // Behaviour is unchanged: an unreadable journal is left for a person to look at.
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), "{not json");
}

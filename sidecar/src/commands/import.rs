//! `berth import`: certificates from Traefik (v1, v2/v3), certbot or lego into berth's
//! store, through the store API (any backend). The source is only read; with
//! `--dry-run` the store is only read too.

use berth_acme_core::due_at;
use berth_acme_core::import::{self, Found, ImportOutcome, Scan};

use super::{open_store, rfc3339};
use crate::cli::ImportArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: ImportArgs) -> Result<(), Failure> {
    // The source is read before the store is opened: a wrong path costs nothing.
    let scan = import::scan(&args.source).map_err(Failure::usage)?;
    let done = if args.dry_run {
        let store = super::open_read_only(&args.store).await?;
        import::preview(store.as_ref(), &scan.found).await
    } else {
        let store = open_store(&args.store).await?;
        import::import(store.as_ref(), &scan.found).await
    }
    .map_err(|e| Failure::runtime(berth_acme_core::Error::from(e)))?;
    if args.output.json {
        print_json(&args, &scan, &done);
    } else {
        print_text(&args, &scan, &done);
    }
    if scan.found.is_empty() && !scan.skipped.is_empty() {
        return Err(Failure::runtime(format!(
            "nothing imported from {}: every certificate was skipped (reasons above)",
            args.source.display()
        )));
    }
    Ok(())
}

/// What happened (or, with `--dry-run`, would happen) to one certificate.
fn status(outcome: &ImportOutcome, dry_run: bool) -> &'static str {
    match (outcome, dry_run) {
        (ImportOutcome::Imported, false) => "imported",
        (ImportOutcome::Imported, true) => "would-import",
        (ImportOutcome::Replaced { .. }, false) => "replaced",
        (ImportOutcome::Replaced { .. }, true) => "would-replace",
        _ => "kept",
    }
}

fn print_json(args: &ImportArgs, scan: &Scan, done: &[(&Found, ImportOutcome)]) {
    let doc = serde_json::json!({
        "source": args.source,
        "format": scan.format.to_string(),
        "store": args.store.store,
        "dry_run": args.dry_run,
        "certificates": done.iter().map(|(found, outcome)| {
            let info = found.certificate.info();
            serde_json::json!({
                "label": found.label,
                "path": found.path,
                "domains": found.domains.names().iter().map(|n| n.as_str()).collect::<Vec<_>>(),
                "status": status(outcome, args.dry_run),
                "ca": found.ca,
                "not_after": rfc3339(info.not_after),
                "renew_at": rfc3339(due_at(&found.certificate, None)),
            })
        }).collect::<Vec<_>>(),
        "skipped": scan.skipped.iter().map(|s| serde_json::json!({
            "label": s.label, "path": s.path, "reason": s.reason,
        })).collect::<Vec<_>>(),
    });
    println!("{doc}");
}

fn print_text(args: &ImportArgs, scan: &Scan, done: &[(&Found, ImportOutcome)]) {
    println!("{} from {}", scan.format, args.source.display());
    for (found, outcome) in done {
        let info = found.certificate.info();
        let what = match (outcome, args.dry_run) {
            (ImportOutcome::Imported, true) => "would be imported".to_owned(),
            (ImportOutcome::Replaced { .. }, true) => {
                "would be imported (replacing an older certificate)".to_owned()
            }
            _ => outcome.to_string(),
        };
        println!("  {}: {what}", found.domains);
        println!(
            "      from {}{}; expires {}, renewal due {}",
            found.path.display(),
            found
                .ca
                .as_deref()
                .map(|ca| format!(" (CA {ca})"))
                .unwrap_or_default(),
            rfc3339(info.not_after),
            rfc3339(due_at(&found.certificate, None)),
        );
    }
    for skipped in &scan.skipped {
        println!(
            "  skipped {} ({}): {}",
            skipped.label,
            skipped.path.display(),
            skipped.reason
        );
    }
    let stored = done
        .iter()
        .filter(|(_, o)| !matches!(o, ImportOutcome::Kept { .. }))
        .count();
    if args.dry_run {
        println!(
            "{stored} would be stored, {} already in the store, {} skipped; --dry-run: nothing was written",
            done.len() - stored,
            scan.skipped.len()
        );
    } else {
        println!(
            "{stored} stored, {} already in the store, {} skipped; berth run serves and renews a certificate once its names are configured (-d or [[certificates]])",
            done.len() - stored,
            scan.skipped.len()
        );
    }
}

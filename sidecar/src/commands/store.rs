//! `berth store migrate`: copy a whole store into another (file <-> redis://).

use berth_acme_core::store::copy_all;

use super::{open_read_only, open_store};
use crate::cli::{MigrateArgs, StoreCommand};
use crate::failure::Failure;

pub(crate) async fn run(command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Migrate(args) => migrate(args).await,
    }
}

async fn migrate(args: MigrateArgs) -> Result<(), Failure> {
    let (from, to) = (args.side(&args.from), args.side(&args.to));
    // The source is only read: a file source is opened read-only (never moved aside).
    let source = open_read_only(&from).await?;
    let target = open_store(&to).await?;
    let report = copy_all(source.as_ref(), target.as_ref()).await?;
    println!(
        "copied {} keys from {} to {}; {} already there",
        report.copied.len(),
        source.describe(),
        target.describe(),
        report.unchanged.len()
    );
    for key in &report.conflicts {
        println!("kept the target's different value of {key}");
    }
    if report.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "{} keys differ between the stores and were left as they are in {}; delete them there to copy over them",
            report.conflicts.len(),
            target.describe()
        )))
    }
}

//! `berth healthcheck`: exit 0 when the admin server says the process is alive.

use berth_admin::AdminClient;

use crate::cli::HealthcheckArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: HealthcheckArgs) -> Result<(), Failure> {
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| AdminClient::new(args.admin.admin_addr).url("/healthz"));
    berth_admin::probe(&url, args.timeout)
        .await
        .map_err(super::renew::admin_failure)?;
    println!("healthy: {url}");
    Ok(())
}

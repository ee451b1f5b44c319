//! `berth healthcheck`: exit 0 when the admin server says the process is alive.

use hyper::Method;

use crate::admin_client;
use crate::cli::HealthcheckArgs;
use crate::failure::Failure;

pub(crate) async fn run(args: HealthcheckArgs) -> Result<(), Failure> {
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| admin_client::url(&args.admin, "/healthz"));
    let response = admin_client::send(Method::GET, &url, args.timeout)
        .await
        .map_err(Failure::runtime)?;
    if response.status == 200 {
        println!("healthy: {url}");
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "{url} answered {}: {}",
            response.status,
            response.body.trim()
        )))
    }
}

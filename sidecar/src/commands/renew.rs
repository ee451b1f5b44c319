//! `berth renew`: asks the running `berth run` to renew now, so the new certificate is
//! served without a restart and the ports stay with the sidecar.

use std::time::Duration;

use hyper::Method;

use crate::admin_client;
use crate::cli::RenewArgs;
use crate::failure::Failure;

/// An order with Pebble takes seconds; a production CA under load, minutes.
const RENEW_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) async fn run(args: RenewArgs) -> Result<(), Failure> {
    if args.force {
        tracing::warn!(
            "--force renews every certificate now, due or not; the CA's rate limits still apply"
        );
    }
    let url = admin_client::url(&args.admin, &format!("/api/renew?force={}", args.force));
    let response = admin_client::send(Method::POST, &url, RENEW_TIMEOUT)
        .await
        .map_err(Failure::runtime)?;
    let doc: serde_json::Value = match serde_json::from_str(&response.body) {
        Ok(doc) => doc,
        Err(_) => {
            return Err(Failure::runtime(format!(
                "{url} answered {}: {}",
                response.status,
                response.body.trim()
            )));
        }
    };
    if args.json {
        println!("{doc}");
    } else if let Some(results) = doc["results"].as_array() {
        for r in results {
            let domains = r["domains"].as_str().unwrap_or("?");
            match r["status"].as_str() {
                Some("failed") => println!(
                    "{domains}: failed: {}",
                    r["error"].as_str().unwrap_or("unknown error")
                ),
                Some(status) => println!(
                    "{domains}: {status}, valid until {}",
                    r["not_after"].as_str().unwrap_or("?")
                ),
                None => println!("{domains}: {r}"),
            }
        }
    }
    if response.status == 200 {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "renewal did not succeed for every certificate ({url} answered {})",
            response.status
        )))
    }
}

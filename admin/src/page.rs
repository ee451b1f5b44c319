//! The status page (`/`): one table row per certificate, coloured by how close it is to
//! expiring, and who is ordering what.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::Html;
use berth_acme_core::ExpiryLevel;
use berth_acme_core::stale::StaleCert;
use berth_acme_core::timestamp::{days_left, rfc3339};

use crate::api::CertRow;
use crate::server::{AdminState, cert_rows};

pub(crate) async fn status_page(State(state): State<AdminState>) -> Html<String> {
    let manager = state.manager.load_full();
    let now = SystemTime::now();
    let mut rows = String::new();
    for row in cert_rows(&manager, None, now) {
        managed_row(&mut rows, &row, now);
    }
    // Stored certificates of sets this berth is not configured with: listed so that
    // nobody wonders why they are never renewed.
    for cert in state.cache.unmanaged(&manager).await.iter() {
        unmanaged_row(&mut rows, cert, now);
    }
    let leases = leases(state.cache.lease_holders(&manager).await.as_ref());
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>berth status</title><style>\
body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}td,th{{padding:.4rem .8rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}}\
tr.unmanaged td{{color:#6b7280}}tr.ok td:nth-child(2){{color:#176f2c}}tr.warn td:nth-child(2){{color:#9a6700}}tr.bad td:nth-child(2){{color:#b42318;font-weight:bold}}</style></head>\
<body><h1>berth</h1><p>CA: {}</p><table><thead><tr><th>Domains</th><th>Expires in</th><th>Not after</th><th>Next renewal</th><th>Last error</th><th>Backoff until</th></tr></thead>\
<tbody>{rows}</tbody></table>{leases}</body></html>",
        escape(manager.ca().directory())
    ))
}

fn managed_row(out: &mut String, r: &CertRow, now: SystemTime) {
    // Relative to the certificate's lifetime: a 6-day certificate is not
    // "expiring soon" all its life (Traefik #12946).
    let level = match (r.not_before, r.not_after) {
        (Some(from), Some(until)) if r.valid => ExpiryLevel::at(from, until, now),
        _ => ExpiryLevel::Critical,
    };
    let class = match level {
        ExpiryLevel::Fine => "ok",
        ExpiryLevel::Soon => "warn",
        _ => "bad",
    };
    let _ = write!(
        out,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(&r.domains.to_string()),
        r.days_left.map_or("none".into(), |d| format!("{d} days")),
        r.not_after.map_or("-".into(), rfc3339),
        r.next_renewal.map_or("-".into(), rfc3339),
        escape(match (&r.last_error, r.stored) {
            (_, false) => "not in the store: served from memory, stored again on the next pass",
            (Some(error), true) => error,
            (None, true) => "-",
        }),
        r.backoff_until.map_or("-".into(), rfc3339),
    );
}

fn unmanaged_row(out: &mut String, cert: &StaleCert, now: SystemTime) {
    let not_after = cert.certificate.info().not_after;
    let _ = write!(
        out,
        "<tr class=\"unmanaged\"><td>{}</td><td>{} days</td><td>{}</td><td>unmanaged: never renewed</td><td>-</td><td>-</td></tr>",
        escape(&cert.domains.to_string()),
        days_left(not_after, now),
        rfc3339(not_after),
    );
}

/// The "Order leases" section, or nothing when no lease is held.
fn leases(holders: &BTreeMap<String, String>) -> String {
    if holders.is_empty() {
        return String::new();
    }
    let mut items = String::new();
    for (set, holder) in holders {
        let _ = write!(
            items,
            "<li>{}: being ordered by {}</li>",
            escape(set),
            escape(holder)
        );
    }
    format!("<h2>Order leases</h2><ul>{items}</ul>")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_store_cannot_open_a_tag() {
        let holders = BTreeMap::from([(
            "a.example.com".to_owned(),
            "<script>\"x\"&</script>".to_owned(),
        )]);
        assert_eq!(
            leases(&holders),
            "<h2>Order leases</h2><ul><li>a.example.com: being ordered by &lt;script&gt;&quot;x&quot;&amp;&lt;/script&gt;</li></ul>"
        );
        assert_eq!(leases(&BTreeMap::new()), "");
    }
}

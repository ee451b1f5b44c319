//! The admin API's requests and responses: one definition, which the server writes and
//! the client reads.
//!
//! Times are RFC 3339 text to the second (`2026-01-31T12:00:00Z`). A domain set is a list
//! of names in `/api/certs` and comma-joined text in `/api/renew`'s results, as the API has
//! always written them; both are read back into a [`DomainSet`].

use std::time::SystemTime;

use berth_acme_core::{DomainName, DomainSet, timestamp};
use serde::{Deserialize, Serialize};

/// The header a mutation (`POST /api/renew`) must carry; its value is not checked. A web
/// page cannot send it cross-origin without a CORS preflight the server never answers.
pub const REQUEST_HEADER: &str = "x-berth-request";

/// `GET /api/certs`: the managed domain sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertList {
    /// One row per managed domain set, in configuration order.
    pub certificates: Vec<CertRow>,
}

/// One managed domain set: the certificate served for it and its renewal state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertRow {
    /// The names, main name first.
    #[serde(with = "wire::name_list")]
    pub domains: DomainSet,
    /// The served certificate's issuer (its distinguished name).
    pub issuer: Option<String>,
    /// Start of the served certificate's validity.
    #[serde(default, with = "wire::time_opt")]
    pub not_before: Option<SystemTime>,
    /// End of the served certificate's validity.
    #[serde(default, with = "wire::time_opt")]
    pub not_after: Option<SystemTime>,
    /// Whole days until `not_after` (negative once past).
    pub days_left: Option<i64>,
    /// When the certificate becomes due for renewal.
    #[serde(default, with = "wire::time_opt")]
    pub next_renewal: Option<SystemTime>,
    /// A certificate is served and valid now.
    pub valid: bool,
    /// The last order's error, while orders are failing.
    pub last_error: Option<String>,
    /// No order is placed before this time (backoff after a failure).
    #[serde(default, with = "wire::time_opt")]
    pub backoff_until: Option<SystemTime>,
    /// `false` while the served certificate is only in memory (storing it failed, or the
    /// stored copy was unreadable); it is stored again on the next pass.
    pub stored: bool,
    /// Which replica (`host:pid`) holds the set's order lease now, with a shared store.
    pub lease_holder: Option<String>,
}

impl CertRow {
    /// The row for one managed set as the manager reports it; `lease_holder` is who
    /// orders it now, if anyone.
    pub fn new(
        status: &berth_acme_core::CertStatus,
        lease_holder: Option<String>,
        now: SystemTime,
    ) -> Self {
        let cert = status.certificate.as_ref();
        let not_after = cert.map(|c| c.info().not_after);
        Self {
            domains: status.domains.clone(),
            issuer: cert.map(|c| c.info().issuer.clone()),
            not_before: cert.map(|c| c.info().not_before),
            not_after,
            days_left: not_after.map(|t| timestamp::days_left(t, now)),
            next_renewal: status.renew_at,
            valid: cert.is_some_and(|c| c.is_valid_at(now)),
            last_error: status.ledger.as_ref().map(|e| e.last_error.clone()),
            backoff_until: status
                .ledger
                .as_ref()
                .map(|e| e.next_attempt_at)
                .filter(|t| *t > now),
            stored: status.stored,
            lease_holder,
        }
    }
}

/// `POST /api/renew`'s query string: what to renew, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// Order every selected set anew, due or not (at most 3 forced renewals an hour).
    #[serde(default)]
    pub force: bool,
    /// Order from the staging CA into a throwaway store; nothing is stored.
    #[serde(default)]
    pub dry_run: bool,
    /// Renew only the certificates carrying one of these names (all when empty). On the
    /// wire: `names=a.example.com,b.example.com`.
    #[serde(
        default,
        with = "wire::name_query",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<DomainName>,
}

impl RenewRequest {
    /// The request as a query string (without the `?`).
    pub fn to_query(&self) -> String {
        // Booleans and names always encode; an error here would be a bug in the derive.
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

/// `POST /api/renew`'s answer (200, or 502 when any renewal failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// One result per selected certificate.
    pub results: Vec<RenewResult>,
}

impl RenewResponse {
    /// How many of the results are failures.
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, RenewOutcome::Failed { .. }))
            .count()
    }
}

/// What happened to one certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewResult {
    /// Its names (comma-joined on the wire).
    #[serde(with = "wire::name_text")]
    pub domains: DomainSet,
    /// The result, tagged by `status` on the wire.
    #[serde(flatten)]
    pub outcome: RenewOutcome,
}

/// One certificate's result, by its `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RenewOutcome {
    /// A valid certificate is stored and not yet due; nothing was ordered.
    Valid(Served),
    /// A certificate was issued (none was stored, or a forced renewal).
    Issued(Served),
    /// A due certificate was replaced.
    Renewed(Served),
    /// The certificate was ensured some other way the manager reports.
    Done(Served),
    /// A dry run got a test certificate from the staging CA; nothing was stored.
    DryRun {
        /// The staging CA's directory URL.
        ca: String,
        /// The test certificate's issuer.
        issuer: String,
        /// The test certificate's end of validity.
        #[serde(with = "wire::time")]
        not_after: SystemTime,
    },
    /// The order (or dry run) failed.
    Failed {
        /// Why, as one line.
        error: String,
    },
    /// Stored, but no configuration names it, so it was left alone (`--standalone`).
    Unmanaged,
}

/// The certificate stored after a renewal request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// Its end of validity.
    #[serde(with = "wire::time")]
    pub not_after: SystemTime,
    /// When it becomes due (given when nothing was ordered, `null` otherwise).
    #[serde(default, with = "wire::time_opt")]
    pub renew_at: Option<SystemTime>,
}

/// How the API's values are written: the one place that knows the text forms.
pub(crate) mod wire {
    use std::time::SystemTime;

    use ::time::format_description::well_known::Rfc3339;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use berth_acme_core::timestamp::rfc3339;

    fn parse_time<E: serde::de::Error>(text: &str) -> Result<SystemTime, E> {
        ::time::OffsetDateTime::parse(text, &Rfc3339)
            .map(SystemTime::from)
            .map_err(|e| E::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
    }

    pub(crate) mod time {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&rfc3339(*at))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
            parse_time(&String::deserialize(d)?)
        }
    }

    pub(crate) mod time_opt {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            at: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => s.serialize_some(&rfc3339(*at)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| parse_time(&text))
                .transpose()
        }
    }

    /// A domain set as a JSON list of names.
    pub(crate) mod name_list {
        use berth_acme_core::DomainSet;
        use serde::Serialize;

        use super::*;

        pub(crate) fn serialize<S: Serializer>(set: &DomainSet, s: S) -> Result<S::Ok, S::Error> {
            let names: Vec<&str> = set.names().iter().map(|n| n.as_str()).collect();
            names.serialize(s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DomainSet, D::Error> {
            let names = Vec::<String>::deserialize(d)?;
            DomainSet::parse(&names).map_err(|e| D::Error::custom(format!("{names:?}: {e}")))
        }
    }

    /// A domain set as its display text, names joined by commas.
    pub(crate) mod name_text {
        use berth_acme_core::DomainSet;

        use super::*;

        pub(crate) fn serialize<S: Serializer>(set: &DomainSet, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(set)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DomainSet, D::Error> {
            let text = String::deserialize(d)?;
            // A name never contains a comma, so the text splits back into the same set.
            DomainSet::parse(text.split(','))
                .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
        }
    }

    /// Names in a query string, joined by commas (`names=a.example.com,b.example.com`).
    pub(crate) mod name_query {
        use berth_acme_core::DomainName;

        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            names: &[DomainName],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let names: Vec<&str> = names.iter().map(DomainName::as_str).collect();
            s.serialize_str(&names.join(","))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<DomainName>, D::Error> {
            String::deserialize(d)?
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    DomainName::parse(n)
                        .map_err(|e| D::Error::custom(format!("{n:?} is not a name: {e}")))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn row() -> CertRow {
        CertRow {
            domains: DomainSet::parse(["www.example.com", "example.com"]).unwrap(),
            issuer: Some("CN=Pebble Intermediate CA".into()),
            not_before: Some(at(1_780_000_000)),
            not_after: Some(at(1_787_776_000)),
            days_left: Some(89),
            next_renewal: Some(at(1_785_184_000)),
            valid: true,
            last_error: None,
            backoff_until: None,
            stored: true,
            lease_holder: Some("host-a:4711".into()),
        }
    }

    #[test]
    fn a_cert_row_keeps_the_wire_format_clients_read() {
        let text = crate::server::json_text(&CertList {
            certificates: vec![row()],
        });
        assert_eq!(
            text,
            r#"{"certificates":[{"backoff_until":null,"days_left":89,"domains":["www.example.com","example.com"],"issuer":"CN=Pebble Intermediate CA","last_error":null,"lease_holder":"host-a:4711","next_renewal":"2026-07-27T20:26:40Z","not_after":"2026-08-26T20:26:40Z","not_before":"2026-05-28T20:26:40Z","stored":true,"valid":true}]}"#
        );
    }

    #[test]
    fn renew_results_keep_the_wire_format_clients_read() {
        let domains = DomainSet::parse(["a.example.com", "b.example.com"]).unwrap();
        let result = |outcome| RenewResult {
            domains: domains.clone(),
            outcome,
        };
        let response = RenewResponse {
            results: vec![
                result(RenewOutcome::Valid(Served {
                    not_after: at(1_787_776_000),
                    renew_at: Some(at(1_785_184_000)),
                })),
                result(RenewOutcome::Renewed(Served {
                    not_after: at(1_787_776_000),
                    renew_at: None,
                })),
                result(RenewOutcome::DryRun {
                    ca: "https://staging.example/dir".into(),
                    issuer: "CN=Fake".into(),
                    not_after: at(1_787_776_000),
                }),
                result(RenewOutcome::Failed {
                    error: "the CA said no".into(),
                }),
                result(RenewOutcome::Unmanaged),
            ],
        };
        let text = crate::server::json_text(&response);
        let rows: Vec<&str> = text
            .trim_start_matches(r#"{"results":["#)
            .trim_end_matches("]}")
            .split("},")
            .collect();
        assert_eq!(
            rows,
            [
                r#"{"domains":"a.example.com,b.example.com","not_after":"2026-08-26T20:26:40Z","renew_at":"2026-07-27T20:26:40Z","status":"valid""#,
                r#"{"domains":"a.example.com,b.example.com","not_after":"2026-08-26T20:26:40Z","renew_at":null,"status":"renewed""#,
                r#"{"ca":"https://staging.example/dir","domains":"a.example.com,b.example.com","issuer":"CN=Fake","not_after":"2026-08-26T20:26:40Z","status":"dry-run""#,
                r#"{"domains":"a.example.com,b.example.com","error":"the CA said no","status":"failed""#,
                r#"{"domains":"a.example.com,b.example.com","status":"unmanaged"}"#,
            ]
        );
        assert_eq!(response.failed(), 1);
    }

    #[test]
    fn what_the_server_writes_the_client_reads_back() {
        let list = CertList {
            certificates: vec![row()],
        };
        let parsed: CertList = crate::client::parse(&crate::server::json_text(&list)).unwrap();
        assert_eq!(parsed, list);

        let response = RenewResponse {
            results: vec![
                RenewResult {
                    domains: DomainSet::parse(["a.example.com", "*.a.example.com"]).unwrap(),
                    outcome: RenewOutcome::Issued(Served {
                        not_after: at(1_787_776_000),
                        renew_at: None,
                    }),
                },
                RenewResult {
                    domains: DomainSet::parse(["b.example.com"]).unwrap(),
                    outcome: RenewOutcome::DryRun {
                        ca: "https://staging.example/dir".into(),
                        issuer: "CN=Fake".into(),
                        not_after: at(1_787_776_000),
                    },
                },
            ],
        };
        let parsed: RenewResponse =
            crate::client::parse(&crate::server::json_text(&response)).unwrap();
        assert_eq!(parsed, response);
    }

    #[test]
    fn a_renew_request_survives_its_query_string() {
        let request = RenewRequest {
            force: true,
            dry_run: false,
            names: vec![
                DomainName::parse("a.example.com").unwrap(),
                DomainName::parse("*.b.example.com").unwrap(),
            ],
        };
        let query = request.to_query();
        let parsed: RenewRequest = serde_urlencoded::from_str(&query).unwrap();
        assert_eq!(parsed, request);
        // What older clients and curl users send: a raw comma list, and nothing at all.
        let raw: RenewRequest = serde_urlencoded::from_str(
            "force=true&dry_run=false&names=a.example.com,*.b.example.com",
        )
        .unwrap();
        assert_eq!(raw, request);
        assert_eq!(
            serde_urlencoded::from_str::<RenewRequest>("").unwrap(),
            RenewRequest::default()
        );
        let bad = serde_urlencoded::from_str::<RenewRequest>("names=a.example.com,not%20a%20name");
        assert!(bad.unwrap_err().to_string().contains("is not a name"));
    }
}

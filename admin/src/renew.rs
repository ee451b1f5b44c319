//! Renewing on request: the work behind `POST /api/renew`, which `berth renew
//! --standalone` also runs on a manager of its own.

use berth_acme_core::{CertManager, DomainName, DomainSet, DryRunError, ManagedCert, Outcome};

use crate::api::{RenewOutcome, RenewRequest, RenewResponse, RenewResult, Served};

/// Why a renewal request was not started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewRefusal {
    /// A name matches no managed certificate.
    #[error(
        "no managed certificate has the name {name}; certificates: {}",
        list(known)
    )]
    UnknownName {
        /// The name asked for.
        name: DomainName,
        /// The managed sets there are.
        known: Vec<DomainSet>,
    },
    /// A dry run was asked of a CA that has no staging endpoint.
    #[error("{0}")]
    NoStaging(DryRunError),
    /// The dry run could not start (its temporary store).
    #[error("the dry run could not start: {0}")]
    DryRunFailed(DryRunError),
}

fn list(known: &[DomainSet]) -> String {
    if known.is_empty() {
        return "none".to_owned();
    }
    known
        .iter()
        .map(DomainSet::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The managed certificates that carry any of `names` (all of them when `names` is
/// empty), each once.
pub fn select(
    managed: &[ManagedCert],
    names: &[DomainName],
) -> Result<Vec<ManagedCert>, RenewRefusal> {
    if names.is_empty() {
        return Ok(managed.to_vec());
    }
    let mut wanted: Vec<ManagedCert> = Vec::new();
    for name in names {
        let found: Vec<&ManagedCert> = managed
            .iter()
            .filter(|m| m.domains.names().contains(name))
            .collect();
        if found.is_empty() {
            return Err(RenewRefusal::UnknownName {
                name: name.clone(),
                known: managed.iter().map(|m| m.domains.clone()).collect(),
            });
        }
        for m in found {
            if !wanted.contains(m) {
                wanted.push(m.clone());
            }
        }
    }
    Ok(wanted)
}

/// Renews (or dry-runs) the certificates `request.names` select; one result per
/// certificate, [`RenewOutcome::Failed`] for those that did not succeed.
pub async fn renew(
    manager: &CertManager,
    request: &RenewRequest,
) -> Result<RenewResponse, RenewRefusal> {
    let selected = select(manager.managed(), &request.names)?;
    if request.dry_run {
        return dry_run(manager, &selected).await;
    }
    let results = if request.names.is_empty() {
        manager.ensure_all(request.force).await
    } else {
        let mut results = Vec::new();
        for m in &selected {
            results.push((m.domains.clone(), manager.ensure(m, request.force).await));
        }
        results
    };
    let results = results
        .into_iter()
        .map(|(domains, result)| RenewResult {
            domains,
            outcome: match result {
                Ok(outcome) => served(&outcome),
                Err(e) => RenewOutcome::Failed {
                    error: e.to_string(),
                },
            },
        })
        .collect();
    Ok(RenewResponse { results })
}

async fn dry_run(
    manager: &CertManager,
    selected: &[ManagedCert],
) -> Result<RenewResponse, RenewRefusal> {
    let staging = manager.dry_run_ca().map_err(RenewRefusal::NoStaging)?;
    tracing::info!(ca = %staging, certificates = selected.len(), "dry run: ordering from the staging CA into a throwaway store");
    let results = manager.dry_run(selected).await.map_err(|e| match e {
        DryRunError::NoStagingCa { .. } => RenewRefusal::NoStaging(e),
        other => RenewRefusal::DryRunFailed(other),
    })?;
    let results = results
        .into_iter()
        .map(|(domains, result)| RenewResult {
            domains,
            outcome: match result {
                Ok(cert) => RenewOutcome::DryRun {
                    ca: staging.to_string(),
                    issuer: cert.info().issuer.clone(),
                    not_after: cert.info().not_after,
                },
                Err(e) => RenewOutcome::Failed {
                    error: e.to_string(),
                },
            },
        })
        .collect();
    Ok(RenewResponse { results })
}

fn served(outcome: &Outcome) -> RenewOutcome {
    let not_after = outcome.certificate().info().not_after;
    match outcome {
        Outcome::Valid { renew_at, .. } => RenewOutcome::Valid(Served {
            not_after,
            renew_at: Some(*renew_at),
        }),
        Outcome::Issued(_) => RenewOutcome::Issued(Served {
            not_after,
            renew_at: None,
        }),
        Outcome::Renewed(_) => RenewOutcome::Renewed(Served {
            not_after,
            renew_at: None,
        }),
        _ => RenewOutcome::Done(Served {
            not_after,
            renew_at: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use berth_acme_core::{ChallengeKind, DomainName, DomainSet, KeyType, ManagedCert};

    use super::{RenewRefusal, select};

    fn managed(names: &[&str]) -> ManagedCert {
        let domains = DomainSet::parse(names).unwrap();
        ManagedCert::new(domains, ChallengeKind::Http01, KeyType::Ec256).unwrap()
    }

    fn names(names: &[&str]) -> Vec<DomainName> {
        names
            .iter()
            .map(|n| DomainName::parse(n).unwrap())
            .collect()
    }

    #[test]
    fn names_select_every_certificate_that_carries_one_once() {
        let all = [
            managed(&["a.example.com", "www.example.com"]),
            managed(&["b.example.com"]),
            managed(&["c.example.com", "www.example.com"]),
        ];
        assert_eq!(select(&all, &[]).unwrap().len(), 3);
        let picked = select(&all, &names(&["WWW.example.com", "c.example.com"])).unwrap();
        let keys: Vec<String> = picked.iter().map(|m| m.domains.key()).collect();
        assert_eq!(
            keys,
            [
                "a.example.com,www.example.com",
                "c.example.com,www.example.com"
            ]
        );
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_certificates_there_are() {
        let all = [managed(&["a.example.com"])];
        let refusal = select(&all, &names(&["z.example.com"])).unwrap_err();
        let RenewRefusal::UnknownName { .. } = refusal else {
            panic!("z.example.com was refused for another reason: {refusal}");
        };
        assert_eq!(
            refusal.to_string(),
            "no managed certificate has the name z.example.com; certificates: a.example.com"
        );
    }
}

//! [`DnsProvider`]: the one thing a DNS API must do for DNS-01 — add a TXT record and
//! remove exactly that record again.
//!
//! Everything else (CNAME delegation, zone detection, the propagation check, cleaning up
//! leftovers after a crash) is the [`Dns01Solver`](super::Dns01Solver)'s job, so a new
//! provider (Cloudflare, Route 53, …) is one file implementing these two calls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::Setting;

/// The future a [`DnsProvider`] returns: boxed so that `dyn DnsProvider` works.
pub type ProviderFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProviderError>> + Send + 'a>>;

/// The TXT record to add or remove.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxtRecord {
    /// Fully qualified name with the trailing dot: `_acme-challenge.example.com.`, or the
    /// CNAME target when `_acme-challenge` is delegated.
    pub fqdn: String,
    /// The zone that holds it, with the trailing dot (found by SOA walk or configured).
    pub zone: String,
    /// The value (43 base64url characters; public once published, not a secret).
    pub value: String,
    /// Time to live in seconds; short, so a retry is not stuck behind a cached value.
    pub ttl: u32,
}

/// Why a provider call failed: a sentence saying what happened and what to check, and
/// which setting of the solver is at fault when one is. Never include a credential.
///
/// ```
/// use berth_acme_core::Setting;
/// use berth_acme_core::challenge::dns01::ProviderError;
///
/// let busy = ProviderError::from("the API answered 503; try again later");
/// assert_eq!(busy.setting(), None);
/// let zone = ProviderError::new("the server says the name is not in the zone")
///     .with_setting(Setting::DnsZone);
/// assert_eq!(zone.setting(), Some(Setting::DnsZone));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    message: String,
    setting: Option<Setting>,
}

impl ProviderError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            setting: None,
        }
    }

    /// Names the solver setting at fault.
    pub fn with_setting(mut self, setting: Setting) -> Self {
        self.setting = Some(setting);
        self
    }

    /// What happened and what to check.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The setting at fault, if any.
    pub fn setting(&self) -> Option<Setting> {
        self.setting
    }
}

impl From<String> for ProviderError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ProviderError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// A DNS API that can publish DNS-01 records.
///
/// Contract:
/// - `add_txt` adds the value **beside** any existing TXT values at the name (a wildcard
///   and its apex share `_acme-challenge.<name>` and are validated at the same time), and
///   returns once the provider has accepted it — the solver checks propagation.
/// - `remove_txt` removes exactly that value and nothing else; removing a value that is
///   not there succeeds.
/// - Credentials come from secret files (`berth-secrets`) and never appear in errors,
///   logs or `Debug` output.
///
/// A minimal provider, keeping the zone in memory where a real one calls its DNS API,
/// handed to a [`Dns01Solver`](super::Dns01Solver):
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use berth_acme_core::challenge::dns01::{self, DnsProvider, ProviderFuture, TxtRecord};
///
/// #[derive(Debug, Default)]
/// struct Memory(Mutex<Vec<TxtRecord>>);
/// impl DnsProvider for Memory {
///     fn describe(&self) -> String {
///         "memory".into()
///     }
///     fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
///         Box::pin(async move { Ok(self.0.lock().unwrap().push(record.clone())) })
///     }
///     fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
///         Box::pin(async move { Ok(self.0.lock().unwrap().retain(|r| r != record)) })
///     }
/// }
///
/// let (zone, rt) = (Memory::default(), tokio::runtime::Runtime::new()?);
/// let fqdn = "_acme-challenge.example.com.".to_owned();
/// let record = TxtRecord { fqdn, zone: "example.com.".into(), value: "x".repeat(43), ttl: 60 };
/// rt.block_on(zone.add_txt(&record))?;
/// assert_eq!(zone.0.lock().unwrap()[..], [record.clone()]);
/// rt.block_on(zone.remove_txt(&record))?;
/// assert!(zone.0.lock().unwrap().is_empty());
/// let solver = dns01::Dns01Solver::new(Arc::new(zone), dns01::Dns01Config::default());
/// # drop(solver); Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait DnsProvider: Send + Sync + fmt::Debug {
    /// Names the provider and its target in errors and logs: `rfc2136 (192.0.2.53:53)`.
    fn describe(&self) -> String;

    /// Adds `record`.
    fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a>;

    /// Removes `record`.
    fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a>;
}

//! Opening whichever store a [`StoreLocation`] names, with one set of options: the file
//! store as its owner or only to read it, Redis or etcd connected and instrumented for
//! metrics. A program that takes a store as one setting (`berth --store`) opens it here
//! instead of matching on the backends itself.

use std::sync::Arc;

use berth_acme_core::Setting;
use berth_acme_core::store::{FileStore, Store, StoreError};
use berth_secrets::Secret;

use crate::StoreLocation;
use crate::{ClientIdentity, EtcdOptions, EtcdStore, Instrumented, RedisOptions, RedisStore};

/// Everything besides the location that opening a store may need; each backend takes
/// the part it uses.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The file store's resolver section of `acme.json` (see
    /// [`FileStore::open`]).
    pub resolver: String,
    /// A shared store's password: Redis `AUTH`, or the password of the etcd user the
    /// location names.
    pub password: Option<Secret>,
    /// A private CA (PEM) that signed a TLS store's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate for a TLS store that checks its clients.
    pub identity: Option<ClientIdentity>,
    /// The prefix of every key in a shared store.
    pub prefix: String,
}

/// How the store will be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and written: a file store is proven writable the way it is written, and
    /// moved aside when it cannot be parsed ([`FileStore::open`]).
    Owner,
    /// Only read: a file store is never moved, rewritten or chmodded
    /// ([`FileStore::open_read_only`]). A shared store is opened as usual; it is simply
    /// not written.
    ReadOnly,
}

/// Why a store could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The etcd location names a user but no password was given.
    MissingPassword {
        /// The user the location names.
        user: String,
    },
    /// The backend refused or could not be reached.
    Store(StoreError),
}

impl OpenError {
    /// The setting that fixes it, when one does.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Self::MissingPassword { .. } => Some(Setting::StorePassword),
            Self::Store(e) => e.setting(),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingPassword { user } => write!(
                f,
                "the etcd user {user} needs a password: pass it in the store options, never in the URL"
            ),
            Self::Store(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::MissingPassword { .. } => None,
            // Transparent: the store error is this error.
            Self::Store(e) => e.source(),
        }
    }
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Opens the store at `location`. Shared stores are wrapped in [`Instrumented`], so
/// their operation times and leases show in metrics.
///
/// ```no_run
/// use berth_stores::{Access, OpenOptions, StoreLocation, open};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let location = StoreLocation::parse("/data/acme.json")?;
/// let options = OpenOptions { resolver: "berth".into(), ..OpenOptions::default() };
/// let store = open(&location, options, Access::ReadOnly).await?;
/// println!("{}", store.describe());
/// # Ok(()) }
/// ```
pub async fn open(
    location: &StoreLocation,
    options: OpenOptions,
    access: Access,
) -> Result<Arc<dyn Store>, OpenError> {
    let shared = match location {
        StoreLocation::File(path) => {
            return Ok(match access {
                Access::Owner => FileStore::open(path, &options.resolver).await?,
                Access::ReadOnly => FileStore::open_read_only(path, &options.resolver).await?,
            });
        }
        StoreLocation::Redis(url) => {
            let options = RedisOptions {
                password: options.password,
                ca_pem: options.ca_pem,
                identity: options.identity,
                prefix: options.prefix,
            };
            RedisStore::connect(url, options).await? as Arc<dyn Store>
        }
        StoreLocation::Etcd {
            endpoints,
            tls,
            user,
        } => {
            let user = match (user, options.password) {
                (Some(user), Some(password)) => Some((user.clone(), password)),
                (Some(user), None) => {
                    return Err(OpenError::MissingPassword { user: user.clone() });
                }
                (None, _) => None,
            };
            let options = EtcdOptions {
                user,
                ca_pem: options.ca_pem,
                identity: options.identity,
                prefix: options.prefix,
            };
            EtcdStore::connect(endpoints, *tls, options).await? as Arc<dyn Store>
        }
    };
    Ok(Instrumented::wrap(shared))
}

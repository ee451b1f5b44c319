//! [`EtcdStore`]: the [`Store`] on etcd (v3 API), for several berth replicas — the
//! natural choice on Kubernetes.
//!
//! Values live under `<prefix>v/<key>`; a value's version is its etcd `mod_revision`.
//! Every write is one transaction comparing the expected revision and, for a fenced write,
//! the lock key's value (the holder's token) — a paused holder whose lease expired cannot
//! overwrite the next holder's data. Locks are keys under `<prefix>lock/<name>` attached to
//! an etcd lease kept alive at a third of its TTL; the lock vanishes with the lease when a
//! holder dies. Changes come from an etcd watch on the value prefix (revisions make it
//! lossless; a broken watch is re-opened and readers are asked to re-read).

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::Setting;
use berth_acme_core::store::{
    Bytes, Change, Expect, Lease, Store, StoreError, StoreFuture, Version, Versioned,
};
use berth_secrets::Secret;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::broadcast;

use crate::identity::ClientIdentity;
use crate::lease::{Renew, Renewal, holder_of, new_token, spawn_renewal};
use crate::reconnect::Reconnect;
use tokio_util::sync::{CancellationToken, DropGuard};
use zeroize::Zeroizing;

/// How long one etcd call may take before the store counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach etcd besides the endpoints: secrets come from files.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// User name (from the URL's user part) and password (`--store-password-file`).
    pub user: Option<(String, Secret)>,
    /// A private CA for `etcds://` (`--store-ca`), PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate for an etcd that checks clients (`--client-cert-auth`;
    /// berth's `--store-cert`, `--store-key`).
    pub identity: Option<ClientIdentity>,
    /// Prefix of every key (`--store-prefix`).
    pub prefix: String,
}

/// The etcd store. See the module docs.
pub struct EtcdStore {
    inner: Arc<Inner>,
    _watch: DropGuard,
}

struct Inner {
    describe: String,
    prefix: String,
    client: Client,
    changes: broadcast::Sender<Change>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("store", &self.inner.describe)
            .finish_non_exhaustive()
    }
}

/// What an etcd lease holds: the lock key (for fencing), the etcd lease and its renewal.
struct Held {
    key: String,
    lease_id: i64,
    _renewal: DropGuard,
}

impl EtcdStore {
    /// Connects to `endpoints` (`host:port`; TLS when `tls`) and checks that etcd answers,
    /// naming the store and the fix if not.
    pub async fn connect(
        endpoints: &[String],
        tls: bool,
        options: EtcdOptions,
    ) -> Result<Arc<Self>, StoreError> {
        let scheme = if tls { "etcds" } else { "etcd" };
        let describe = format!("{scheme}://{}", endpoints.join(","));
        let urls: Vec<String> = endpoints
            .iter()
            .map(|e| format!("{}://{e}", if tls { "https" } else { "http" }))
            .collect();
        let connect = connect_options(&describe, tls, &options)?;
        let step = Step {
            describe: &describe,
            tls,
            identity: options.identity.is_some(),
        };
        let mut client = step.answered(
            tokio::time::timeout(CALL_TIMEOUT * 2, Client::connect(urls, Some(connect))).await,
        )?;
        step.answered(tokio::time::timeout(CALL_TIMEOUT, client.status()).await)?;
        let prefix = if options.prefix.is_empty() {
            "berth/".to_owned()
        } else {
            options.prefix
        };
        let (changes, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            describe,
            prefix,
            client,
            changes,
        });
        let stop = CancellationToken::new();
        tokio::spawn(watch(Arc::clone(&inner), stop.clone()));
        Ok(Arc::new(Self {
            inner,
            _watch: stop.drop_guard(),
        }))
    }
}

/// The client options: timeouts, the user, and the TLS files when `tls` (a client
/// certificate without TLS is refused).
fn connect_options(
    describe: &str,
    tls: bool,
    options: &EtcdOptions,
) -> Result<ConnectOptions, StoreError> {
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(CALL_TIMEOUT)
        .with_timeout(CALL_TIMEOUT);
    if let Some((name, password)) = &options.user {
        connect = connect.with_user(name.clone(), password.expose().to_owned());
    }
    if options.identity.is_some() && !tls {
        return Err(StoreError::Backend {
            store: describe.to_owned(),
            action: "reading the URL",
            reason: "a client certificate (`identity`) needs TLS; use etcds://".into(),
            setting: Some(Setting::StoreIdentity),
        });
    }
    if tls {
        let mut config = etcd_client::TlsOptions::new();
        if let Some(pem) = &options.ca_pem {
            config = config.ca_certificate(etcd_client::Certificate::from_pem(pem));
        }
        if let Some(identity) = &options.identity {
            config = config.identity(etcd_client::Identity::from_pem(
                &identity.cert_pem,
                identity.key_pem.expose(),
            ));
        }
        connect = connect.with_tls(config);
    }
    Ok(connect)
}

/// One step of connecting (connect, then a status call), for its failure's message.
struct Step<'a> {
    describe: &'a str,
    tls: bool,
    /// Whether a client certificate is configured.
    identity: bool,
}

impl Step<'_> {
    /// The step's result, or why there is none: no answer in time, or etcd's error with
    /// the fix for a TLS or client-certificate mistake.
    fn answered<T>(
        &self,
        answer: Result<Result<T, etcd_client::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let (reason, setting) = match answer {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => (
                "no answer; check the address and that etcd runs".into(),
                None,
            ),
            Ok(Err(e)) => crate::identity::with_connect_hint(
                explain(&e),
                &format!("{e:?}"),
                self.tls,
                self.identity,
            ),
        };
        Err(StoreError::Backend {
            store: self.describe.to_owned(),
            action: "connecting",
            reason,
            setting,
        })
    }
}

/// etcd's message, with the fix for the usual causes and the setting at fault.
fn explain(e: &etcd_client::Error) -> (String, Option<Setting>) {
    let text = e.to_string();
    if text.contains("authentication failed") || text.contains("invalid auth token") {
        (
            format!("{text}; check the user and its password"),
            Some(Setting::StorePassword),
        )
    } else if let Some(fix) = crate::identity::tls_fix(&format!("{e:?}")) {
        (format!("{text}; {fix}"), Some(Setting::StoreIdentity))
    } else {
        (text, None)
    }
}

impl Inner {
    fn value_key(&self, key: &str) -> String {
        format!("{}v/{key}", self.prefix)
    }
    fn lock_key(&self, name: &str) -> String {
        format!("{}lock/{name}", self.prefix)
    }

    fn error(&self, action: &'static str, reason: String, setting: Option<Setting>) -> StoreError {
        StoreError::Backend {
            store: self.describe.clone(),
            action,
            reason,
            setting,
        }
    }

    async fn run<T>(
        &self,
        action: &'static str,
        work: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(CALL_TIMEOUT, work).await {
            Ok(result) => result.map_err(|e| {
                let (reason, setting) = explain(&e);
                self.error(action, reason, setting)
            }),
            Err(_) => Err(self.error(action, format!("no answer within {CALL_TIMEOUT:?}"), None)),
        }
    }

    /// The conditions of a write: the expected version, and the fence.
    fn conditions(&self, key: &str, expect: Expect, fence: Option<&Lease>) -> Vec<Compare> {
        let value_key = self.value_key(key);
        let mut when = Vec::new();
        match expect {
            Expect::Any => {}
            Expect::Absent => when.push(Compare::create_revision(value_key, CompareOp::Equal, 0)),
            Expect::Version(v) => when.push(Compare::mod_revision(
                value_key,
                CompareOp::Equal,
                i64::try_from(v.0).unwrap_or(i64::MAX),
            )),
        }
        if let Some(lease) = fence {
            when.push(Compare::value(
                self.fence_key(lease),
                CompareOp::Equal,
                lease.token(),
            ));
        }
        when
    }

    fn fence_key(&self, lease: &Lease) -> String {
        lease
            .held()
            .downcast_ref::<Held>()
            .map_or_else(|| self.lock_key(lease.name()), |h| h.key.clone())
    }

    /// Why a conditional write did not happen: the fence (the lock is someone else's now)
    /// or the version.
    async fn refusal(&self, key: &str, fence: Option<&Lease>) -> StoreError {
        if let Some(lease) = fence {
            let mut client = self.client.clone();
            let holder = self
                .run("reading a lock", client.get(self.fence_key(lease), None))
                .await
                .ok()
                .and_then(|r| r.kvs().first().map(|kv| kv.value().to_vec()));
            if holder.as_deref() != Some(lease.token().as_bytes()) {
                lease.lost().cancel();
                return StoreError::Fenced {
                    store: self.describe.clone(),
                    key: key.to_owned(),
                    lock: lease.name().to_owned(),
                };
            }
        }
        StoreError::Conflict {
            store: self.describe.clone(),
            key: key.to_owned(),
        }
    }
}

/// Forwards watch events as changes; re-opens a broken watch and asks readers to re-read.
async fn watch(inner: Arc<Inner>, stop: CancellationToken) {
    let prefix = inner.value_key("");
    let mut reconnect = Reconnect::new();
    loop {
        let mut client = inner.client.clone();
        let opened = tokio::select! {
            () = stop.cancelled() => return,
            opened = client.watch(prefix.clone(), Some(WatchOptions::new().with_prefix())) => opened,
        };
        match opened {
            Ok(mut stream) => {
                reconnect.opened();
                let _ = inner.changes.send(Change::Resync);
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = stream.message() => message,
                    };
                    let Ok(Some(response)) = message else { break };
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let Ok(full) = std::str::from_utf8(kv.key()) else {
                            continue;
                        };
                        let Some(key) = full.strip_prefix(&prefix) else {
                            continue;
                        };
                        let change = match event.event_type() {
                            EventType::Put => Change::Put(key.to_owned()),
                            EventType::Delete => Change::Deleted(key.to_owned()),
                        };
                        let _ = inner.changes.send(change);
                    }
                }
                tracing::warn!(store = %inner.describe, "change watch ended; re-opening");
            }
            Err(e) => {
                tracing::warn!(store = %inner.describe, error = %explain(&e).0, "cannot watch for changes; retrying");
            }
        }
        if !reconnect.wait(&stop).await {
            return;
        }
    }
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut client = inner.client.clone();
            let response = inner
                .run("reading", client.get(inner.value_key(key), None))
                .await?;
            Ok(response.kvs().first().map(|kv| Versioned {
                value: Zeroizing::new(kv.value().to_vec()),
                version: Version(u64::try_from(kv.mod_revision()).unwrap_or_default()),
            }))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, Version> {
        Box::pin(async move {
            let inner = &self.inner;
            let txn = Txn::new()
                .when(inner.conditions(key, expect, fence))
                .and_then([TxnOp::put(inner.value_key(key), value.to_vec(), None)]);
            let mut client = inner.client.clone();
            let response = inner.run("writing", client.txn(txn)).await?;
            if !response.succeeded() {
                return Err(inner.refusal(key, fence).await);
            }
            let revision = response.header().map_or(0, |h| h.revision());
            Ok(Version(u64::try_from(revision).unwrap_or_default()))
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let inner = &self.inner;
            let value_key = inner.value_key(key);
            let mut when = inner.conditions(key, expect, fence);
            when.push(Compare::create_revision(
                value_key.clone(),
                CompareOp::Greater,
                0,
            ));
            let txn = Txn::new()
                .when(when)
                .and_then([TxnOp::delete(value_key, None)]);
            let mut client = inner.client.clone();
            let response = inner.run("deleting", client.txn(txn)).await?;
            if response.succeeded() {
                return Ok(true);
            }
            if self.get(key).await?.is_none() && !matches!(expect, Expect::Version(_)) {
                if let Some(lease) = fence {
                    return match inner.refusal(key, Some(lease)).await {
                        e @ StoreError::Fenced { .. } => Err(e),
                        _ => Ok(false),
                    };
                }
                return Ok(false);
            }
            Err(inner.refusal(key, fence).await)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let inner = &self.inner;
            let root = inner.value_key("");
            let mut client = inner.client.clone();
            let response = inner
                .run(
                    "listing",
                    client.get(
                        inner.value_key(prefix),
                        Some(GetOptions::new().with_prefix().with_keys_only()),
                    ),
                )
                .await?;
            let mut keys: Vec<String> = response
                .kvs()
                .iter()
                .filter_map(|kv| std::str::from_utf8(kv.key()).ok())
                .filter_map(|k| k.strip_prefix(&root).map(str::to_owned))
                .collect();
            keys.sort();
            Ok(keys)
        })
    }

    fn try_lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let inner = &self.inner;
            let key = inner.lock_key(name);
            let token = new_token();
            let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(2);
            let mut client = inner.client.clone();
            let granted = inner
                .run("locking", client.lease_grant(seconds, None))
                .await?;
            let lease_id = granted.id();
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    token.clone(),
                    Some(PutOptions::new().with_lease(lease_id)),
                )]);
            let taken = inner.run("locking", client.txn(txn)).await?;
            if !taken.succeeded() {
                let _ = inner.run("locking", client.lease_revoke(lease_id)).await;
                return Ok(None);
            }
            let renewal = EtcdRenewal {
                inner: Arc::clone(inner),
                key: key.clone(),
                lease_id,
                channel: None,
            };
            let (lost, renewing) = spawn_renewal(
                renewal,
                Duration::from_secs(u64::try_from(seconds).unwrap_or(2)),
            );
            let held = Held {
                key,
                lease_id,
                _renewal: renewing,
            };
            Ok(Some(Lease::with_lost(name, token, Box::new(held), lost)))
        })
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut client = inner.client.clone();
            if let Some(held) = lease.held().downcast_ref::<Held>() {
                // Revoking the lease deletes the lock key with it.
                inner
                    .run("unlocking", client.lease_revoke(held.lease_id))
                    .await?;
            }
            Ok(())
        })
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn lock_holders(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(async move {
            let inner = &self.inner;
            let root = inner.lock_key("");
            let mut client = inner.client.clone();
            let response = inner
                .run(
                    "listing locks",
                    client.get(root.clone(), Some(GetOptions::new().with_prefix())),
                )
                .await?;
            let mut held: Vec<(String, String)> = response
                .kvs()
                .iter()
                .filter_map(|kv| {
                    let name = std::str::from_utf8(kv.key()).ok()?.strip_prefix(&root)?;
                    let token = std::str::from_utf8(kv.value()).ok()?;
                    Some((name.to_owned(), holder_of(token)))
                })
                .collect();
            held.sort();
            Ok(held)
        })
    }
}

/// An etcd lease's renewal (see [`keep_renewed`]) over one keep-alive stream, re-opened
/// after a failure.
struct EtcdRenewal {
    inner: Arc<Inner>,
    key: String,
    lease_id: i64,
    channel: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

impl Renew for EtcdRenewal {
    fn names(&self) -> (&str, &str) {
        (&self.inner.describe, &self.key)
    }

    async fn renew(&mut self) -> Renewal {
        if self.channel.is_none() {
            let mut client = self.inner.client.clone();
            match self
                .inner
                .run("renewing a lock", client.lease_keep_alive(self.lease_id))
                .await
            {
                Ok(opened) => self.channel = Some(opened),
                Err(e) => return Renewal::Failed(e.to_string()),
            }
        }
        let Some((keeper, stream)) = self.channel.as_mut() else {
            return Renewal::Failed("no keep-alive stream".into());
        };
        let sent = tokio::time::timeout(CALL_TIMEOUT, keeper.keep_alive()).await;
        let answer = tokio::time::timeout(CALL_TIMEOUT, stream.message()).await;
        match (sent, answer) {
            (Ok(Ok(())), Ok(Ok(Some(response)))) if response.ttl() > 0 => Renewal::Renewed,
            (Ok(Ok(())), Ok(Ok(Some(_)))) => Renewal::Gone,
            _ => {
                self.channel = None;
                Renewal::Failed("the keep-alive stream broke".into())
            }
        }
    }
}

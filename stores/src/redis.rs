//! [`RedisStore`]: the [`Store`] on Redis, for several berth replicas.
//!
//! Layout, every key under one hash tag (`{berth/}` for the default prefix) so a Redis
//! Cluster keeps them in one slot and a script may touch several:
//!
//! | Redis key | what |
//! |---|---|
//! | `{prefix}v:<key>` | a hash: `d` the value, `r` its version |
//! | `{prefix}index` | a sorted set of every key (for `list`) |
//! | `{prefix}rev` | a counter bumped by every write; versions are its values |
//! | `{prefix}lock:<name>` | a lock: the holder's token, with a TTL |
//! | `{prefix}changes` | the pub/sub channel writes are announced on |
//!
//! Every write is one Lua script: the version comparison, the fence (the lock key still
//! holds the writer's token) and the write happen atomically, so a holder that paused past
//! its lease cannot overwrite what the next holder wrote. Pub/sub drops messages when a
//! subscriber is disconnected; a poll of the counter every two seconds notices a gap and
//! asks readers to re-read ([`Change::Resync`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_acme_core::Setting;
use berth_acme_core::store::{
    Bytes, Change, Expect, Lease, Store, StoreError, StoreFuture, Version, Versioned,
};
use berth_secrets::Secret;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, Script};

use crate::identity::ClientIdentity;
use crate::lease::{Renew, Renewal, holder_of, new_token, spawn_renewal};
use crate::reconnect::Reconnect;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};
use zeroize::Zeroizing;

/// How long one Redis command may take before the store counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the change counter is compared with what pub/sub delivered.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Puts a value if the condition and the fence hold; bumps the counter, indexes the key
/// and announces it. Returns the new version, -1 on a failed condition, -2 when fenced.
const PUT: &str = r"
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[4] then return -2 end
local cur = redis.call('HGET', KEYS[1], 'r')
if ARGV[2] == 'absent' and cur then return -1 end
if ARGV[2] == 'version' and cur ~= ARGV[3] then return -1 end
local rev = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'r', rev)
redis.call('ZADD', KEYS[2], 0, ARGV[5])
redis.call('PUBLISH', ARGV[6], rev .. ' P ' .. ARGV[5])
return rev
";

/// Deletes under the same rules; 1 if the key existed, 0 if not, -1/-2 as for PUT.
const DELETE: &str = r"
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[4] then return -2 end
local cur = redis.call('HGET', KEYS[1], 'r')
if ARGV[2] == 'absent' and cur then return -1 end
if ARGV[2] == 'version' and cur ~= ARGV[3] then return -1 end
if not cur then return 0 end
local rev = redis.call('INCR', KEYS[3])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[6], rev .. ' D ' .. ARGV[5])
return 1
";

/// Extends a lock only for its holder.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Releases a lock only for its holder.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// How to reach Redis besides the URL: secrets come from files, never from the URL.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// The password (`--store-password-file`).
    pub password: Option<Secret>,
    /// A private CA for `rediss://` (`--store-ca`), PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate for a `rediss://` server that checks clients
    /// (`--store-cert`, `--store-key`).
    pub identity: Option<ClientIdentity>,
    /// Prefix of every key (`--store-prefix`).
    pub prefix: String,
}

/// The Redis store. See the module docs.
pub struct RedisStore {
    inner: Arc<Inner>,
    _tasks: DropGuard,
}

struct Inner {
    describe: String,
    tag: String,
    conn: ConnectionManager,
    client: Client,
    changes: broadcast::Sender<Change>,
    /// The highest change counter pub/sub has delivered.
    delivered: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("store", &self.inner.describe)
            .finish_non_exhaustive()
    }
}

/// What a Redis lease holds: the lock key (for fencing) and the renewal task.
struct Held {
    key: String,
    _renewal: DropGuard,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db` or `rediss://…`) and checks that the
    /// server answers and accepts the credentials, naming the store and the fix if not.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Arc<Self>, StoreError> {
        let describe = describe(url);
        let (client, tls) = build_client(url, &describe, &options)?;
        let conn = open(&client, &describe, tls, options.identity.is_some()).await?;
        let prefix = if options.prefix.is_empty() {
            "berth/".to_owned()
        } else {
            options.prefix
        };
        let (changes, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            describe,
            tag: format!("{{{prefix}}}"),
            conn,
            client,
            changes,
            delivered: AtomicU64::new(0),
        });
        let start = inner.counter().await?;
        inner.delivered.store(start, Ordering::Relaxed);
        let stop = CancellationToken::new();
        tokio::spawn(subscribe(Arc::clone(&inner), stop.clone()));
        tokio::spawn(poll(Arc::clone(&inner), stop.clone()));
        Ok(Arc::new(Self {
            inner,
            _tasks: stop.drop_guard(),
        }))
    }
}

/// A failure of `action` on the store `describe` names, blaming no setting.
fn failure(describe: &str, action: &'static str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend {
        store: describe.to_owned(),
        action,
        reason: e.to_string(),
        setting: None,
    }
}

/// The client for `url` with the options' password and TLS files, and whether it speaks
/// TLS; refuses a password in the URL and a client certificate without TLS.
fn build_client(
    url: &str,
    describe: &str,
    options: &RedisOptions,
) -> Result<(Client, bool), StoreError> {
    let mut info = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| failure(describe, "parsing the URL", &e))?;
    if info.redis_settings().password().is_some() {
        return Err(StoreError::Backend {
            store: describe.to_owned(),
            action: "reading the URL",
            reason: "the URL holds a password; give it as the `password` option instead, read from a file (URLs end up in logs and `docker inspect`)".into(),
            setting: Some(Setting::StorePassword),
        });
    }
    if let Some(password) = &options.password {
        let settings = info
            .redis_settings()
            .clone()
            .set_password(password.expose());
        info = info.set_redis_settings(settings);
    }
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if options.identity.is_some() && !tls {
        return Err(StoreError::Backend {
            store: describe.to_owned(),
            action: "reading the URL",
            reason: "a client certificate (`identity`) needs TLS; use rediss://".into(),
            setting: Some(Setting::StoreIdentity),
        });
    }
    let client = if options.ca_pem.is_some() || options.identity.is_some() {
        let client_tls = options.identity.as_ref().map(|id| redis::ClientTlsConfig {
            client_cert: id.cert_pem.clone(),
            client_key: id.key_pem.expose().as_bytes().to_vec(),
        });
        Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls,
                root_cert: options.ca_pem.clone(),
            },
        )
    } else {
        Client::open(info)
    }
    .map_err(|e| failure(describe, "configuring the client", &e))?;
    Ok((client, tls))
}

/// Connects `client` and checks the server answers (`PING`); a failure says why, with
/// the fix for a TLS or client-certificate mistake.
async fn open(
    client: &Client,
    describe: &str,
    tls: bool,
    identity: bool,
) -> Result<ConnectionManager, StoreError> {
    let connect_error = |e: &redis::RedisError| {
        let (reason, setting) =
            crate::identity::with_connect_hint(explain(e), &format!("{e:?}"), tls, identity);
        StoreError::Backend {
            store: describe.to_owned(),
            action: "connecting",
            reason,
            setting,
        }
    };
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2);
    let mut conn = tokio::time::timeout(
        COMMAND_TIMEOUT * 2,
        client.get_connection_manager_with_config(config),
    )
    .await
    .map_err(|_| {
        failure(
            describe,
            "connecting",
            &"no answer; check the address and that Redis runs",
        )
    })?
    .map_err(|e| connect_error(&e))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| connect_error(&e))?;
    Ok(conn)
}

/// The URL without credentials, for messages.
fn describe(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

/// Redis's own message, with the fix for the usual causes and the setting at fault.
fn explain(e: &redis::RedisError) -> (String, Option<Setting>) {
    let text = e.to_string();
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || ["WRONGPASS", "NOAUTH", "invalid password"]
            .iter()
            .any(|marker| text.contains(marker));
    if auth {
        (
            format!("{text}; check the password"),
            Some(Setting::StorePassword),
        )
    } else if let Some(fix) = crate::identity::tls_fix(&text) {
        (format!("{text}; {fix}"), Some(Setting::StoreIdentity))
    } else if e.is_connection_refusal() {
        (format!("{text}; is Redis running at that address?"), None)
    } else {
        (text, None)
    }
}

impl Inner {
    fn value_key(&self, key: &str) -> String {
        format!("{}v:{key}", self.tag)
    }
    fn index_key(&self) -> String {
        format!("{}index", self.tag)
    }
    fn counter_key(&self) -> String {
        format!("{}rev", self.tag)
    }
    fn lock_key(&self, name: &str) -> String {
        format!("{}lock:{name}", self.tag)
    }
    fn channel(&self) -> String {
        format!("{}changes", self.tag)
    }

    fn error(&self, action: &'static str, e: &redis::RedisError) -> StoreError {
        let (reason, setting) = explain(e);
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
        work: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, work).await {
            Ok(result) => result.map_err(|e| self.error(action, &e)),
            Err(_) => Err(StoreError::Backend {
                store: self.describe.clone(),
                action,
                reason: format!("no answer within {COMMAND_TIMEOUT:?}"),
                setting: None,
            }),
        }
    }

    async fn counter(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<u64> = self
            .run("reading the change counter", conn.get(self.counter_key()))
            .await?;
        Ok(value.unwrap_or(0))
    }

    /// Runs PUT or DELETE; the script's answer.
    async fn write(
        &self,
        script: &str,
        key: &str,
        value: &[u8],
        expect: Expect,
        fence: Option<&Lease>,
    ) -> Result<i64, StoreError> {
        let (kind, version) = match expect {
            Expect::Any => ("any", String::new()),
            Expect::Absent => ("absent", String::new()),
            Expect::Version(v) => ("version", v.0.to_string()),
        };
        let (lock_key, token) = match fence {
            Some(lease) => (
                lease
                    .held()
                    .downcast_ref::<Held>()
                    .map_or_else(|| self.lock_key(lease.name()), |h| h.key.clone()),
                lease.token().to_owned(),
            ),
            None => (self.lock_key("-"), String::new()),
        };
        let mut conn = self.conn.clone();
        let script = Script::new(script);
        let mut call = script.prepare_invoke();
        call.key(self.value_key(key))
            .key(self.index_key())
            .key(self.counter_key())
            .key(lock_key)
            .arg(value)
            .arg(kind)
            .arg(version)
            .arg(token)
            .arg(key)
            .arg(self.channel());
        let answer: i64 = self.run("writing", call.invoke_async(&mut conn)).await?;
        match answer {
            -1 => Err(StoreError::Conflict {
                store: self.describe.clone(),
                key: key.to_owned(),
            }),
            -2 => {
                if let Some(lease) = fence {
                    lease.lost().cancel();
                }
                Err(StoreError::Fenced {
                    store: self.describe.clone(),
                    key: key.to_owned(),
                    lock: fence.map(|l| l.name().to_owned()).unwrap_or_default(),
                })
            }
            n => Ok(n),
        }
    }
}

/// Forwards pub/sub announcements as changes; reconnects (asking for a resync) when the
/// subscription breaks.
async fn subscribe(inner: Arc<Inner>, stop: CancellationToken) {
    let mut reconnect = Reconnect::new();
    loop {
        let connected = async {
            let mut pubsub = inner.client.get_async_pubsub().await?;
            pubsub.subscribe(inner.channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio::time::timeout(COMMAND_TIMEOUT, connected) => connected,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                reconnect.opened();
                // Whatever was written while unsubscribed is unknown.
                let _ = inner.changes.send(Change::Resync);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    let mut parts = payload.splitn(3, ' ');
                    let (Some(rev), Some(kind), Some(key)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    if let Ok(rev) = rev.parse::<u64>() {
                        inner.delivered.fetch_max(rev, Ordering::Relaxed);
                    }
                    let change = if kind == "D" {
                        Change::Deleted(key.to_owned())
                    } else {
                        Change::Put(key.to_owned())
                    };
                    let _ = inner.changes.send(change);
                }
                tracing::warn!(store = %inner.describe, "change subscription ended; reconnecting");
            }
            Ok(Err(e)) => {
                tracing::warn!(store = %inner.describe, error = %explain(&e).0, "cannot subscribe to changes; retrying")
            }
            Err(_) => {
                tracing::warn!(store = %inner.describe, "cannot subscribe to changes (no answer); retrying")
            }
        }
        if !reconnect.wait(&stop).await {
            return;
        }
    }
}

/// Compares the change counter with what pub/sub delivered: a gap that stays for a whole
/// interval means messages were lost.
async fn poll(inner: Arc<Inner>, stop: CancellationToken) {
    let mut suspicious = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let Ok(counter) = inner.counter().await else {
            continue;
        };
        let delivered = inner.delivered.load(Ordering::Relaxed);
        if counter > delivered {
            if suspicious {
                tracing::debug!(store = %inner.describe, counter, delivered, "changes were missed; re-reading");
                inner.delivered.fetch_max(counter, Ordering::Relaxed);
                let _ = inner.changes.send(Change::Resync);
                suspicious = false;
            } else {
                suspicious = true;
            }
        } else {
            suspicious = false;
        }
    }
}

impl Store for RedisStore {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut conn = inner.conn.clone();
            let (value, version): (Option<Vec<u8>>, Option<u64>) = inner
                .run("reading", async {
                    redis::cmd("HMGET")
                        .arg(inner.value_key(key))
                        .arg("d")
                        .arg("r")
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            Ok(match (value, version) {
                (Some(value), Some(version)) => Some(Versioned {
                    value: Zeroizing::new(value),
                    version: Version(version),
                }),
                _ => None,
            })
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
            let rev = self.inner.write(PUT, key, &value, expect, fence).await?;
            Ok(Version(u64::try_from(rev).unwrap_or_default()))
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let existed = self.inner.write(DELETE, key, &[], expect, fence).await?;
            Ok(existed == 1)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut conn = inner.conn.clone();
            let mut end = prefix.as_bytes().to_vec();
            end.push(0xff);
            inner
                .run("listing", async {
                    redis::cmd("ZRANGEBYLEX")
                        .arg(inner.index_key())
                        .arg(format!("[{prefix}"))
                        .arg([b"(".as_slice(), end.as_slice()].concat())
                        .query_async(&mut conn)
                        .await
                })
                .await
        })
    }

    fn try_lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let inner = &self.inner;
            let key = inner.lock_key(name);
            let token = new_token();
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1000);
            let mut conn = inner.conn.clone();
            let taken: Option<String> = inner
                .run("locking", async {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            if taken.is_none() {
                return Ok(None);
            }
            let ttl = Duration::from_millis(ttl_ms);
            let renewal = RedisRenewal {
                inner: Arc::clone(inner),
                key: key.clone(),
                token: token.clone(),
                ttl,
            };
            let (lost, renewing) = spawn_renewal(renewal, ttl);
            let held = Held {
                key,
                _renewal: renewing,
            };
            Ok(Some(Lease::with_lost(name, token, Box::new(held), lost)))
        })
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.inner;
            let key = lease
                .held()
                .downcast_ref::<Held>()
                .map_or_else(|| inner.lock_key(lease.name()), |h| h.key.clone());
            let mut conn = inner.conn.clone();
            let script = Script::new(RELEASE);
            let mut call = script.prepare_invoke();
            call.key(key).arg(lease.token());
            let _: i64 = inner.run("unlocking", call.invoke_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn lock_holders(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(async move {
            let inner = &self.inner;
            let prefix = inner.lock_key("");
            let mut conn = inner.conn.clone();
            let mut keys: Vec<String> = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, found): (u64, Vec<String>) = inner
                    .run("listing locks", async {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(format!("{prefix}*"))
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut conn)
                            .await
                    })
                    .await?;
                keys.extend(found);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let tokens: Vec<Option<String>> = inner
                .run("listing locks", async {
                    redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
                })
                .await?;
            let mut held: Vec<(String, String)> = keys
                .iter()
                .zip(tokens)
                .filter_map(|(key, token)| {
                    let name = key.strip_prefix(&prefix)?;
                    Some((name.to_owned(), holder_of(&token?)))
                })
                .collect();
            held.sort();
            Ok(held)
        })
    }
}

/// A Redis lock's renewal (see [`keep_renewed`]): PEXPIRE, only while the key still
/// holds our token.
struct RedisRenewal {
    inner: Arc<Inner>,
    key: String,
    token: String,
    ttl: Duration,
}

impl Renew for RedisRenewal {
    fn names(&self) -> (&str, &str) {
        (&self.inner.describe, &self.key)
    }

    async fn renew(&mut self) -> Renewal {
        let mut conn = self.inner.conn.clone();
        let script = Script::new(RENEW);
        let mut call = script.prepare_invoke();
        call.key(&self.key)
            .arg(&self.token)
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        match self
            .inner
            .run("renewing a lock", call.invoke_async::<i64>(&mut conn))
            .await
        {
            Ok(1) => Renewal::Renewed,
            Ok(_) => Renewal::Gone,
            Err(e) => Renewal::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_appear_in_the_description() {
        assert_eq!(
            describe("redis://user:hunter2@10.0.0.1:6379/2"),
            "redis://10.0.0.1:6379/2"
        );
        assert_eq!(describe("rediss://cache:6380"), "rediss://cache:6380");
    }
}

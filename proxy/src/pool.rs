//! Keep-alive HTTP/1.1 connections to upstreams.
//!
//! One request at a time per connection (HTTP/1.1 has no multiplexing): a request takes
//! an idle connection to its upstream or opens a new one, and the connection goes back
//! to the pool when the response body has been read to its end. Connections idle for
//! about [`IDLE_TIMEOUT`] are closed, as are any the upstream closed itself. A request
//! that could not be written because the upstream had just closed a kept-alive
//! connection goes out again on the next one (nothing of it reached the upstream, so
//! this is safe for any method).
//!
//! Connections to one upstream are capped ([`Limits::max_upstream_connections`](crate::Limits)):
//! without a cap, every HTTP/2 stream a client opens could open a connection of its own.
//! At the cap a request waits for a connection to come back or to close, within the
//! upstream timeout.
//!
//! hyper's own pooled client does the same in general form; this one is the forwarding
//! path's hottest code and does only what a proxy to a few plain-HTTP upstreams needs,
//! with no per-request allocations of its own.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body_util::{Either, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Request bodies sent upstream: the client's, optionally capped (`Limits::max_body_bytes`).
pub(crate) type RequestBody = Either<Incoming, Limited<Incoming>>;

/// Idle connections older than this (give or take a quarter) are closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The sweeper runs this many times per [`IDLE_TIMEOUT`].
const SWEEPS_PER_TIMEOUT: u64 = 4;
/// Idle connections kept per upstream; more are closed when they come back.
const MAX_IDLE_PER_UPSTREAM: usize = 256;

/// Why a request got no response from its upstream.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The TCP connection was refused or failed (no address, unreachable, reset).
    Connect(io::Error),
    /// The TCP connection did not complete within the connect timeout.
    ConnectTimeout,
    /// The connection was made but the exchange failed (including the client's body
    /// failing or exceeding the limit while being sent).
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "cannot connect: {error}"),
            Self::ConnectTimeout => f.write_str("connect timed out"),
            Self::Http(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(error) => Some(error),
            Self::ConnectTimeout => None,
            Self::Http(error) => Some(error),
        }
    }
}

/// Connections to every upstream, shared by all client connections of one proxy.
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    upstreams: Mutex<HashMap<Authority, Arc<UpstreamConns>>>,
    connect_timeout: Duration,
    /// Connections open at once to one upstream, idle or busy.
    max_per_upstream: usize,
    /// Advanced by the sweeper; an idle connection remembers the sweep it was
    /// returned in, so no clock is read per request.
    sweep: AtomicU64,
    sweeper_started: AtomicBool,
}

/// The connections to one upstream: the idle ones, and a slot for each open one.
struct UpstreamConns {
    authority: Authority,
    idle: Mutex<Vec<Idle>>,
    /// One permit per open connection, held by the connection's task until it ends.
    slots: Arc<Semaphore>,
    /// Signalled when a connection goes back to `idle`, for requests waiting at the cap.
    returned: Notify,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    returned_in_sweep: u64,
}

impl Pool {
    /// A pool opening at most `max_per_upstream` connections to each upstream (at
    /// least one).
    pub(crate) fn new(connect_timeout: Duration, max_per_upstream: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                upstreams: Mutex::new(HashMap::new()),
                connect_timeout,
                max_per_upstream: max_per_upstream.clamp(1, Semaphore::MAX_PERMITS),
                sweep: AtomicU64::new(0),
                sweeper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `request` (in origin form, with its Host header set) to `authority` and
    /// returns the response; its body puts the connection back when read to the end.
    pub(crate) async fn send(
        &self,
        authority: &Authority,
        mut request: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let upstream = self.shared.upstream(authority);
        loop {
            let (mut sender, reused) = self.checkout(&upstream).await?;
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pool: Arc::downgrade(&self.shared),
                        upstream,
                        sender,
                    };
                    return Ok(response.map(|body| UpstreamBody {
                        body,
                        checkin: Some(checkin),
                    }));
                }
                Err(mut error) => match error.take_message() {
                    // Never written: the upstream closed this kept-alive connection
                    // just before. Try the next one.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Http(error.into_error())),
                },
            }
        }
    }

    /// An idle connection to `upstream` (`true`), or a new one (`false`) if the cap
    /// allows; at the cap, waits until a connection comes back or closes.
    async fn checkout(
        &self,
        upstream: &UpstreamConns,
    ) -> Result<(SendRequest<RequestBody>, bool), SendError> {
        loop {
            if let Some(sender) = upstream.take_idle().await {
                return Ok((sender, true));
            }
            let slot = match Arc::clone(&upstream.slots).try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    tracing::debug!(
                        upstream = %upstream.authority,
                        max = self.shared.max_per_upstream,
                        "upstream connection limit reached; waiting for a connection"
                    );
                    tokio::select! {
                        // The semaphore is never closed, so this is a permit.
                        Ok(slot) = Arc::clone(&upstream.slots).acquire_owned() => slot,
                        () = upstream.returned.notified() => continue,
                    }
                }
            };
            return Ok((self.connect(&upstream.authority, slot).await?, false));
        }
    }

    /// Opens a connection to `authority`; `slot` is held until it closes.
    async fn connect(
        &self,
        authority: &Authority,
        slot: OwnedSemaphorePermit,
    ) -> Result<SendRequest<RequestBody>, SendError> {
        self.start_sweeper();
        let host = authority.host();
        // `[::1]` in a URL is `::1` to the resolver.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(
            self.shared.connect_timeout,
            TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_elapsed| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
        // Requests and responses are written whole; don't hold back the last segment.
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        let upstream = authority.clone();
        tokio::spawn(async move {
            // Upgrades: a `101` response hands the connection to the WebSocket tunnel.
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%upstream, %error, "upstream connection ended with an error");
            }
            // After a `101` the tunnel owns the socket; it counts against the client
            // connection limit instead.
            drop(slot);
        });
        Ok(sender)
    }

    /// Starts the task that closes long-idle connections, once, from inside the runtime.
    fn start_sweeper(&self) {
        if self.shared.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.sweep();
            }
        });
    }
}

impl Shared {
    fn upstream(&self, authority: &Authority) -> Arc<UpstreamConns> {
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(upstream) = upstreams.get(authority) {
            return Arc::clone(upstream);
        }
        let upstream = Arc::new(UpstreamConns {
            authority: authority.clone(),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(self.max_per_upstream)),
            returned: Notify::new(),
        });
        upstreams.insert(authority.clone(), Arc::clone(&upstream));
        upstream
    }

    /// Closes connections idle since [`SWEEPS_PER_TIMEOUT`] sweeps ago or closed by
    /// their upstream, and forgets upstreams with nothing left idle.
    fn sweep(&self) {
        let now = self.sweep.fetch_add(1, Ordering::Relaxed) + 1;
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        upstreams.retain(|_, upstream| {
            let mut idle = upstream.lock_idle();
            let before = idle.len();
            idle.retain(|c| {
                !c.sender.is_closed() && now - c.returned_in_sweep < SWEEPS_PER_TIMEOUT
            });
            if idle.len() < before {
                tracing::debug!(
                    upstream = %upstream.authority,
                    closed = before - idle.len(),
                    "closed idle upstream connections"
                );
            }
            // An upstream in use by a request in flight is kept (its Arc is shared), and
            // so is one with connections open: forgetting it would forget their slots.
            !idle.is_empty()
                || Arc::strong_count(upstream) > 1
                || upstream.slots.available_permits() < self.max_per_upstream
        });
    }
}

impl UpstreamConns {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned connection that is still open, once it can take a
    /// request (it may still be finishing the previous response).
    async fn take_idle(&self) -> Option<SendRequest<RequestBody>> {
        loop {
            let mut sender = self.lock_idle().pop()?.sender;
            if sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }
}

/// Puts a connection back into its pool when its response has been read.
struct Checkin {
    pool: Weak<Shared>,
    upstream: Arc<UpstreamConns>,
    sender: SendRequest<RequestBody>,
}

impl Checkin {
    fn give_back(self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        if self.sender.is_closed() {
            return;
        }
        let mut idle = self.upstream.lock_idle();
        if idle.len() < MAX_IDLE_PER_UPSTREAM {
            idle.push(Idle {
                sender: self.sender,
                returned_in_sweep: pool.sweep.load(Ordering::Relaxed),
            });
            drop(idle);
            self.upstream.returned.notify_one();
        }
    }
}

/// An upstream's response body, streamed; the connection is reused once it has been
/// read to the end, and closed if the body is dropped early or fails.
pub(crate) struct UpstreamBody {
    body: Incoming,
    checkin: Option<Checkin>,
}

impl UpstreamBody {
    /// Keeps the connection out of the pool: after a `101` it belongs to the tunnel.
    pub(crate) fn into_detached(mut self) {
        self.checkin = None;
    }

    fn give_back(&mut self) {
        if let Some(checkin) = self.checkin.take() {
            checkin.give_back();
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A server may stop polling once the body says it has ended.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}

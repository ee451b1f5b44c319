//! What ends a client connection besides the client: the idle timeout, graceful
//! shutdown and the hard stop, watched at no cost per request.
//!
//! A busy connection's task is woken several times per request. Re-checking the two
//! cancellation tokens (shared by every connection, each behind a mutex) and the idle
//! timer on every one of those wake-ups showed up in profiles, as did reading the clock
//! on every read and write to track idleness. So the signals are polled only when one of
//! them woke the task ([`next_event`]), and idleness is a flag and a count of requests in
//! flight that requests set and a coarse timer reads ([`Activity`]).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The idle timer checks this many times per idle timeout; a connection is idle after
/// that many checks in a row saw no request in flight, so it closes between one and one
/// and a quarter timeouts after its last request ended.
const CHECKS_PER_TIMEOUT: u32 = 4;

/// Whether a connection is in use: requests in flight, and whether one started or
/// ended since the idle timer last looked.
///
/// Idleness counts requests, not bytes: an HTTP/2 client can keep a connection moving
/// bytes forever with PING frames (or SETTINGS, or WINDOW_UPDATEs) and no request, and
/// it must still idle out. A request is in flight from the moment it reaches the
/// service until its response body has been sent or dropped.
#[derive(Default)]
pub(crate) struct Activity {
    moved: AtomicBool,
    in_flight: AtomicUsize,
}

impl Activity {
    /// A request started; the connection is in use until the guard is dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.moved.store(true, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Whether the connection was in use since the last call.
    fn take(&self) -> bool {
        let moved = self.moved.swap(false, Ordering::Relaxed);
        moved || self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// One request in flight on a connection ([`Activity::request`]).
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.moved.store(true, Ordering::Relaxed);
    }
}

/// A response body that keeps its request [in flight](InFlight) until it has been
/// sent (or dropped).
pub(crate) struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, in_flight: InFlight) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Something other than the connection itself that asks it to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The drain deadline passed: close at once.
    HardStop,
    /// Shutdown began: finish what is in flight, then close.
    Shutdown,
    /// No request was in flight for the idle timeout: close gracefully.
    Idle,
    /// Still open and unused a check period after [`Signal::Idle`]: an HTTP/2 client
    /// that never acknowledges the graceful GOAWAY's PING would hold it forever. Close
    /// at once (no request is in flight).
    IdleCloseIgnored,
}

/// The signals one connection watches. After [`Signal::Shutdown`] or [`Signal::Idle`]
/// only the hard stop is watched.
pub(crate) struct Signals {
    hard_stop: Pin<Box<WaitForCancellationFutureOwned>>,
    /// `None` once draining.
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    idle: Option<IdleTimer>,
    waker: Arc<SignalWaker>,
}

struct IdleTimer {
    activity: Arc<Activity>,
    checks: Interval,
    quiet_checks: u32,
    /// [`Signal::Idle`] was sent: the next quiet check closes the connection.
    closing: bool,
}

impl Signals {
    pub(crate) fn new(
        hard_stop: &CancellationToken,
        shutdown: &CancellationToken,
        idle_timeout: Duration,
        activity: Arc<Activity>,
    ) -> Self {
        let period = (idle_timeout / CHECKS_PER_TIMEOUT).max(Duration::from_millis(1));
        let mut checks = tokio::time::interval_at(Instant::now() + period, period);
        checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            hard_stop: Box::pin(hard_stop.clone().cancelled_owned()),
            shutdown: Some(Box::pin(shutdown.clone().cancelled_owned())),
            idle: Some(IdleTimer {
                activity,
                checks,
                quiet_checks: 0,
                closing: false,
            }),
            waker: Arc::new(SignalWaker {
                // Poll everything once, so each signal registers to wake us.
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }

    fn poll_signal(&mut self, cx: &mut Context<'_>) -> Poll<Signal> {
        if self.hard_stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Signal::HardStop);
        }
        if let Some(shutdown) = &mut self.shutdown
            && shutdown.as_mut().poll(cx).is_ready()
        {
            self.draining();
            return Poll::Ready(Signal::Shutdown);
        }
        if let Some(idle) = &mut self.idle {
            while idle.checks.poll_tick(cx).is_ready() {
                if idle.activity.take() {
                    idle.quiet_checks = 0;
                    continue;
                }
                idle.quiet_checks += 1;
                if idle.closing {
                    self.draining();
                    return Poll::Ready(Signal::IdleCloseIgnored);
                }
                if idle.quiet_checks >= CHECKS_PER_TIMEOUT {
                    // Keep checking: a client that does not let the connection close
                    // gracefully gets one more quiet check period.
                    idle.closing = true;
                    self.shutdown = None;
                    return Poll::Ready(Signal::Idle);
                }
            }
        }
        Poll::Pending
    }

    fn draining(&mut self) {
        self.shutdown = None;
        self.idle = None;
    }
}

/// Wakes the connection's task and notes that a signal (not the connection) did.
struct SignalWaker {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SignalWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// What happened first: the connection future finished, or a signal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<T> {
    Done(T),
    Signal(Signal),
}

/// Waits for `conn` to finish or a signal, polling the signals only when one of them
/// woke the task.
pub(crate) async fn next_event<C: Future>(
    mut conn: Pin<&mut C>,
    signals: &mut Signals,
) -> Event<C::Output> {
    poll_fn(|cx| {
        signals.waker.task.register(cx.waker());
        if signals.waker.woken.swap(false, Ordering::Acquire) {
            let waker = Waker::from(Arc::clone(&signals.waker));
            let mut signal_cx = Context::from_waker(&waker);
            if let Poll::Ready(signal) = signals.poll_signal(&mut signal_cx) {
                // A signal that fired may not have registered for the next one (the
                // idle timer's next check): look again on the next call.
                signals.waker.woken.store(true, Ordering::Release);
                return Poll::Ready(Event::Signal(signal));
            }
        }
        conn.as_mut().poll(cx).map(Event::Done)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(idle: Duration) -> (Signals, Arc<Activity>, CancellationToken, CancellationToken) {
        let activity = Arc::new(Activity::default());
        let (hard_stop, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let signals = Signals::new(&hard_stop, &shutdown, idle, Arc::clone(&activity));
        (signals, activity, hard_stop, shutdown)
    }

    // Virtual time (start_paused): the clock only moves when every task waits.
    #[tokio::test(start_paused = true)]
    async fn idle_fires_one_to_one_and_a_quarter_timeouts_after_the_last_request() {
        let (mut signals, activity, _hard_stop, _shutdown) = signals(Duration::from_secs(100));
        let conn = std::future::pending::<()>();
        tokio::pin!(conn);
        let started = Instant::now();
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(activity.request());
            }
            // One request in flight for 200 s: not idle while it lasts.
            let long = activity.request();
            tokio::time::sleep(Duration::from_secs(200)).await;
            drop(long);
        });
        let event = next_event(conn.as_mut(), &mut signals).await;
        let elapsed = started.elapsed();
        assert_eq!(event, Event::Signal(Signal::Idle));
        // Last request ended at 500 s.
        assert!(
            elapsed >= Duration::from_secs(600) && elapsed <= Duration::from_secs(625),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_idle_checks_and_the_hard_stop_still_ends_the_connection() {
        let (mut signals, _activity, hard_stop, shutdown) = signals(Duration::from_secs(1));
        let conn = std::future::pending::<()>();
        tokio::pin!(conn);
        shutdown.cancel();
        let event = next_event(conn.as_mut(), &mut signals).await;
        assert_eq!(event, Event::Signal(Signal::Shutdown));
        // Draining: no idle signal however long nothing moves.
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            next_event(conn.as_mut(), &mut signals),
        )
        .await;
        assert!(waited.is_err());
        hard_stop.cancel();
        let event = next_event(conn.as_mut(), &mut signals).await;
        assert_eq!(event, Event::Signal(Signal::HardStop));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_still_open_a_check_after_idle_is_closed_unless_in_use() {
        let (mut first, _activity, _hard_stop, _shutdown) = signals(Duration::from_secs(4));
        let conn = std::future::pending::<()>();
        tokio::pin!(conn);
        let started = Instant::now();
        let event = next_event(conn.as_mut(), &mut first).await;
        assert_eq!(event, Event::Signal(Signal::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        let event = next_event(conn.as_mut(), &mut first).await;
        assert_eq!(event, Event::Signal(Signal::IdleCloseIgnored));
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        // A request that arrived before the GOAWAY took effect keeps it open.
        let (mut signals, activity, _hard_stop, _shutdown) = signals(Duration::from_secs(4));
        let event = next_event(conn.as_mut(), &mut signals).await;
        assert_eq!(event, Event::Signal(Signal::Idle));
        let in_flight = activity.request();
        let waited = tokio::time::timeout(
            Duration::from_secs(30),
            next_event(conn.as_mut(), &mut signals),
        )
        .await;
        assert!(waited.is_err(), "closed with a request in flight");
        drop(in_flight);
        let event = next_event(conn.as_mut(), &mut signals).await;
        assert_eq!(event, Event::Signal(Signal::IdleCloseIgnored));
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_finishing_comes_through() {
        let (mut signals, _activity, _hard_stop, _shutdown) = signals(Duration::from_secs(1));
        let conn = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            7
        };
        tokio::pin!(conn);
        assert_eq!(
            next_event(conn.as_mut(), &mut signals).await,
            Event::Done(7)
        );
    }
}

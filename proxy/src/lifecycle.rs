//! What ends a client connection besides the client: the idle timeout, graceful
//! shutdown and the hard stop, watched at no cost per request.
//!
//! A busy connection's task is woken several times per request. Re-checking the two
//! cancellation tokens (shared by every connection, each behind a mutex) and the idle
//! timer on every one of those wake-ups showed up in profiles, as did reading the clock
//! on every read and write to track idleness. So the signals are polled only when one of
//! them woke the task ([`next_event`]), and idleness is a flag that reads and writes set
//! and a coarse timer clears ([`Activity`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The idle timer checks this many times per idle timeout; a connection is idle after
/// that many checks in a row saw no transfer, so it closes between one and one and a
/// quarter timeouts after its last byte.
const CHECKS_PER_TIMEOUT: u32 = 4;

/// Whether bytes moved on a connection since the idle timer last looked.
#[derive(Default)]
pub(crate) struct Activity {
    moved: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

/// A transport that records that bytes moved, for the idle timeout.
pub(crate) struct IdleIo<I> {
    pub(crate) inner: I,
    pub(crate) activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Something other than the connection itself that asks it to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The drain deadline passed: close at once.
    HardStop,
    /// Shutdown began: finish what is in flight, then close.
    Shutdown,
    /// Nothing moved for the idle timeout.
    Idle,
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
                if idle.quiet_checks >= CHECKS_PER_TIMEOUT {
                    self.draining();
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
    async fn idle_fires_one_to_one_and_a_quarter_timeouts_after_the_last_transfer() {
        let (mut signals, activity, _hard_stop, _shutdown) = signals(Duration::from_secs(100));
        let conn = std::future::pending::<()>();
        tokio::pin!(conn);
        let started = Instant::now();
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                activity.touch();
            }
        });
        let event = next_event(conn.as_mut(), &mut signals).await;
        let elapsed = started.elapsed();
        assert_eq!(event, Event::Signal(Signal::Idle));
        // Last transfer at 300 s.
        assert!(
            elapsed >= Duration::from_secs(400) && elapsed <= Duration::from_secs(425),
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

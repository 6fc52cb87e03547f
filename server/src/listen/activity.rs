//! What one connection is doing, for its time limits: how many requests are in flight (from the head's arrival
//! until the response's last byte is handed to hyper), since when it has been idle, and whether bytes of a next
//! request have arrived since. `Activity::expiry` turns that into the moment the connection is to be closed:
//!
//! - before its first request, the header timeout from the connection's start;
//! - while a request is in flight, never;
//! - idle over HTTP/1 with a new head started, the header timeout from its first byte;
//! - idle otherwise, the idle timeout from the end of the last request (HTTP/2 clients may ping an idle
//!   connection, so only requests count there).
//!
//! A connection asked to close (shutdown, or idle) gets the header timeout to finish a head it started.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Version;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection's time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request in flight for the idle timeout: close it gracefully (HTTP/2 says GOAWAY).
    Idle,
    /// A request head that did not arrive in time: drop the connection.
    SlowHead,
}

pub struct Activity {
    state: Mutex<State>,
    /// Set by reads; cleared when the connection falls idle, so only a next request's first byte takes the lock.
    read_since_idle: AtomicBool,
    /// Wakes `expiry` when a request ends or a head starts.
    changed: Notify,
}

struct State {
    in_flight: usize,
    /// Whether any request arrived yet.
    served: bool,
    http2: bool,
    /// The connection's start, then the end of its last request.
    since: Instant,
    /// The first byte read while idle.
    head_started: Option<Instant>,
}

impl Activity {
    pub fn new(http2: bool) -> Activity {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                served: false,
                http2,
                since: Instant::now(),
                head_started: None,
            }),
            read_since_idle: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("connection activity lock")
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn begin_request(self: &Arc<Self>, version: Version) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.served = true;
        state.http2 |= version == Version::HTTP_2;
        InFlight(self.clone())
    }

    fn end_request(&self) {
        let mut state = self.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.since = Instant::now();
            state.head_started = None;
            self.read_since_idle.store(false, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn read_bytes(&self) {
        if self.read_since_idle.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut state = self.state();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            self.changed.notify_one();
        }
    }

    /// When the connection is to be closed, and why; `closing` is when it was asked to close, if it was.
    fn deadline(&self, header: Duration, idle: Duration, closing: Option<Instant>) -> Option<(Instant, Expiry)> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        if !state.served {
            return Some((state.since + header, Expiry::SlowHead));
        }
        if let (false, Some(first_byte)) = (state.http2, state.head_started) {
            return Some((first_byte + header, Expiry::SlowHead));
        }
        match closing {
            Some(asked) => Some((asked.max(state.since) + header, Expiry::SlowHead)),
            None => Some((state.since + idle, Expiry::Idle)),
        }
    }

    /// Completes when the connection's time is up (see the module's rules).
    pub async fn expiry(&self, header: Duration, idle: Duration, closing: Option<Instant>) -> Expiry {
        loop {
            // `notify_one` keeps a wake-up for a waiter that is not waiting yet, so none is lost in between.
            let changed = self.changed.notified();
            match self.deadline(header, idle, closing) {
                None => changed.await,
                Some((at, expiry)) if at <= Instant::now() => return expiry,
                Some((at, _)) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }
}

/// A request in flight; dropped with its response body.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A connection's stream, noting when bytes arrive.
pub struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read_bytes();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn deadline(activity: &Activity) -> Option<(Instant, Expiry)> {
        activity.deadline(HEADER, IDLE, None)
    }

    /// Whether `at` is `after` from now, give or take the time the test took to get here.
    fn about(at: Instant, after: Duration) -> bool {
        let now = Instant::now();
        at <= now + after && at + Duration::from_secs(1) > now + after
    }

    #[test]
    fn a_new_connection_has_the_header_timeout_to_send_its_first_head() {
        let activity = Activity::new(false);
        let (at, expiry) = deadline(&activity).unwrap();
        assert_eq!(expiry, Expiry::SlowHead);
        assert!(about(at, HEADER));
    }

    #[test]
    fn a_request_in_flight_has_no_deadline_and_its_end_starts_the_idle_timeout() {
        let activity = Arc::new(Activity::new(false));
        let request = activity.begin_request(Version::HTTP_11);
        activity.read_bytes();
        assert_eq!(
            deadline(&activity),
            None,
            "bytes of a body or a pipelined head change nothing"
        );
        let second = activity.begin_request(Version::HTTP_11);
        drop(request);
        assert_eq!(deadline(&activity), None, "one request is still in flight");
        drop(second);
        let (at, expiry) = deadline(&activity).unwrap();
        assert_eq!(expiry, Expiry::Idle);
        assert!(about(at, IDLE));
    }

    #[test]
    fn the_first_byte_of_a_next_http1_head_starts_the_header_timeout() {
        let activity = Arc::new(Activity::new(false));
        drop(activity.begin_request(Version::HTTP_11));
        activity.read_bytes();
        let (at, expiry) = deadline(&activity).unwrap();
        assert_eq!(expiry, Expiry::SlowHead);
        assert!(about(at, HEADER));
        activity.read_bytes();
        assert_eq!(deadline(&activity), Some((at, expiry)), "later bytes do not move it");
    }

    #[test]
    fn over_http2_only_requests_count_so_pings_do_not_start_a_header_timeout() {
        let activity = Arc::new(Activity::new(false));
        drop(activity.begin_request(Version::HTTP_2));
        activity.read_bytes();
        assert_eq!(deadline(&activity).unwrap().1, Expiry::Idle);
    }

    #[test]
    fn a_connection_asked_to_close_is_never_idle_but_has_the_header_timeout_to_finish() {
        let activity = Arc::new(Activity::new(true));
        drop(activity.begin_request(Version::HTTP_2));
        let asked = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            activity.deadline(HEADER, IDLE, Some(asked)),
            Some((asked + HEADER, Expiry::SlowHead))
        );
    }

    #[tokio::test]
    async fn expiry_waits_out_a_request_and_then_the_idle_timeout() {
        let activity = Arc::new(Activity::new(false));
        let request = activity.begin_request(Version::HTTP_11);
        let short = Duration::from_millis(50);
        let mut expiry = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expiry(short, short, None).await }
        });
        assert!(
            tokio::time::timeout(short * 4, &mut expiry).await.is_err(),
            "still in flight well past both timeouts"
        );
        let ended = Instant::now();
        drop(request);
        assert_eq!(expiry.await.unwrap(), Expiry::Idle);
        assert!(Instant::now() >= ended + short);
    }
}

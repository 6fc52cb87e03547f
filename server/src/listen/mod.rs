//! The accept loop: HTTP/1 and HTTP/2 (with websocket upgrades) on one listener, plain or over TLS, with the
//! limits a server facing the internet needs.
//!
//! - **Time limits** (`activity.rs`): a request head must arrive within `HTTP_HEADER_READ_TIMEOUT_SECONDS` of a
//!   connection's start (after its TLS handshake, itself held to the same limit) or, on a kept-alive HTTP/1
//!   connection, of its first byte; a body within `HTTP_BODY_READ_TIMEOUT_SECONDS` of its head (`request.rs`);
//!   a connection with no request in flight is closed after `HTTP_IDLE_TIMEOUT_SECONDS`. hyper's own header
//!   timeout is off: it runs from the end of one request to the head of the next, so it would close idle
//!   connections at the header limit and leave no idle limit of its own (reverse proxies keep idle connections
//!   to their backends for a minute or more). A websocket leaves these limits with its upgrade.
//! - **Connections**: at most `MAX_CONNECTIONS` are served at once; past that new ones wait in the kernel's
//!   backlog while the open ones are served; an accept that fails (out of file descriptors) pauses accepting for
//!   a moment instead of spinning or stopping.
//! - **Client address**: each request carries its client's address (`ClientAddress`) for the per-address
//!   limits: the peer's, or the one a trusted proxy forwarded (`TrustedProxies`).
//!
//! On shutdown it stops accepting, lets each connection finish the requests in hand, and returns once every
//! connection is closed.

mod activity;
mod request;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use clap::Args;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::throttle::TrustedProxies;
use crate::tls::{self, Tls};
use activity::{Activity, Expiry, Watched};
use request::Requests;

/// Most connections served at once (websockets until their upgrade); keep it below the process's file-descriptor
/// limit.
pub const MAX_CONNECTIONS: usize = 25_000;
/// How long accepting pauses after an accept error, such as running out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The listener's settings: its time limits and the proxies it believes.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Seconds a client has to send a request head: from a new connection's start (and for its TLS handshake),
    /// or from the first byte of the next request on a kept-alive one.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_read_timeout_seconds: u64,

    /// Seconds a client has to send a request's whole body once its head arrived; a slower one gets 400.
    #[arg(long, env = "HTTP_BODY_READ_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_read_timeout_seconds: u64,

    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECONDS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_idle_timeout_seconds: u64,

    /// Reverse proxies whose X-Forwarded-For names the client, comma-separated addresses or CIDR ranges; none
    /// by default, so the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
}

/// The time limits of every connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    body: Duration,
    idle: Duration,
}

/// A bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<Tls>,
    timeouts: Timeouts,
    proxies: Arc<TrustedProxies>,
}

/// What every connection of one listener shares.
struct Shared {
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<tls::Acceptor>,
    timeouts: Timeouts,
    proxies: Arc<TrustedProxies>,
}

impl Listener {
    /// Serves on `tcp` with `args`' limits, over TLS when `tls` is given.
    pub fn new(tcp: TcpListener, args: &ListenArgs, tls: Option<Tls>) -> Listener {
        Listener {
            tcp,
            tls,
            timeouts: Timeouts {
                header: Duration::from_secs(args.http_header_read_timeout_seconds),
                body: Duration::from_secs(args.http_body_read_timeout_seconds),
                idle: Duration::from_secs(args.http_idle_timeout_seconds),
            },
            proxies: Arc::new(args.trusted_proxies.clone()),
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves `router` until `shutdown` is cancelled, then lets open requests finish.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's header timeout would also be the idle limit of HTTP/1; `Activity` keeps both instead.
        builder.http1().header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        let (acceptor, reloader) = match self.tls {
            Some(Tls { acceptor, reloader }) => (Some(acceptor), Some(reloader)),
            None => (None, None),
        };
        if let Some(reloader) = reloader {
            tokio::spawn(reloader.run(shutdown.clone()));
        }
        let shared = Arc::new(Shared {
            router,
            builder,
            tls: acceptor,
            timeouts: self.timeouts,
            proxies: self.proxies,
        });
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => permit.expect("the connection semaphore stays open"),
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed; pausing");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shared.connection(stream, peer.ip(), shutdown).await;
                drop(permit);
            });
        }
        // Every connection holds a permit until it is closed.
        let _ = connections.acquire_many(MAX_CONNECTIONS as u32).await;
    }
}

impl Shared {
    /// One connection from `peer`, through its TLS handshake when the listener speaks TLS.
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: IpAddr, shutdown: CancellationToken) {
        let Some(acceptor) = &self.tls else {
            return self.serve_connection(stream, false, peer, shutdown).await;
        };
        let handshake = tokio::select! {
            handshake = acceptor.accept(stream, self.timeouts.header) => handshake,
            () = shutdown.cancelled() => return,
        };
        match handshake {
            Ok(stream) => {
                let http2 = tls::negotiated_http2(&stream);
                self.serve_connection(stream, http2, peer, shutdown).await;
            }
            Err(error) => tracing::debug!(%error, %peer, "connection closed before its TLS handshake"),
        }
    }

    /// Serves the requests of one connection until it closes, is closed for its time limits, or the server
    /// shuts down and its requests are done.
    async fn serve_connection<IO>(&self, io: IO, http2: bool, peer: IpAddr, shutdown: CancellationToken)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new(http2));
        let requests = Arc::new(Requests {
            router: self.router.clone(),
            peer,
            proxies: self.proxies.clone(),
            body_timeout: self.timeouts.body,
            activity: activity.clone(),
        });
        let service = hyper::service::service_fn(move |request| requests.clone().respond(request));
        let io = TokioIo::new(Watched::new(io, activity.clone()));
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut closing = None;
        loop {
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                    return;
                }
                () = shutdown.cancelled(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now());
                }
                expiry = activity.expiry(self.timeouts.header, self.timeouts.idle, closing) => match expiry {
                    Expiry::Idle => {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now());
                    }
                    Expiry::SlowHead => {
                        tracing::debug!(%peer, "no request head in time; closing the connection");
                        return;
                    }
                },
            }
        }
    }
}

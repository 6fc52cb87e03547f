//! The accept loop: HTTP/1 and HTTP/2 (with websocket upgrades) on one listener, with the limits a server facing
//! the internet needs. A connection has `HEADER_READ_TIMEOUT` to send each request head, so a client trickling
//! header bytes cannot hold a connection open; at most `MAX_CONNECTIONS` are served at once, and past that new
//! ones wait in the kernel's backlog while the open ones are served; an accept that fails (out of file
//! descriptors) pauses accepting for a moment instead of spinning or stopping. Each request carries its client's
//! address (`ConnectInfo`) for the per-address limits.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// How long a client has to send a request head (its request line and headers).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once (websockets included); keep it below the process's file-descriptor limit.
pub const MAX_CONNECTIONS: usize = 25_000;
/// How long accepting pauses after an accept error, such as running out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open requests finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the connection semaphore stays open"),
            () = shutdown.cancelled() => break,
        };
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
        // Wraps the router's service, not each of its routes (as `Router::layer` would): cheap per connection.
        let service = TowerToHyperService::new(Extension(ConnectInfo(address)).layer(router.clone()));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %address, "connection ended with an error");
            }
            drop(permit);
        });
    }
    graceful.shutdown().await;
}

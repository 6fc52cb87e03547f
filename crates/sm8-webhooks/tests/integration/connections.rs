//! The listener's time limits, over real sockets: a request head must arrive within the header timeout (of a new
//! connection's start, or of a next head's first byte), a body within the body timeout of its head, and a
//! kept-alive connection with nothing in flight is closed after the idle timeout, while a slow request in
//! flight and a websocket are left alone. Each test sets its limits to a second or two.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use server::listen::{ListenArgs, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::common::realtime_client::{spawn_relay_with, PUBLIC_TOPIC};
use crate::common::receiver::PATIENCE;
use crate::common::{seed_event, serve_args, spawn_app_with};

const SLOW_HANDLER: Duration = Duration::from_millis(2_500);

/// The listener's settings with the given limits, in seconds.
fn limits(header: u64, body: u64, idle: u64) -> ListenArgs {
    ListenArgs {
        http_header_read_timeout_seconds: header,
        http_body_read_timeout_seconds: body,
        http_idle_timeout_seconds: idle,
        ..server::flags::defaults()
    }
}

/// Serves `/fast` and `/slow` (answered after `SLOW_HANDLER`) with `args`; stops when the guard is dropped.
async fn serve(args: ListenArgs) -> (SocketAddr, DropGuard) {
    let router = Router::new().route("/fast", get(|| async { "fast" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(SLOW_HANDLER).await;
            "slow"
        }),
    );
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = tcp.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(Listener::new(tcp, &args, None).serve(router, shutdown.clone()));
    (address, shutdown.drop_guard())
}

/// Sends a GET of `path` on `stream` and reads its answer: the status line and the body.
async fn get_on(stream: &mut TcpStream, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

/// One response with a `Content-Length` body: its status line and its body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let text = String::from_utf8_lossy(&received).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(str::to_owned)
                    })
                    .map_or(0, |value| value.trim().parse().unwrap());
                if body.len() >= length {
                    return (head.lines().next().unwrap().to_owned(), body.to_owned());
                }
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "closed before a whole response: {text}");
            received.extend_from_slice(&chunk[..read]);
        }
    })
    .await
    .expect("a response within the patience")
}

/// How long until the server closes `stream`; fails the test if it takes longer than `limit` and patience.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut rest = [0u8; 1024];
    let read = tokio::time::timeout(limit + PATIENCE, stream.read(&mut rest))
        .await
        .expect("the server closes the connection in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
    started.elapsed()
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let (address, _server) = serve(limits(1, 10, 2)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    assert_eq!(get_on(&mut stream, "/fast").await.1, "fast");
    let idle = closed_after(&mut stream, Duration::from_secs(2)).await;
    assert!(
        idle >= Duration::from_millis(1_500),
        "an idle connection outlives the header timeout (closed after {idle:?})"
    );
}

#[tokio::test]
async fn a_request_in_flight_past_the_idle_timeout_is_answered_and_its_connection_kept() {
    let (address, _server) = serve(limits(1, 1, 1)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let (status, body) = get_on(&mut stream, "/slow").await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "slow"));
    assert_eq!(
        get_on(&mut stream, "/fast").await.1,
        "fast",
        "the same connection serves on"
    );
    closed_after(&mut stream, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout() {
    let (address, _server) = serve(limits(1, 10, 10)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let silent = closed_after(&mut stream, Duration::from_secs(1)).await;
    assert!(
        silent < Duration::from_secs(10),
        "not left for the idle timeout: {silent:?}"
    );
}

#[tokio::test]
async fn a_client_trickling_its_request_head_is_cut_off_after_the_header_timeout() {
    let (address, _server) = serve(limits(1, 10, 10)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A header line every 200 ms, never the blank line that ends the head: the server must give up within its
    // header timeout, not wait for as long as the bytes keep coming.
    let deadline = Instant::now() + Duration::from_secs(1) + PATIENCE;
    let mut answer = [0u8; 256];
    loop {
        assert!(Instant::now() < deadline, "the trickling client was never cut off");
        tokio::select! {
            read = stream.read(&mut answer) => {
                assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(b"X-Trickle: 1\r\n").await.is_err() {
                    break;
                }
            }
        }
    }
    let mut other = TcpStream::connect(address).await.unwrap();
    assert_eq!(
        get_on(&mut other, "/fast").await.1,
        "fast",
        "everyone else is still served"
    );
}

#[tokio::test]
async fn a_webhook_whose_body_stops_coming_is_refused_with_400_and_nothing_is_stored() {
    let mut args = serve_args("");
    args.processor.workers = 0;
    args.listen = limits(10, 1, 10);
    let app = spawn_app_with(args).await;
    let body = seed_event("job", "job-1", "Work Order");
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /api/webhooks/sm8 HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         x-servicem8-signature: 00\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..body.len() / 2]).await.unwrap();
    let started = Instant::now();
    let (status, answer) = read_response(&mut stream).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered only once the body was late"
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("did not arrive within 1 s"),
        "{answer}"
    );
    closed_after(&mut stream, Duration::ZERO).await;
    assert_eq!(app.manage_json("action=stats").await["total"], 0);
}

#[tokio::test]
async fn a_quiet_websocket_outlives_every_http_time_limit() {
    let relay = spawn_relay_with(|args| args.listen = limits(1, 1, 1)).await;
    let mut client = relay.client("1.0.0").await;
    client.join_ok(PUBLIC_TOPIC, None).await;
    // Silence on the socket for longer than the header, body and idle timeouts together: what is under test
    // here is the passing of time itself.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // The heartbeat's reply comes back: the socket is open (a closed one fails `drain`).
    client.drain().await;
}

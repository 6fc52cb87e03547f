//! Real servers on port 0 for the senders' tests: one that records each request and answers as told, one that
//! never answers, an address that refuses, one that answers TLS in plain text; and the attempt they are sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::{Attempt, AttemptOutcome, AttemptReport, ErrorClass};
use crate::rules::MessageBody;

/// The delivery id of every test attempt.
pub const DELIVERY_ID: &str = "0190d7a8-5c1e-7e2a-9f3b-2a1c4d5e6f70";
/// When every test attempt is made.
pub const SENT_AT: OffsetDateTime = datetime!(2024-05-01 04:05:00 UTC);

pub fn attempt(body: &MessageBody) -> Attempt<'_> {
    Attempt {
        delivery_id: DELIVERY_ID,
        body,
        at: SENT_AT,
        subject: None,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// The class and message of a failed attempt; fails the test when it was delivered.
pub fn failure(report: &AttemptReport) -> (ErrorClass, &str) {
    match &report.outcome {
        AttemptOutcome::Failed(error) => (error.class, error.message.as_str()),
        AttemptOutcome::Delivered => panic!("delivered: {report:?}"),
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

/// An HTTP server that records every request and answers each with one status and body.
pub struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct Recording {
    received: Arc<Mutex<Vec<Received>>>,
    status: StatusCode,
    answer: &'static str,
}

impl Receiver {
    pub async fn answering(status: StatusCode, answer: &'static str) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let recording = Recording {
            received: received.clone(),
            status,
            answer,
        };
        let router = Router::new().fallback(record).with_state(recording);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { address, received }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The one request that came; fails the test when there were more or none.
    pub fn only_request(&self) -> Received {
        let received = self.received();
        assert_eq!(received.len(), 1, "{received:?}");
        received.into_iter().next().unwrap()
    }
}

async fn record(
    State(recording): State<Recording>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    recording.received.lock().unwrap().push(Received {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    (recording.status, recording.answer)
}

/// The URL of a server that takes connections and never says a word.
pub async fn silent_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    format!("http://{address}/hook")
}

/// An address nothing listens on any more: connections to it are refused.
pub async fn refusing_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The `https` URL of a server that answers in plain HTTP, so no TLS handshake can succeed.
pub async fn plain_text_https_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            let _ = connection.write_all(answer).await;
        }
    });
    format!("https://{address}/hook")
}

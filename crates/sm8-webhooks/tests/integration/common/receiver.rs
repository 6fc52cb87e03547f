//! A webhook receiver for tests of senders: it answers ServiceM8's subscribe handshake with the challenge and
//! hands every other delivery to the test. `/wrong` answers the handshake with something else.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use tokio::sync::mpsc;

/// Long enough for anything a test waits for; waits end as soon as the awaited thing happens.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One delivery: its content type and body.
#[derive(Debug)]
pub struct Received {
    pub content_type: String,
    pub body: String,
}

pub struct Receiver {
    /// `http://ADDR/hook`, which answers the handshake.
    pub url: String,
    /// `http://ADDR/wrong`, which answers the handshake with something other than the challenge.
    pub wrong_url: String,
    received: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let (sender, received) = mpsc::unbounded_channel();
        let router = Router::new()
            .route("/hook", post(receive))
            .route("/wrong", post(|| async { "not the challenge" }))
            .with_state(sender);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            url: format!("http://{address}/hook"),
            wrong_url: format!("http://{address}/wrong"),
            received,
        }
    }

    /// The next delivery; fails the test after `PATIENCE`.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("a delivery in time")
            .unwrap()
    }

    /// Whether no delivery is waiting.
    pub fn nothing_more(&mut self) -> bool {
        self.received.try_recv().is_err()
    }
}

async fn receive(State(sender): State<mpsc::UnboundedSender<Received>>, headers: HeaderMap, body: String) -> String {
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let fields = form_fields(&body);
    if fields.get("mode").map(String::as_str) == Some("subscribe") {
        return fields["challenge"].clone();
    }
    sender.send(Received { content_type, body }).unwrap();
    "ok".into()
}

/// Decodes a form-encoded body.
pub fn form_fields(body: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://form/?{body}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Waits until `condition` holds, checking often; fails after `PATIENCE`.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the condition holds in time");
}

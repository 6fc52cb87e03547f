//! A local HTTP receiver standing in for a destination (an ERP's webhook endpoint, Slack's incoming webhook):
//! it records every request and answers the status it is told to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<Received>>,
    status: AtomicU16,
}

pub struct Receiver {
    address: SocketAddr,
    recorded: Arc<Recorded>,
}

impl Receiver {
    /// A receiver on a free port answering `status` to every POST.
    pub async fn answering(status: u16) -> Receiver {
        let recorded = Arc::new(Recorded::default());
        recorded.status.store(status, Ordering::SeqCst);
        let router = Router::new()
            .route("/{*path}", post(record))
            .with_state(recorded.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { address, recorded }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.recorded.requests.lock().unwrap().clone()
    }
}

async fn record(State(recorded): State<Arc<Recorded>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    recorded.requests.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::from_u16(recorded.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

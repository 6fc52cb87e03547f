//! One API address for several simulated accounts, as the real ServiceM8 has one base URL for all of its accounts
//! and tells them apart by their credentials.
//!
//! The front listens on an address of its own and hands each request to the account whose API key it carries
//! (`X-API-Key`, or the key sent as a bearer token). That account answers exactly as on its own address: its
//! records, subscriptions, rate-limit windows, faults and counters. A request with a key no account has, or none,
//! is answered 401 by the front and reaches no account. OAuth access tokens and the `/oauth` pages stay on each
//! account's own address, and callbacks name that address in `resource_url`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::api::{self, keys_equal, MockApiError, Presented};
use super::state::MockState;
use super::MockHandle;

/// Starts a front on `bind` for `accounts`, which must have different API keys.
pub async fn start_front(bind: SocketAddr, accounts: &[&MockHandle]) -> anyhow::Result<MockFront> {
    let keys: std::collections::HashSet<&str> = accounts.iter().map(|account| account.api_key()).collect();
    anyhow::ensure!(
        keys.len() == accounts.len(),
        "the accounts behind one front need different API keys"
    );
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the mock ServiceM8 front to {bind}"))?;
    let address = listener
        .local_addr()
        .context("reading the mock ServiceM8 front's address")?;
    let front = Arc::new(Front {
        accounts: accounts
            .iter()
            .map(|account| (account.state.clone(), api::router(account.state.clone())))
            .collect(),
        refused: AtomicU64::new(0),
    });
    let router = Router::new().fallback(dispatch).with_state(front.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
            {
                tracing::error!(%error, "the mock ServiceM8 front stopped");
            }
        }
    });
    Ok(MockFront {
        front,
        address,
        shutdown,
        task: Some(task),
    })
}

/// A running front. Dropping it stops it; the accounts behind it keep running on their own addresses.
pub struct MockFront {
    front: Arc<Front>,
    address: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MockFront {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDR/api_1.0`: the one `SERVICEM8_BASE_URL` of every account behind the front.
    pub fn base_url(&self) -> String {
        format!("{}/api_1.0", self.origin())
    }

    /// `http://ADDR`, where `/webhook_subscriptions` lives.
    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests answered 401 because they carried no account's key.
    pub fn refused_count(&self) -> u64 {
        self.front.refused.load(Ordering::Relaxed)
    }

    /// Stops serving, lets in-flight requests end, and waits for that.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockFront {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

struct Front {
    /// Each account with the router its own listener serves.
    accounts: Vec<(Arc<MockState>, Router)>,
    refused: AtomicU64,
}

/// Hands the request to the account whose key it carries, or refuses it as an account would.
async fn dispatch(State(front): State<Arc<Front>>, request: Request) -> Response {
    let presented = api::presented_credential(request.headers());
    let key = match &presented {
        Some(Presented::ApiKey(key) | Presented::Bearer(key)) => Some(key.as_str()),
        None => None,
    };
    let account = key.and_then(|key| {
        front
            .accounts
            .iter()
            .find(|(state, _)| keys_equal(key, state.api_key.expose()))
    });
    match account {
        Some((_, router)) => match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => {
            front.refused.fetch_add(1, Ordering::Relaxed);
            match presented {
                Some(Presented::Bearer(_)) => MockApiError::InvalidToken.into_response(),
                _ => MockApiError::Unauthorized.into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::{MockConfig, ObjectKind};

    async fn account(api_key: &str, seed: u64) -> MockHandle {
        crate::start(MockConfig {
            api_key: server::secret::Secret::new(api_key),
            seed,
            companies: 2,
            jobs_per_company: 1,
            ..MockConfig::on_free_port()
        })
        .await
        .unwrap()
    }

    async fn job_uuids(response: reqwest::Response) -> BTreeSet<String> {
        assert_eq!(response.status(), 200);
        let jobs: Vec<Value> = response.json().await.unwrap();
        jobs.iter()
            .map(|job| job["uuid"].as_str().unwrap().to_owned())
            .collect()
    }

    fn front_address() -> SocketAddr {
        MockConfig::on_free_port().bind
    }

    #[tokio::test]
    async fn each_request_reaches_the_account_whose_key_it_carries() {
        let (north, south) = (account("north-key", 1).await, account("south-key", 2).await);
        let front = start_front(front_address(), &[&north, &south]).await.unwrap();
        let http = reqwest::Client::new();
        let jobs = format!("{}/job.json", front.base_url());

        let by_header = http.get(&jobs).header("x-api-key", "north-key").send().await.unwrap();
        let north_jobs: BTreeSet<String> = north.uuids(ObjectKind::Job).into_iter().collect();
        assert_eq!(job_uuids(by_header).await, north_jobs);
        let as_bearer = http.get(&jobs).bearer_auth("south-key").send().await.unwrap();
        let south_jobs: BTreeSet<String> = south.uuids(ObjectKind::Job).into_iter().collect();
        assert_eq!(job_uuids(as_bearer).await, south_jobs);
        assert!(
            north_jobs.is_disjoint(&south_jobs),
            "the accounts hold different records"
        );

        let south_job = south.uuids(ObjectKind::Job)[0].clone();
        let elsewhere = http
            .get(format!("{}/job/{south_job}.json", front.base_url()))
            .header("x-api-key", "north-key")
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), 404, "one account's key finds nothing of another's");
        assert_eq!((north.request_count(), south.request_count()), (2, 1));
        assert_eq!(front.refused_count(), 0);
    }

    #[tokio::test]
    async fn a_key_no_account_has_is_refused_with_a_401_and_reaches_no_account() {
        let (north, south) = (account("north-key", 1).await, account("south-key", 2).await);
        let front = start_front(front_address(), &[&north, &south]).await.unwrap();
        let http = reqwest::Client::new();
        let jobs = format!("{}/job.json", front.base_url());

        let unknown = http.get(&jobs).header("x-api-key", "east-key").send().await.unwrap();
        assert_eq!(unknown.status(), 401);
        let refusal: Value = unknown.json().await.unwrap();
        assert_eq!(refusal["errorCode"], 401);
        assert_eq!(http.get(&jobs).send().await.unwrap().status(), 401);
        let bearer = http.get(&jobs).bearer_auth("made-up").send().await.unwrap();
        assert_eq!(bearer.status(), 401);

        assert_eq!(front.refused_count(), 3);
        assert_eq!((north.request_count(), south.request_count()), (0, 0));
    }

    #[tokio::test]
    async fn accounts_behind_one_front_need_different_keys() {
        let (first, second) = (account("same-key", 1).await, account("same-key", 2).await);
        let refused = start_front(front_address(), &[&first, &second]).await;
        assert!(refused.is_err());
    }
}

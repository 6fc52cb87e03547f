//! One request on its way through the router: counted in flight until its response body is done, given its
//! client's address, and its body given a deadline (`HTTP_BODY_READ_TIMEOUT_SECONDS` from the head's arrival).
//! A body that misses it fails to read, so the handler answers a clean 400 with the reason, and hyper closes the
//! connection rather than wait for the rest.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::{BoxError, Router};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::Sleep;
use tower::ServiceExt;

use super::activity::{Activity, InFlight};
use crate::throttle::{ClientAddress, TrustedProxies};

/// What every request of one connection needs.
pub struct Requests {
    pub router: Router,
    pub peer: IpAddr,
    pub proxies: Arc<TrustedProxies>,
    pub body_timeout: Duration,
    pub activity: Arc<Activity>,
}

impl Requests {
    pub async fn respond(self: Arc<Self>, mut request: Request<Incoming>) -> Result<Response<Answer>, Infallible> {
        let in_flight = self.activity.begin_request(request.version());
        let client = self.proxies.client_address(self.peer, request.headers());
        request.extensions_mut().insert(ClientAddress(Some(client)));
        let request = request.map(|body| {
            // A body-less request (a websocket upgrade among them) has nothing to wait for.
            if body.is_end_stream() {
                Body::new(body)
            } else {
                Body::new(BodyDeadline {
                    body,
                    deadline: Box::pin(tokio::time::sleep(self.body_timeout)),
                    timeout: self.body_timeout,
                })
            }
        });
        let Ok(response) = self.router.clone().oneshot(request).await;
        Ok(response.map(|body| Answer {
            body,
            _in_flight: in_flight,
        }))
    }
}

/// A request body that fails once its deadline passes.
struct BodyDeadline {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

/// The error a late body reads as.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyTimedOut(Duration);

impl HttpBody for BodyDeadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimedOut(self.timeout).into())));
        }
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its request counted in flight until hyper has taken its last byte.
pub struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

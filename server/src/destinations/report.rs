//! What one attempt at a delivery came to, and the pieces every sender shares to find out: the HTTP answer read
//! up to an excerpt, and errors sorted into the classes the delivery worker and the dashboard show.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;

/// The most of an answer a report keeps.
pub const MAX_EXCERPT_BYTES: usize = 4096;

/// One attempt to deliver one message to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub outcome: AttemptOutcome,
    /// The HTTP status the destination answered with; none for email, and when no answer came.
    pub status: Option<u16>,
    /// The start of the answer, at most [`MAX_EXCERPT_BYTES`]: an HTTP body, or the SMTP server's last reply.
    pub response_excerpt: Option<String>,
    /// From the start of the attempt to its report.
    pub duration: Duration,
}

/// Whether the destination took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Failed(AttemptError),
}

/// Why an attempt failed; shown as `class: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", class.as_str())]
pub struct AttemptError {
    pub class: ErrorClass,
    /// For people: `HTTP 503 Service Unavailable`, `connection refused`, Twilio's or the SMTP server's words.
    pub message: String,
}

/// The kinds of failure, coarse enough to count and to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The destination answered with a status other than 2xx.
    HttpStatus,
    /// No (complete) answer within the time allowed.
    Timeout,
    /// No connection, or it broke: DNS, refused, reset.
    Network,
    /// The TLS handshake failed: an untrusted or mismatched certificate, or not TLS at all.
    Tls,
    /// The SMTP server refused the sign-in, a sender, a recipient or the message.
    Smtp,
    /// The message cannot be sent this way whatever the destination does (an email without a body, say):
    /// retrying will not help.
    InvalidMessage,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::HttpStatus => "http_status",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Network => "network",
            ErrorClass::Tls => "tls",
            ErrorClass::Smtp => "smtp",
            ErrorClass::InvalidMessage => "invalid_message",
        }
    }
}

impl AttemptReport {
    pub fn is_delivered(&self) -> bool {
        self.outcome == AttemptOutcome::Delivered
    }

    /// The error, when the attempt failed.
    pub fn error(&self) -> Option<&AttemptError> {
        match &self.outcome {
            AttemptOutcome::Delivered => None,
            AttemptOutcome::Failed(error) => Some(error),
        }
    }
}

/// A report before its duration is known: what each kind's sender returns.
#[derive(Debug)]
pub(super) struct Reply {
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    pub response_excerpt: Option<String>,
}

impl Reply {
    pub fn failed(class: ErrorClass, message: impl Into<String>) -> Reply {
        Reply {
            outcome: AttemptOutcome::Failed(AttemptError {
                class,
                message: message.into(),
            }),
            status: None,
            response_excerpt: None,
        }
    }

    pub fn into_report(self, duration: Duration) -> AttemptReport {
        AttemptReport {
            outcome: self.outcome,
            status: self.status,
            response_excerpt: self.response_excerpt,
            duration,
        }
    }
}

/// The reply to an HTTP request: delivered on 2xx, otherwise an `http_status` failure whose message is the
/// status and, when `explain` finds one in the answer's excerpt, the destination's own words.
pub(super) async fn http_reply(
    sent: Result<reqwest::Response, reqwest::Error>,
    explain: impl Fn(&str) -> Option<String>,
) -> Reply {
    let response = match sent {
        Ok(response) => response,
        Err(error) => return request_failed(error),
    };
    let status = response.status();
    // The status decides; a body that breaks off after it leaves the report without an excerpt.
    let response_excerpt = read_excerpt(response).await.ok().flatten();
    let outcome = if status.is_success() {
        AttemptOutcome::Delivered
    } else {
        let message = match response_excerpt.as_deref().and_then(explain) {
            Some(explanation) => format!("HTTP {status}: {explanation}"),
            None => format!("HTTP {status}"),
        };
        AttemptOutcome::Failed(AttemptError {
            class: ErrorClass::HttpStatus,
            message,
        })
    };
    Reply {
        outcome,
        status: Some(status.as_u16()),
        response_excerpt,
    }
}

/// A request that got no answer, sorted by the deepest cause reqwest reports.
fn request_failed(error: reqwest::Error) -> Reply {
    let error = error.without_url();
    let class = if error.is_timeout() {
        ErrorClass::Timeout
    } else if caused_by_tls(&error) {
        ErrorClass::Tls
    } else if error.is_builder() {
        ErrorClass::InvalidMessage
    } else {
        ErrorClass::Network
    };
    Reply::failed(class, describe(&error))
}

/// Whether rustls failed somewhere beneath the error. It travels inside an `io::Error` (at times one inside
/// another), whose `source` skips what it wraps, so the walk steps into each `io::Error` itself.
pub(super) fn caused_by_tls(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<rustls::Error>() {
            return true;
        }
        cause = match error.downcast_ref::<io::Error>() {
            Some(io_error) => io_error.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    false
}

/// An error and its causes on one line: reqwest's own message says only that the request failed.
pub(super) fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = error.source();
    }
    message
}

/// Reads the answer's body up to [`MAX_EXCERPT_BYTES`]; none when it is empty.
async fn read_excerpt(mut response: reqwest::Response) -> Result<Option<String>, reqwest::Error> {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_EXCERPT_BYTES {
        match response.chunk().await? {
            Some(chunk) => bytes.extend_from_slice(&chunk),
            None => break,
        }
    }
    let text = excerpt(&bytes);
    Ok((!text.is_empty()).then_some(text))
}

/// At most [`MAX_EXCERPT_BYTES`] of `bytes` as text, cut on a character boundary; bytes that are not UTF-8
/// become U+FFFD, except a character the cut split, which is left out.
pub(super) fn excerpt(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(MAX_EXCERPT_BYTES)];
    let head = match std::str::from_utf8(head) {
        Err(error) if head.len() < bytes.len() && error.error_len().is_none() => &head[..error.valid_up_to()],
        _ => head,
    };
    let mut text = String::from_utf8_lossy(head).into_owned();
    let mut end = text.len().min(MAX_EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// The first `max_chars` characters of `text`.
pub(super) fn first_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests;

//! `AppError`: why a server function failed, as the browser sees it, and the one HTTP status each reason answers
//! with — from a server function (the server sets it on every server function's error response) and from the
//! server's REST API alike.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Sign in to continue.")]
    NotSignedIn,
    #[error("That admin token is not valid.")]
    InvalidAdminToken,
    #[error("That email and password do not match.")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    /// The account is disabled: it takes no webhooks and processes nothing.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("The server cannot answer right now: {0}")]
    Unavailable(String),
    #[error("Too many attempts: try again in {0} s.")]
    RateLimited(u64),
    #[error("Request failed: {0}")]
    Request(ServerFnErrorErr),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Request(value)
    }
}

impl AppError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotSignedIn | AppError::InvalidAdminToken | AppError::InvalidCredentials => 401,
            AppError::Forbidden(_) => 403,
            AppError::Gone(_) => 410,
            AppError::InvalidInput(_) => 400,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::RateLimited(_) => 429,
            // Arguments the server function could not read are the caller's to fix.
            AppError::Request(
                ServerFnErrorErr::Args(_)
                | ServerFnErrorErr::MissingArg(_)
                | ServerFnErrorErr::Deserialization(_)
                | ServerFnErrorErr::UnsupportedRequestMethod(_),
            ) => 400,
            AppError::Unavailable(_) | AppError::Request(_) => 503,
        }
    }
}

/// Makes the page being rendered on the server answer `error`'s status, as the page shows it (the route must
/// render with `SsrMode::Async`, so that the status is set before the head is sent). Nothing in the browser.
pub fn answer_with_status(error: &AppError) {
    #[cfg(feature = "ssr")]
    if let (Some(response), Ok(status)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        http::StatusCode::from_u16(error.status()),
    ) {
        response.set_status(status);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = error;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_answers_a_client_or_unavailable_status_never_500() {
        let errors = [
            AppError::NotSignedIn,
            AppError::InvalidAdminToken,
            AppError::InvalidCredentials,
            AppError::Forbidden("viewer".into()),
            AppError::Gone("disabled".into()),
            AppError::InvalidInput("bad".into()),
            AppError::NotFound("gone".into()),
            AppError::Conflict("busy".into()),
            AppError::Unavailable("down".into()),
            AppError::RateLimited(3),
            AppError::Request(ServerFnErrorErr::Args("not json".into())),
            AppError::Request(ServerFnErrorErr::ServerError("broke".into())),
        ];
        let statuses: Vec<u16> = errors.iter().map(AppError::status).collect();
        assert_eq!(statuses, [401, 401, 401, 403, 410, 400, 404, 409, 503, 429, 400, 503]);
    }
}

//! Liveness (`/healthz`) and readiness (`/readyz`: the database answers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(alive)).routes(routes!(ready))
}

/// How the node is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `unavailable`.
    status: &'static str,
    /// Why the node is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "The process is alive",
    responses((status = 200, body = Health))
)]
async fn alive() -> Json<Health> {
    Json(Health {
        status: "ok",
        error: None,
    })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "The node can serve: its database answers",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ready",
                error: None,
            }),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    error: Some("database unreachable"),
                }),
            )
        }
    }
}

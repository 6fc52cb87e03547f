//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`: the receiver, the management API,
//! the portal's attachment download, health, and the realtime REST broadcast. Each documented operation is
//! registered by `utoipa_axum`'s `OpenApiRouter` from the annotated handler that serves it, so the document lists
//! exactly the routes the server answers; the shapes come from the types the handlers serialize.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";

/// The document's description and credentials; the operations are added by the routers that serve them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SM8 Webhooks",
        description = "Receives ServiceM8 webhooks, stores each event durably, mirrors the records they name and \
                       relays live updates. Errors answer a status and `{\"error\": reason}`."
    ),
    modifiers(&Credentials),
    components(schemas(ErrorBody)),
    tags(
        (name = "receiver", description = "Deliveries from ServiceM8: object and event callbacks, add-on JWTs, \
                                           the seed format and Standard Webhooks."),
        (name = "management", description = "Reads and changes for scripts: the dashboard's actions, checked \
                                             against the caller's role in the account and audited."),
        (name = "portal", description = "The client portal's downloads."),
        (name = "health", description = "Liveness and readiness for load balancers and orchestrators."),
        (name = "realtime", description = "Supabase Realtime's REST broadcast for server-side senders."),
    )
)]
pub struct ApiDoc;

/// The credentials the operations name in their `security`.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("ADMIN_TOKEN, or a personal API token (`sm8_…`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "dashboard_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                app::session::SessionCookie::Admin.name(),
                "A dashboard session (requests from the dashboard's own pages only)",
            ))),
        );
        components.add_security_scheme(
            "portal_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                app::session::SessionCookie::Portal.name(),
                "A client portal session, opened by a portal link",
            ))),
        );
        components.add_security_scheme(
            "realtime_apikey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "apikey",
                "The realtime anon key; send the access token as `Authorization: Bearer`",
            ))),
        );
    }
}

/// Serves `document` as JSON at `DOCUMENT_PATH`.
pub fn router(document: &Document) -> Result<Router, serde_json::Error> {
    let json: Arc<str> = document.to_json()?.into();
    Ok(Router::new().route(
        DOCUMENT_PATH,
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response() }
        }),
    ))
}

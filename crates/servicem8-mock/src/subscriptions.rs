//! Webhook subscriptions as the real API takes them: form-encoded `POST /webhook_subscriptions/object`
//! (`object`, `fields`, `callback_url`, `unique_id`) and `/webhook_subscriptions/event` (`event`, `callback_url`),
//! `GET /webhook_subscriptions`, and `DELETE` with the same form fields.
//!
//! Before storing a subscription the account checks the callback URL with the handshake: it posts
//! `mode=subscribe&challenge=<random>` and wants the challenge back as the body. A subscription for an object (or
//! event) and callback URL that already has one replaces it; fields are not merged, that is the client's job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::api::MockApiError;
use super::state::{lock, MockState};
use server::ingest::formats::event::EVENT_NAMES;

/// ServiceM8 wants a callback answered within this time.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Topic {
    /// Changes to the given fields of an object type (lowercase); no fields means every field.
    Object {
        object: String,
        #[serde(serialize_with = "comma_list")]
        fields: Vec<String>,
    },
    /// One of `EVENT_NAMES`.
    Event { event: String },
}

/// One stored webhook subscription, as `GET /webhook_subscriptions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    #[serde(flatten)]
    pub topic: Topic,
    pub callback_url: String,
    pub unique_id: Option<String>,
}

impl Subscription {
    /// Whether a change to `fields` of `object` is for this subscription.
    pub fn wants_object_change(&self, object: &str, changed_fields: &[String]) -> bool {
        match &self.topic {
            Topic::Object {
                object: subscribed,
                fields,
            } => {
                subscribed == object && (fields.is_empty() || changed_fields.iter().any(|field| fields.contains(field)))
            }
            Topic::Event { .. } => false,
        }
    }

    fn replaces(&self, other: &Subscription) -> bool {
        self.topic_key() == other.topic_key() && self.callback_url == other.callback_url
    }

    fn topic_key(&self) -> (&str, &str) {
        match &self.topic {
            Topic::Object { object, .. } => ("object", object),
            Topic::Event { event } => ("event", event),
        }
    }
}

fn comma_list<S: serde::Serializer>(fields: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&fields.join(","))
}

pub(crate) fn router() -> Router<Arc<MockState>> {
    Router::new()
        .route("/webhook_subscriptions", get(list_subscriptions))
        .route(
            "/webhook_subscriptions/object",
            post(subscribe_object).delete(unsubscribe_object),
        )
        .route(
            "/webhook_subscriptions/event",
            post(subscribe_event).delete(unsubscribe_event),
        )
}

type FormFields = Result<Form<HashMap<String, String>>, FormRejection>;

/// The non-empty value of `name`; a body that is not a form has none, as with the real API.
fn field<'a>(form: &'a FormFields, name: &str) -> Option<&'a str> {
    let Ok(Form(fields)) = form else { return None };
    fields
        .get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

async fn list_subscriptions(State(state): State<Arc<MockState>>) -> Json<Vec<Subscription>> {
    Json(lock(&state.subscriptions).clone())
}

async fn subscribe_object(State(state): State<Arc<MockState>>, form: FormFields) -> Result<Json<Value>, MockApiError> {
    let object = field(&form, "object")
        .ok_or_else(|| MockApiError::BadRequest("Please specify an object for subscription".into()))?
        .to_ascii_lowercase();
    let fields = field(&form, "fields")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let subscription = subscription(&form, Topic::Object { object, fields })?;
    store(&state, subscription).await
}

async fn subscribe_event(State(state): State<Arc<MockState>>, form: FormFields) -> Result<Json<Value>, MockApiError> {
    let event = field(&form, "event")
        .ok_or_else(|| MockApiError::BadRequest("Please specify an event for subscription".into()))?
        .to_ascii_lowercase();
    if !EVENT_NAMES.contains(&event.as_str()) {
        return Err(MockApiError::BadRequest(format!("Unknown event {event}")));
    }
    let subscription = subscription(&form, Topic::Event { event })?;
    store(&state, subscription).await
}

fn subscription(form: &FormFields, topic: Topic) -> Result<Subscription, MockApiError> {
    let callback_url = field(form, "callback_url")
        .ok_or_else(|| MockApiError::BadRequest("Please specify a callback_url for subscription".into()))?;
    let parsed = reqwest::Url::parse(callback_url)
        .map_err(|error| MockApiError::BadRequest(format!("Invalid callback_url: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(MockApiError::BadRequest(
            "Invalid callback_url: must be http or https".into(),
        ));
    }
    Ok(Subscription {
        topic,
        callback_url: callback_url.to_owned(),
        unique_id: field(form, "unique_id").map(str::to_owned),
    })
}

/// Performs the handshake, then stores the subscription in place of the one it replaces.
async fn store(state: &MockState, subscription: Subscription) -> Result<Json<Value>, MockApiError> {
    handshake(&state.http, &subscription.callback_url)
        .await
        .map_err(MockApiError::BadRequest)?;
    let mut subscriptions = lock(&state.subscriptions);
    match subscriptions.iter_mut().find(|stored| stored.replaces(&subscription)) {
        Some(stored) => *stored = subscription,
        None => subscriptions.push(subscription),
    }
    Ok(Json(json!({"success": true})))
}

/// Posts `mode=subscribe&challenge=X` to `callback_url` and requires `X` back; the error says why not.
pub(crate) async fn handshake(http: &reqwest::Client, callback_url: &str) -> Result<(), String> {
    let challenge = hex::encode(rand::random::<[u8; 16]>());
    let response = http
        .post(callback_url)
        .form(&[("mode", "subscribe"), ("challenge", challenge.as_str())])
        .timeout(CALLBACK_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("Callback URL verification failed: {error}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("Callback URL verification failed: it answered {status}"));
    }
    let body = response
        .text()
        .await
        .map_err(|error| format!("Callback URL verification failed: {error}"))?;
    if body.trim() != challenge {
        return Err("Callback URL verification failed: the response was not the challenge".into());
    }
    Ok(())
}

async fn unsubscribe_object(
    State(state): State<Arc<MockState>>,
    form: FormFields,
) -> Result<Json<Value>, MockApiError> {
    let object = field(&form, "object")
        .ok_or_else(|| MockApiError::BadRequest("Please specify an object for subscription".into()))?
        .to_ascii_lowercase();
    remove(&state, "object", &object, field(&form, "callback_url"))
}

async fn unsubscribe_event(State(state): State<Arc<MockState>>, form: FormFields) -> Result<Json<Value>, MockApiError> {
    let event = field(&form, "event")
        .ok_or_else(|| MockApiError::BadRequest("Please specify an event for subscription".into()))?
        .to_ascii_lowercase();
    remove(&state, "event", &event, field(&form, "callback_url"))
}

/// Removes the subscriptions to `name` (for `callback_url` only, when given).
fn remove(state: &MockState, kind: &str, name: &str, callback_url: Option<&str>) -> Result<Json<Value>, MockApiError> {
    let mut subscriptions = lock(&state.subscriptions);
    let before = subscriptions.len();
    subscriptions.retain(|subscription| {
        subscription.topic_key() != (kind, name) || callback_url.is_some_and(|url| url != subscription.callback_url)
    });
    if subscriptions.len() == before {
        return Err(MockApiError::NotFound(format!("No subscription to {kind} {name}")));
    }
    Ok(Json(json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_subscription(object: &str, fields: &[&str], callback_url: &str) -> Subscription {
        Subscription {
            topic: Topic::Object {
                object: object.into(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            },
            callback_url: callback_url.into(),
            unique_id: None,
        }
    }

    #[test]
    fn a_subscription_lists_its_fields_as_a_comma_list() {
        let listed = serde_json::to_value(object_subscription("job", &["status", "active"], "http://x/hook")).unwrap();
        assert_eq!(
            listed,
            json!({"type": "object", "object": "job", "fields": "status,active", "callback_url": "http://x/hook",
                   "unique_id": null})
        );
    }

    #[test]
    fn only_changes_to_subscribed_fields_are_wanted() {
        let subscription = object_subscription("job", &["status"], "http://x/hook");
        assert!(subscription.wants_object_change("job", &["status".into(), "date".into()]));
        assert!(!subscription.wants_object_change("job", &["job_description".into()]));
        assert!(!subscription.wants_object_change("company", &["status".into()]));
        assert!(object_subscription("job", &[], "http://x/hook").wants_object_change("job", &["any".into()]));
    }

    #[test]
    fn the_same_object_and_callback_url_replace_a_subscription() {
        let first = object_subscription("job", &["status"], "http://x/hook");
        assert!(object_subscription("job", &["active"], "http://x/hook").replaces(&first));
        assert!(!object_subscription("job", &["status"], "http://y/hook").replaces(&first));
        assert!(!object_subscription("company", &["status"], "http://x/hook").replaces(&first));
    }
}

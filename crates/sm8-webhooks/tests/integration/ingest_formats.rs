//! Every delivery format the receiver accepts, over real HTTP: the subscribe handshake, ServiceM8 object
//! callbacks (JSON and form), the URL token, add-on JWTs, event webhooks and Standard Webhooks signatures.

use std::collections::BTreeSet;

use crate::common::{serve_args, spawn_app, spawn_app_with, TestApp, WEBHOOK_SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use server::ingest::signature::sign;
use server::ingest::standard;
use server::secret::Secret;

const URL_TOKEN: &str = "callback-url-token";
const APP_SECRET: &str = "add-on-app-secret";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROTATED_SECRET: &str = "whsec_bmV4dCBzZWNyZXQgYWZ0ZXIgcm90YXRpb24=";

/// A request to the receiver: body, content type, query and extra headers.
struct Delivery<'a> {
    body: String,
    content_type: &'a str,
    query: String,
    headers: Vec<(&'static str, String)>,
}

impl<'a> Delivery<'a> {
    fn json(body: impl Into<String>) -> Self {
        Delivery {
            body: body.into(),
            content_type: "application/json",
            query: String::new(),
            headers: Vec::new(),
        }
    }

    fn form(body: impl Into<String>) -> Self {
        Delivery {
            content_type: "application/x-www-form-urlencoded",
            ..Delivery::json(body)
        }
    }

    fn query(mut self, query: &str) -> Self {
        self.query = format!("?{query}");
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Signed with the test `WEBHOOK_SECRET` (the seed's `x-servicem8-signature`).
    fn hmac_signed(self) -> Self {
        let signature = sign(WEBHOOK_SECRET.as_bytes(), self.body.as_bytes());
        self.header("x-servicem8-signature", signature)
    }

    /// Signed the Standard Webhooks way with `secret`, sent `age_seconds` ago.
    fn standard_signed(self, id: &str, secret: &str, age_seconds: i64) -> Self {
        let sent_at = time::OffsetDateTime::now_utc().unix_timestamp() - age_seconds;
        let signature = standard::sign(secret, id, sent_at, self.body.as_bytes());
        self.header(standard::ID_HEADER, id)
            .header(standard::TIMESTAMP_HEADER, sent_at.to_string())
            .header(standard::SIGNATURE_HEADER, signature)
    }

    async fn send(self, app: &TestApp) -> reqwest::Response {
        let mut request = app
            .client
            .post(app.url(&format!("/api/webhooks/sm8{}", self.query)))
            .header("content-type", self.content_type)
            .body(self.body);
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }
}

async fn spawn_app_with_url_token() -> TestApp {
    let mut args = serve_args("");
    args.ingest.webhook_url_token = Some(Secret::new(URL_TOKEN));
    spawn_app_with(args).await
}

async fn spawn_app_with_app_secret() -> TestApp {
    let mut args = serve_args("");
    args.ingest.servicem8_app_secret = Some(Secret::new(APP_SECRET));
    spawn_app_with(args).await
}

async fn spawn_app_with_standard_secrets() -> TestApp {
    let mut args = serve_args("");
    args.ingest.standard_webhook_secrets = vec![Secret::new(STANDARD_SECRET), Secret::new(ROTATED_SECRET)];
    spawn_app_with(args).await
}

/// A ServiceM8 object callback for `object` with one entry per uuid.
fn object_callback(object: &str, uuids: &[&str]) -> Value {
    let entries: Vec<Value> = uuids
        .iter()
        .map(|uuid| json!({"uuid": uuid, "changed_fields": ["status", "edit_date"], "time": "2024-03-01 09:30:00"}))
        .collect();
    json!({"object": object, "entry": entries, "resource_url": format!("https://api.servicem8.com/api_1.0/{object}.json")})
}

/// `(object_type, object_uuid, event_type)` of every stored event.
async fn stored_events(app: &TestApp) -> BTreeSet<(String, String, String)> {
    let listed = app.manage_json("action=events").await;
    listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            let text = |field: &str| event[field].as_str().unwrap().to_owned();
            (text("object_type"), text("object_uuid"), text("event_type"))
        })
        .collect()
}

fn expected(events: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    events
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

async fn stored_count(app: &TestApp) -> i64 {
    app.manage_json("action=stats").await["total"].as_i64().unwrap()
}

async fn receipt(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn assert_refused(response: reqwest::Response, reason_contains: &str) {
    assert_eq!(response.status(), 401);
    let reason: Value = response.json().await.unwrap();
    assert!(reason["error"].as_str().unwrap().contains(reason_contains), "{reason}");
}

fn addon_jwt(algorithm: Algorithm, secret: &str, event_args: Value) -> String {
    let claims = json!({
        "eventVersion": "1.0",
        "eventName": "webhook_subscription",
        "auth": {"accountUUID": "account-1", "staffUUID": "staff-1", "accessToken": "live-access-token",
                 "accessTokenExpiry": 1_900_000_000},
        "eventArgs": event_args,
    });
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_subscribe_handshake_is_answered_with_the_challenge_as_plain_text() {
    let app = spawn_app().await;
    let response = Delivery::form("mode=subscribe&challenge=chal-123").send(&app).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(response.text().await.unwrap(), "chal-123");

    let as_json = Delivery::json(r#"{"mode":"subscribe","challenge":"chal-456"}"#)
        .send(&app)
        .await;
    assert_eq!(as_json.text().await.unwrap(), "chal-456");
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn with_a_url_token_configured_the_handshake_must_carry_it() {
    let app = spawn_app_with_url_token().await;
    let handshake = || Delivery::form("mode=subscribe&challenge=chal-123");
    assert_refused(handshake().send(&app).await, "token").await;
    assert_refused(handshake().query("token=guess").send(&app).await, "token").await;
    let response = handshake().query(&format!("token={URL_TOKEN}")).send(&app).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "chal-123");
}

#[tokio::test]
async fn an_object_callback_stores_one_event_per_entry_under_the_canonical_object_type() {
    let app = spawn_app().await;
    let body = object_callback("JobActivity", &["act-1", "act-2"]).to_string();
    let receipt = receipt(Delivery::json(body).send(&app).await).await;
    assert_eq!(receipt["received"], 2);
    assert_eq!(receipt["duplicates"], 0);
    assert_eq!(
        stored_events(&app).await,
        expected(&[("jobactivity", "act-1", "updated"), ("jobactivity", "act-2", "updated")])
    );
}

#[tokio::test]
async fn a_form_encoded_object_callback_is_stored_like_a_json_one() {
    let app = spawn_app().await;
    let entries = object_callback("x", &["att-1"])["entry"].to_string();
    let form = format!("object=Attachment&entry={}&resource_url=x", urlencode(&entries));
    assert_eq!(receipt(Delivery::form(form).send(&app).await).await["received"], 1);

    let as_one_field = format!("data={}", urlencode(&object_callback("JOB", &["job-1"]).to_string()));
    assert_eq!(
        receipt(Delivery::form(as_one_field).send(&app).await).await["received"],
        1
    );

    assert_eq!(
        stored_events(&app).await,
        expected(&[("attachment", "att-1", "updated"), ("job", "job-1", "updated")])
    );
}

#[tokio::test]
async fn a_redelivered_object_callback_is_counted_as_a_duplicate() {
    let app = spawn_app().await;
    let body = object_callback("job", &["job-1", "job-2"]).to_string();
    let first = receipt(Delivery::json(body.clone()).send(&app).await).await;
    let second = receipt(Delivery::json(body).send(&app).await).await;
    assert_eq!(second["duplicates"], 2);
    assert_eq!(second["event_ids"], first["event_ids"]);
    assert_eq!(stored_count(&app).await, 2);
}

#[tokio::test]
async fn malformed_object_callbacks_get_400() {
    let app = spawn_app().await;
    for body in [
        json!({"object": "job", "entry": []}),
        json!({"object": "job", "entry": [{"changed_fields": []}]}),
    ] {
        let response = Delivery::json(body.to_string()).send(&app).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn with_a_url_token_configured_unsigned_callbacks_must_carry_it() {
    let app = spawn_app_with_url_token().await;
    let callback = || Delivery::json(object_callback("job", &["job-1"]).to_string());
    assert_refused(callback().send(&app).await, "token").await;
    assert_refused(callback().query("token=").send(&app).await, "token").await;
    assert_refused(
        callback().query(&format!("token={URL_TOKEN}x")).send(&app).await,
        "token",
    )
    .await;
    assert_eq!(stored_count(&app).await, 0);

    let accepted = receipt(callback().query(&format!("token={URL_TOKEN}")).send(&app).await).await;
    assert_eq!(accepted["received"], 1);
    assert_eq!(stored_events(&app).await, expected(&[("job", "job-1", "updated")]));
}

#[tokio::test]
async fn a_wrong_signature_on_a_callback_is_refused_even_with_the_right_url_token() {
    let app = spawn_app_with_url_token().await;
    let response = Delivery::json(object_callback("job", &["job-1"]).to_string())
        .query(&format!("token={URL_TOKEN}"))
        .header("x-servicem8-signature", "0".repeat(64))
        .send(&app)
        .await;
    assert_refused(response, "signature").await;
}

#[tokio::test]
async fn an_addon_callback_signed_with_the_app_secret_is_stored() {
    let app = spawn_app_with_app_secret().await;
    let jwt = addon_jwt(
        Algorithm::HS256,
        APP_SECRET,
        object_callback("Job", &["job-1", "job-2"]),
    );
    assert_eq!(
        receipt(Delivery::form(jwt.clone()).send(&app).await).await["received"],
        2
    );
    assert_eq!(
        stored_events(&app).await,
        expected(&[("job", "job-1", "updated"), ("job", "job-2", "updated")])
    );
    let as_field = receipt(Delivery::form(format!("jwt={jwt}")).send(&app).await).await;
    assert_eq!(as_field["duplicates"], 2);
}

#[tokio::test]
async fn an_addon_callback_with_another_secret_or_no_signature_is_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let app = spawn_app_with_app_secret().await;
    let wrong_secret = addon_jwt(
        Algorithm::HS256,
        "not-the-app-secret",
        object_callback("job", &["job-1"]),
    );
    assert_refused(Delivery::form(wrong_secret).send(&app).await, "JWT").await;

    let signed = addon_jwt(Algorithm::HS256, APP_SECRET, object_callback("job", &["job-1"]));
    let claims = signed.split('.').nth(1).unwrap();
    let alg_none = format!("{}.{claims}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
    assert_refused(Delivery::form(alg_none).send(&app).await, "JWT").await;
    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn an_addon_callback_without_a_configured_app_secret_is_refused() {
    let app = spawn_app().await;
    let jwt = addon_jwt(Algorithm::HS256, APP_SECRET, object_callback("job", &["job-1"]));
    assert_refused(Delivery::form(jwt).send(&app).await, "SERVICEM8_APP_SECRET").await;
}

#[tokio::test]
async fn an_event_webhook_is_stored_with_its_object_and_event_type() {
    let app = spawn_app().await;
    let status_changed = json!({"event": "job.status_changed", "data": {"uuid": "job-7", "status": "Completed"}});
    assert_eq!(
        receipt(
            Delivery::json(status_changed.to_string())
                .hmac_signed()
                .send(&app)
                .await
        )
        .await["received"],
        1
    );
    let clocked_on = Delivery::json(r#"{"staff_uuid":"staff-3"}"#).header("x-servicem8-event", "staff.clocked_on");
    receipt(clocked_on.hmac_signed().send(&app).await).await;
    let unknown_shape = json!({"eventName": "Company.Created", "something": {"nested": true}});
    receipt(Delivery::json(unknown_shape.to_string()).hmac_signed().send(&app).await).await;
    assert_eq!(
        stored_events(&app).await,
        expected(&[
            ("company", "unknown", "created"),
            ("job", "job-7", "status_changed"),
            ("staff", "staff-3", "clocked_on"),
        ])
    );
}

#[tokio::test]
async fn an_unknown_shape_under_the_seed_signature_is_stored_as_an_event_named_by_its_field() {
    let app = spawn_app().await;
    let response = Delivery::json(r#"{"event":"invoice.paid","data":{"total":"120.00"}}"#)
        .hmac_signed()
        .send(&app)
        .await;
    assert_eq!(receipt(response).await["received"], 1);
    assert_eq!(
        stored_events(&app).await,
        expected(&[("unknown", "unknown", "invoice.paid")])
    );
}

#[tokio::test]
async fn a_standard_webhooks_delivery_is_verified_and_stored() {
    let app = spawn_app_with_standard_secrets().await;
    let body = json!({"type": "job.created", "data": {"uuid": "job-9"}}).to_string();
    let response = Delivery::json(body)
        .standard_signed("msg_1", STANDARD_SECRET, 0)
        .send(&app)
        .await;
    assert_eq!(receipt(response).await["received"], 1);
    assert_eq!(stored_events(&app).await, expected(&[("job", "job-9", "created")]));
}

#[tokio::test]
async fn a_standard_webhooks_delivery_of_unknown_shape_is_accepted() {
    let app = spawn_app_with_standard_secrets().await;
    let body = json!({"kind": "something ServiceM8 never documented", "payload": [1, 2, 3]}).to_string();
    let response = Delivery::json(body)
        .standard_signed("msg_1", STANDARD_SECRET, 0)
        .send(&app)
        .await;
    assert_eq!(receipt(response).await["received"], 1);
    assert_eq!(
        stored_events(&app).await,
        expected(&[("unknown", "unknown", "unknown")])
    );
}

#[tokio::test]
async fn a_standard_signature_by_the_second_of_two_secrets_is_accepted() {
    let app = spawn_app_with_standard_secrets().await;
    let body = object_callback("job", &["job-1"]).to_string();
    let response = Delivery::json(body)
        .standard_signed("msg_1", ROTATED_SECRET, 0)
        .send(&app)
        .await;
    assert_eq!(receipt(response).await["received"], 1);
}

#[tokio::test]
async fn one_valid_signature_among_several_is_enough() {
    let app = spawn_app_with_standard_secrets().await;
    let body = object_callback("job", &["job-1"]).to_string();
    let sent_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let foreign = standard::sign("whsec_c29tZW9uZSBlbHNl", "msg_1", sent_at, body.as_bytes());
    let valid = standard::sign(STANDARD_SECRET, "msg_1", sent_at, body.as_bytes());
    let response = Delivery::json(body)
        .header(standard::ID_HEADER, "msg_1")
        .header(standard::TIMESTAMP_HEADER, sent_at.to_string())
        .header(
            standard::SIGNATURE_HEADER,
            format!("v1,bm90IGl0 {foreign} v2,{} {valid}", &valid[3..]),
        )
        .send(&app)
        .await;
    assert_eq!(receipt(response).await["received"], 1);
}

#[tokio::test]
async fn bad_standard_signatures_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with_standard_secrets().await;
    let body = object_callback("job", &["job-1"]).to_string();

    let expired = Delivery::json(body.clone()).standard_signed("msg_1", STANDARD_SECRET, 6 * 60);
    assert_refused(expired.send(&app).await, "five minutes").await;

    let mut empty = Delivery::json(body.clone()).standard_signed("msg_1", STANDARD_SECRET, 0);
    empty.headers.retain(|(name, _)| *name != standard::SIGNATURE_HEADER);
    assert_refused(
        empty.header(standard::SIGNATURE_HEADER, "v1,").send(&app).await,
        "no v1 signature matches",
    )
    .await;

    let mut tampered = Delivery::json(body.clone()).standard_signed("msg_1", STANDARD_SECRET, 0);
    tampered.body = body.replace("job-1", "job-2");
    assert_refused(tampered.send(&app).await, "no v1 signature matches").await;

    // A valid seed signature next to a bad Standard one does not rescue the delivery.
    let mut both = Delivery::json(body)
        .hmac_signed()
        .standard_signed("msg_1", STANDARD_SECRET, 0);
    both.headers.retain(|(name, _)| *name != standard::SIGNATURE_HEADER);
    assert_refused(
        both.header(standard::SIGNATURE_HEADER, "v1,AAAA").send(&app).await,
        "no v1 signature matches",
    )
    .await;

    assert_eq!(stored_count(&app).await, 0);
}

#[tokio::test]
async fn a_standard_signature_without_configured_secrets_is_refused() {
    let app = spawn_app().await;
    let body = object_callback("job", &["job-1"]).to_string();
    let response = Delivery::json(body)
        .standard_signed("msg_1", STANDARD_SECRET, 0)
        .send(&app)
        .await;
    assert_refused(response, "STANDARD_WEBHOOK_SECRETS").await;
}

#[tokio::test]
async fn a_repeated_webhook_id_is_stored_once() {
    let app = spawn_app_with_standard_secrets().await;
    let body = json!({"type": "job.updated", "uuid": "job-1"}).to_string();
    let first = receipt(
        Delivery::json(body.clone())
            .standard_signed("msg_42", STANDARD_SECRET, 0)
            .send(&app)
            .await,
    )
    .await;
    // A retry is signed again, at another time, but keeps its id.
    let retry = receipt(
        Delivery::json(body)
            .standard_signed("msg_42", STANDARD_SECRET, 30)
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(retry["duplicates"], 1);
    assert_eq!(retry["event_ids"], first["event_ids"]);
    assert_eq!(stored_count(&app).await, 1);
}

#[tokio::test]
async fn the_status_endpoint_lists_every_accepted_format() {
    let app = spawn_app().await;
    let status: Value = app
        .client
        .get(app.url("/api/webhooks/sm8"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["formats"], json!(["addon", "seed", "object", "event"]));
    assert_eq!(status["verification"]["hmac_sha256"], true);
    assert_eq!(status["verification"]["url_token"], false);
}

/// Percent-encodes everything but unreserved characters, as a form encoder does.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

use serde_json::json;

use super::*;

fn view_of(kind: &str, settings: Value) -> DestinationView {
    DestinationView {
        id: "d1".into(),
        name: "erp".into(),
        kind: kind.into(),
        settings,
        secrets_set: vec![],
        paused: false,
        circuit_open: false,
        consecutive_failures: 0,
        queued: 0,
        delivered: 0,
        failed: 0,
        created_at: "2024-01-01T00:00:00Z".into(),
    }
}

#[test]
fn a_webhook_form_has_its_url_headers_and_timeout_and_no_secrets() {
    let fields = DestinationFields {
        name: " erp ".into(),
        url: "https://erp.example/hooks".into(),
        headers: "Authorization: Bearer abc\n\nX-Team:  ops ".into(),
        ..DestinationFields::default()
    };
    let form = fields.form().unwrap();
    assert_eq!(form.name, "erp");
    assert_eq!(form.kind, "webhook");
    assert_eq!(
        form.settings,
        json!({"url": "https://erp.example/hooks",
               "headers": {"Authorization": "Bearer abc", "X-Team": "ops"},
               "timeout_ms": 10000})
    );
    assert_eq!(form.secrets, json!({}));
}

#[test]
fn a_header_line_without_a_colon_is_refused_with_its_line() {
    let fields = DestinationFields {
        headers: "X-Ok: 1\nbroken".into(),
        ..DestinationFields::default()
    };
    assert_eq!(fields.form().unwrap_err(), "Header line 2: expected `Name: value`.");
}

#[test]
fn an_email_form_lists_its_recipients_and_sends_only_a_typed_password() {
    let mut fields = DestinationFields {
        kind: "email".into(),
        host: "smtp.example".into(),
        port: "465".into(),
        security: "tls".into(),
        email_from: "alerts@example.com".into(),
        email_to: "a@example.com, b@example.com\nc@example.com,".into(),
        ..DestinationFields::default()
    };
    let form = fields.form().unwrap();
    assert_eq!(
        form.settings,
        json!({"host": "smtp.example", "port": 465, "security": "tls", "from": "alerts@example.com",
               "to": ["a@example.com", "b@example.com", "c@example.com"]})
    );
    assert_eq!(form.secrets, json!({}));
    fields.password = "hunter2".into();
    assert_eq!(fields.form().unwrap().secrets, json!({"password": "hunter2"}));
    fields.port = "70000".into();
    assert!(fields.form().unwrap_err().contains("port"));
}

#[test]
fn slack_and_sms_forms_carry_their_secrets() {
    let slack = DestinationFields {
        kind: "slack".into(),
        slack_webhook_url: "https://hooks.slack.com/services/x".into(),
        ..DestinationFields::default()
    };
    let form = slack.form().unwrap();
    assert_eq!(form.settings, json!({}));
    assert_eq!(
        form.secrets,
        json!({"webhook_url": "https://hooks.slack.com/services/x"})
    );

    let sms = DestinationFields {
        kind: "sms".into(),
        account_sid: "AC1".into(),
        sms_from: "+611".into(),
        sms_to: "+612".into(),
        auth_token: "token".into(),
        ..DestinationFields::default()
    };
    let form = sms.form().unwrap();
    assert_eq!(
        form.settings,
        json!({"account_sid": "AC1", "from": "+611", "to": "+612"})
    );
    assert_eq!(form.secrets, json!({"auth_token": "token"}));
}

#[test]
fn a_saved_destination_fills_the_fields_it_was_saved_from() {
    let webhook = view_of(
        "webhook",
        json!({"url": "https://erp.example", "headers": {"X-Team": "ops"}, "timeout_ms": 5000}),
    );
    let fields = DestinationFields::of(&webhook);
    assert_eq!(fields.url, "https://erp.example");
    assert_eq!(fields.headers, "X-Team: ops");
    assert_eq!(fields.timeout_ms, "5000");
    assert_eq!(fields.form().unwrap().settings, webhook.settings);

    let email = view_of(
        "email",
        json!({"host": "smtp.example", "port": 587, "security": "starttls", "username": "me",
               "from": "a@example.com", "to": ["b@example.com", "c@example.com"]}),
    );
    let fields = DestinationFields::of(&email);
    assert_eq!(fields.email_to, "b@example.com, c@example.com");
    assert_eq!(fields.form().unwrap().settings, email.settings);
}

#[test]
fn the_target_summary_names_where_messages_go() {
    assert_eq!(
        target_summary(&view_of("webhook", json!({"url": "https://erp.example"}))),
        "https://erp.example"
    );
    assert_eq!(
        target_summary(&view_of(
            "email",
            json!({"host": "smtp.example", "to": ["a@example.com"]})
        )),
        "a@example.com via smtp.example"
    );
    assert_eq!(target_summary(&view_of("sms", json!({"to": "+612"}))), "SMS to +612");
}

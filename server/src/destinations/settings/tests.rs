use serde_json::{json, Value};

use crate::destinations::{
    DestinationKind, DestinationSettings, EmailSettings, InvalidDestination, SmsSettings, SmtpSecurity,
    WebhookSettings, DEFAULT_SMS_BASE_URL, DEFAULT_WEBHOOK_TIMEOUT_MS,
};

fn refused(settings: Value) -> InvalidDestination {
    DestinationSettings::from_value(settings.clone()).expect_err(&format!("accepted {settings}"))
}

fn email(changes: Value) -> Value {
    let mut settings = json!({"kind": "email", "host": "smtp.example.com", "port": 587,
                              "from": "alerts@example.com", "to": ["office@example.com"]});
    settings
        .as_object_mut()
        .unwrap()
        .extend(changes.as_object().unwrap().clone());
    settings
}

#[test]
fn settings_of_each_kind_are_read_with_their_defaults_and_written_back() {
    let webhook = DestinationSettings::from_value(json!({"kind": "webhook", "url": "https://erp.example.com/hook"}));
    assert_eq!(
        webhook.unwrap(),
        DestinationSettings::Webhook(WebhookSettings {
            url: "https://erp.example.com/hook".into(),
            headers: Default::default(),
            timeout_ms: DEFAULT_WEBHOOK_TIMEOUT_MS,
        })
    );
    let email = DestinationSettings::from_value(email(json!({}))).unwrap();
    let DestinationSettings::Email(EmailSettings { security, .. }) = &email else {
        panic!("{email:?}")
    };
    assert_eq!(*security, SmtpSecurity::Starttls);
    let sms = json!({"kind": "sms", "account_sid": "AC123", "from": "SM8 Alerts", "to": "+61400000000"});
    let sms = DestinationSettings::from_value(sms).unwrap();
    let DestinationSettings::Sms(SmsSettings { base_url, .. }) = &sms else {
        panic!("{sms:?}")
    };
    assert_eq!(base_url, DEFAULT_SMS_BASE_URL);
    let slack = DestinationSettings::from_value(json!({"kind": "slack"})).unwrap();
    assert_eq!(slack.kind(), DestinationKind::Slack);
    for settings in [webhook_with_headers(), email, sms, slack] {
        assert_eq!(DestinationSettings::from_json(&settings.to_json()).unwrap(), settings);
    }
}

fn webhook_with_headers() -> DestinationSettings {
    DestinationSettings::from_value(json!({"kind": "webhook", "url": "http://10.0.0.5:8080/in",
                                           "headers": {"X-Api-Key": "abc", "Authorization": "Bearer t"},
                                           "timeout_ms": 60000}))
    .unwrap()
}

#[test]
fn a_webhook_url_must_be_http_or_https() {
    let error = refused(json!({"kind": "webhook", "url": "ftp://erp.example.com/hook"}));
    assert_eq!(error.to_string(), "settings.url: must be an http or https URL, not ftp");
    let error = refused(json!({"kind": "webhook", "url": "erp.example.com/hook"}));
    assert_eq!(error.field, "settings.url");
    assert!(error.reason.starts_with("is not a URL"), "{error}");
}

#[test]
fn headers_of_the_connection_and_of_the_signature_cannot_be_configured() {
    for name in [
        "Connection",
        "transfer-encoding",
        "Host",
        "Content-Type",
        "webhook-signature",
        "Webhook-Id",
    ] {
        let error = refused(json!({"kind": "webhook", "url": "https://e.example/h", "headers": {name: "x"}}));
        assert_eq!(error.field, format!("settings.headers.{name}"));
        assert_eq!(error.reason, "is set by the sender and cannot be configured");
    }
    let error = refused(json!({"kind": "webhook", "url": "https://e.example/h", "headers": {"bad name": "x"}}));
    assert_eq!(error.to_string(), "settings.headers.bad name: is not a header name");
    let error = refused(json!({"kind": "webhook", "url": "https://e.example/h", "headers": {"x-a": "one\ntwo"}}));
    assert_eq!(error.field, "settings.headers.x-a");
}

#[test]
fn a_webhook_timeout_is_between_one_millisecond_and_a_minute() {
    for timeout in [0, 60_001] {
        let error = refused(json!({"kind": "webhook", "url": "https://e.example/h", "timeout_ms": timeout}));
        assert_eq!(
            error.to_string(),
            "settings.timeout_ms: must be between 1 and 60000 milliseconds"
        );
    }
}

#[test]
fn email_addresses_are_checked_one_by_one() {
    let error = refused(email(json!({"to": ["office@example.com", "not an address"]})));
    assert_eq!(error.field, "settings.to[1]");
    assert!(
        error.reason.starts_with("\"not an address\" is not an email address"),
        "{error}"
    );
    let error = refused(email(json!({"from": "alerts.example.com"})));
    assert_eq!(error.field, "settings.from");
    let error = refused(email(json!({"to": []})));
    assert_eq!(error.to_string(), "settings.to: must list between 1 and 50 addresses");
    let error = refused(email(json!({"host": "smtp://smtp.example.com"})));
    assert_eq!(error.field, "settings.host");
    let error = refused(email(json!({"security": "ssl"})));
    assert!(error.reason.contains("unknown variant `ssl`"), "{error}");
}

#[test]
fn sms_numbers_and_the_account_are_checked() {
    let sms = |changes: Value| {
        let mut settings = json!({"kind": "sms", "account_sid": "AC123", "from": "+61400000001", "to": "+61400000000"});
        settings
            .as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        refused(settings)
    };
    assert_eq!(sms(json!({"to": "0400 000 000"})).field, "settings.to");
    assert_eq!(sms(json!({"from": "A sender id too long"})).field, "settings.from");
    assert_eq!(sms(json!({"account_sid": "AC/../x"})).field, "settings.account_sid");
    assert_eq!(
        sms(json!({"base_url": "mailto:x@example.com"})).field,
        "settings.base_url"
    );
}

#[test]
fn missing_and_unknown_fields_and_kinds_are_named() {
    let error = refused(json!({"kind": "webhook"}));
    assert_eq!(error.field, "settings");
    assert!(error.reason.starts_with("missing field `url`"), "{error}");
    let error = refused(email(json!({"too": ["office@example.com"]})));
    assert!(error.reason.starts_with("unknown field `too`"), "{error}");
    let error = refused(json!({"kind": "pager"}));
    assert!(error.reason.starts_with("unknown variant `pager`"), "{error}");
    let error = refused(json!({"url": "https://e.example/h"}));
    assert!(error.reason.starts_with("missing field `kind`"), "{error}");
}

#[test]
fn a_kind_given_apart_from_the_fields_is_read_as_the_dashboards_form_sends_it() {
    let kind: DestinationKind = "webhook".parse().unwrap();
    let settings = DestinationSettings::of_kind(kind, json!({"url": "https://e.example/h"})).unwrap();
    assert_eq!(settings.kind(), DestinationKind::Webhook);
    assert_eq!(
        DestinationSettings::of_kind(DestinationKind::Slack, Value::Null)
            .unwrap()
            .kind(),
        DestinationKind::Slack
    );
    let error = DestinationSettings::of_kind(kind, json!(["https://e.example/h"])).unwrap_err();
    assert_eq!(error.to_string(), "settings: must be an object");
    assert_eq!("pager".parse::<DestinationKind>().unwrap_err().field, "kind");
}

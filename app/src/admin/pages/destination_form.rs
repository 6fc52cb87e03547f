//! The form that creates or edits a destination on `/admin/destinations`: fields that follow the chosen kind,
//! secrets as password inputs (left empty on an edit, a secret keeps its value), and the conversion between the
//! fields and the `settings` and `secrets` a destination is saved with.

use leptos::prelude::*;
use serde_json::{Map, Value};

use super::Failure;
use crate::components::ErrorNote;
use crate::outbound::model::{DestinationForm, DestinationView};

/// The kinds of destination as the server names them, with their labels.
pub(super) const KINDS: [(&str, &str); 4] = [
    ("webhook", "Webhook"),
    ("slack", "Slack"),
    ("email", "Email"),
    ("sms", "SMS"),
];

/// How an email destination reaches its SMTP server.
const SECURITY: [(&str, &str); 3] = [("starttls", "STARTTLS"), ("tls", "TLS"), ("none", "None (plain text)")];

/// What a new webhook destination waits for an answer, unless changed.
const DEFAULT_TIMEOUT_MS: &str = "10000";

/// The label of a kind, or the kind itself when it is not one this page knows.
pub(super) fn kind_label(kind: &str) -> &str {
    KINDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(kind, |(_, label)| label)
}

/// The form's fields as typed, for every kind at once: switching the kind back and forth loses nothing.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DestinationFields {
    pub name: String,
    pub kind: String,
    pub url: String,
    /// One `Name: value` a line.
    pub headers: String,
    pub timeout_ms: String,
    /// Secret.
    pub slack_webhook_url: String,
    pub host: String,
    pub port: String,
    pub security: String,
    pub username: String,
    /// Secret.
    pub password: String,
    pub email_from: String,
    /// Separated by commas or line breaks.
    pub email_to: String,
    pub base_url: String,
    pub account_sid: String,
    pub sms_from: String,
    pub sms_to: String,
    /// Secret.
    pub auth_token: String,
}

impl Default for DestinationFields {
    fn default() -> Self {
        DestinationFields {
            name: String::new(),
            kind: "webhook".into(),
            url: String::new(),
            headers: String::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS.into(),
            slack_webhook_url: String::new(),
            host: String::new(),
            port: "587".into(),
            security: "starttls".into(),
            username: String::new(),
            password: String::new(),
            email_from: String::new(),
            email_to: String::new(),
            base_url: String::new(),
            account_sid: String::new(),
            sms_from: String::new(),
            sms_to: String::new(),
            auth_token: String::new(),
        }
    }
}

impl DestinationFields {
    /// The fields of a saved destination; its secrets stay empty (they are never shown).
    pub fn of(destination: &DestinationView) -> Self {
        let settings = &destination.settings;
        let text = |key: &str| match settings.get(key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => String::new(),
        };
        let headers = settings
            .get("headers")
            .and_then(Value::as_object)
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", value.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let defaults = DestinationFields::default();
        let mut fields = DestinationFields {
            name: destination.name.clone(),
            kind: destination.kind.clone(),
            headers,
            ..defaults.clone()
        };
        match destination.kind.as_str() {
            "webhook" => {
                fields.url = text("url");
                fields.timeout_ms = text("timeout_ms");
            }
            "email" => {
                fields.host = text("host");
                fields.port = text("port");
                fields.security = Some(text("security"))
                    .filter(|security| !security.is_empty())
                    .unwrap_or(defaults.security);
                fields.username = text("username");
                fields.email_from = text("from");
                fields.email_to = match settings.get("to") {
                    Some(Value::Array(to)) => to.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                    _ => text("to"),
                };
            }
            "sms" => {
                fields.base_url = text("base_url");
                fields.account_sid = text("account_sid");
                fields.sms_from = text("from");
                fields.sms_to = text("to");
            }
            _ => {}
        }
        fields
    }

    /// The destination the fields describe, or what is wrong with them. Only the chosen kind's fields are read;
    /// an empty secret is left out, so that an edit keeps the secret already set.
    pub fn form(&self) -> Result<DestinationForm, String> {
        let mut settings = Map::new();
        let mut secrets = Map::new();
        match self.kind.as_str() {
            "webhook" => {
                put_text(&mut settings, "url", &self.url);
                settings.insert("headers".into(), Value::Object(parse_headers(&self.headers)?));
                if !self.timeout_ms.trim().is_empty() {
                    // The server bounds it; the form only makes sure it is a number.
                    let timeout = whole_number("The timeout", &self.timeout_ms, 1, u32::MAX.into())?;
                    settings.insert("timeout_ms".into(), timeout.into());
                }
            }
            "slack" => put_secret(&mut secrets, "webhook_url", &self.slack_webhook_url),
            "email" => {
                put_text(&mut settings, "host", &self.host);
                settings.insert("port".into(), whole_number("The port", &self.port, 1, 65_535)?.into());
                put_text(&mut settings, "security", &self.security);
                if !self.username.trim().is_empty() {
                    put_text(&mut settings, "username", &self.username);
                }
                put_text(&mut settings, "from", &self.email_from);
                let to = self
                    .email_to
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|address| !address.is_empty())
                    .map(|address| Value::String(address.to_owned()))
                    .collect();
                settings.insert("to".into(), Value::Array(to));
                put_secret(&mut secrets, "password", &self.password);
            }
            "sms" => {
                // Without one, the server sends to Twilio.
                if !self.base_url.trim().is_empty() {
                    put_text(&mut settings, "base_url", &self.base_url);
                }
                put_text(&mut settings, "account_sid", &self.account_sid);
                put_text(&mut settings, "from", &self.sms_from);
                put_text(&mut settings, "to", &self.sms_to);
                put_secret(&mut secrets, "auth_token", &self.auth_token);
            }
            other => return Err(format!("Unknown kind of destination {other:?}.")),
        }
        Ok(DestinationForm {
            name: self.name.trim().to_owned(),
            kind: self.kind.clone(),
            settings: Value::Object(settings),
            secrets: Value::Object(secrets),
        })
    }
}

fn put_text(settings: &mut Map<String, Value>, key: &str, value: &str) {
    settings.insert(key.into(), Value::String(value.trim().to_owned()));
}

/// Sets a secret when one was typed: an empty field keeps the secret already set.
fn put_secret(secrets: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.trim().is_empty() {
        secrets.insert(key.into(), Value::String(value.trim().to_owned()));
    }
}

/// `Name: value` lines as a JSON object; blank lines are ignored.
fn parse_headers(lines: &str) -> Result<Map<String, Value>, String> {
    let mut headers = Map::new();
    for (number, line) in lines.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("Header line {}: expected `Name: value`.", number + 1));
        };
        if name.trim().is_empty() {
            return Err(format!("Header line {}: the name is missing.", number + 1));
        }
        headers.insert(name.trim().to_owned(), Value::String(value.trim().to_owned()));
    }
    Ok(headers)
}

fn whole_number(what: &str, text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|number| (min..=max).contains(number))
        .ok_or_else(|| format!("{what} must be a whole number from {min} to {max}."))
}

/// Where a destination sends, in a few words.
pub(super) fn target_summary(destination: &DestinationView) -> String {
    let text = |key: &str| {
        destination
            .settings
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match destination.kind.as_str() {
        "webhook" => text("url"),
        "slack" => "Slack incoming webhook".into(),
        "email" => {
            let to = match destination.settings.get("to") {
                Some(Value::Array(to)) => to.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                _ => text("to"),
            };
            format!("{to} via {}", text("host"))
        }
        "sms" => format!("SMS to {}", text("to")),
        _ => String::new(),
    }
}

/// The form's fields as signals, one a field.
#[derive(Clone, Copy)]
struct FieldSignals {
    name: RwSignal<String>,
    kind: RwSignal<String>,
    url: RwSignal<String>,
    headers: RwSignal<String>,
    timeout_ms: RwSignal<String>,
    slack_webhook_url: RwSignal<String>,
    host: RwSignal<String>,
    port: RwSignal<String>,
    security: RwSignal<String>,
    username: RwSignal<String>,
    password: RwSignal<String>,
    email_from: RwSignal<String>,
    email_to: RwSignal<String>,
    base_url: RwSignal<String>,
    account_sid: RwSignal<String>,
    sms_from: RwSignal<String>,
    sms_to: RwSignal<String>,
    auth_token: RwSignal<String>,
}

impl FieldSignals {
    fn new(fields: DestinationFields) -> Self {
        FieldSignals {
            name: RwSignal::new(fields.name),
            kind: RwSignal::new(fields.kind),
            url: RwSignal::new(fields.url),
            headers: RwSignal::new(fields.headers),
            timeout_ms: RwSignal::new(fields.timeout_ms),
            slack_webhook_url: RwSignal::new(fields.slack_webhook_url),
            host: RwSignal::new(fields.host),
            port: RwSignal::new(fields.port),
            security: RwSignal::new(fields.security),
            username: RwSignal::new(fields.username),
            password: RwSignal::new(fields.password),
            email_from: RwSignal::new(fields.email_from),
            email_to: RwSignal::new(fields.email_to),
            base_url: RwSignal::new(fields.base_url),
            account_sid: RwSignal::new(fields.account_sid),
            sms_from: RwSignal::new(fields.sms_from),
            sms_to: RwSignal::new(fields.sms_to),
            auth_token: RwSignal::new(fields.auth_token),
        }
    }

    fn read(self) -> DestinationFields {
        DestinationFields {
            name: self.name.get_untracked(),
            kind: self.kind.get_untracked(),
            url: self.url.get_untracked(),
            headers: self.headers.get_untracked(),
            timeout_ms: self.timeout_ms.get_untracked(),
            slack_webhook_url: self.slack_webhook_url.get_untracked(),
            host: self.host.get_untracked(),
            port: self.port.get_untracked(),
            security: self.security.get_untracked(),
            username: self.username.get_untracked(),
            password: self.password.get_untracked(),
            email_from: self.email_from.get_untracked(),
            email_to: self.email_to.get_untracked(),
            base_url: self.base_url.get_untracked(),
            account_sid: self.account_sid.get_untracked(),
            sms_from: self.sms_from.get_untracked(),
            sms_to: self.sms_to.get_untracked(),
            auth_token: self.auth_token.get_untracked(),
        }
    }

    /// Empties the secret fields, once they were sent.
    fn forget_secrets(self) {
        for secret in [self.slack_webhook_url, self.password, self.auth_token] {
            secret.set(String::new());
        }
    }
}

/// The fields of a new destination (`existing` none) or of one being edited. The page dispatches what
/// `on_submit` receives, and passes back whether that is under way and how it failed.
#[component]
pub(super) fn DestinationEditor(
    existing: Option<DestinationView>,
    on_submit: Callback<DestinationForm>,
    #[prop(into)] pending: Signal<bool>,
    #[prop(into)] error: Signal<Option<String>>,
    /// Offered as "Cancel" beside the submit button.
    #[prop(optional)]
    on_cancel: Option<Callback<()>>,
) -> impl IntoView {
    let secrets_set = existing
        .as_ref()
        .map(|destination| destination.secrets_set.clone())
        .unwrap_or_default();
    let fields = FieldSignals::new(existing.as_ref().map(DestinationFields::of).unwrap_or_default());
    // Two forms may be on the page at once (a new destination and an edit): each has ids of its own.
    let (prefix, title, submit_label) = match &existing {
        Some(destination) => (
            "edit-destination",
            format!("Edit {}", destination.name),
            "Save destination",
        ),
        None => ("new-destination", "New destination".to_owned(), "Create destination"),
    };
    let editing = existing.is_some();
    let id = move |field: &str| format!("{prefix}-{field}");
    let invalid = RwSignal::new(None::<String>);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        match fields.read().form() {
            Ok(form) => {
                invalid.set(None);
                on_submit.run(form);
                fields.forget_secrets();
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    // A secret input: required when the kind needs it and none is set yet; otherwise empty keeps the one set.
    let secret_input = move |field: &'static str, label: &'static str, signal: RwSignal<String>, needed: bool| {
        let set = secrets_set.iter().any(|name| name == field);
        let hint = if set {
            "Set. Leave empty to keep it."
        } else {
            "Not shown again once saved."
        };
        let hint_id = id(&format!("{field}-hint"));
        view! {
            <label for=id(field)>{label}</label>
            <input id=id(field) type="password" autocomplete="off" required=needed && !set
                aria-describedby=hint_id.clone() bind:value=signal/>
            <p id=hint_id class="muted">{hint}</p>
        }
    };
    let kind_fields = move || {
        match fields.kind.get().as_str() {
        "webhook" => view! {
            <label for=id("url")>"URL"</label>
            <input id=id("url") type="url" required placeholder="https://example.com/hooks" bind:value=fields.url/>
            <label for=id("headers")>"Headers (optional)"</label>
            <textarea id=id("headers") rows="3" aria-describedby=id("headers-hint") placeholder="Authorization: Bearer …"
                prop:value=move || fields.headers.get()
                on:input=move |event| fields.headers.set(event_target_value(&event))></textarea>
            <p id=id("headers-hint") class="muted">"One "<code>"Name: value"</code>" a line, sent with every message."</p>
            <label for=id("timeout")>"Timeout (ms)"</label>
            <input id=id("timeout") type="number" min="1" bind:value=fields.timeout_ms/>
            <p class="muted">
                "Every message is signed the Standard Webhooks way ("<code>"webhook-id"</code>", "
                <code>"webhook-timestamp"</code>", "<code>"webhook-signature"</code>"), with a signing secret made \
                 when the destination is created and shown once."
            </p>
        }
        .into_any(),
        "slack" => secret_input(
            "webhook_url",
            "Slack incoming webhook URL",
            fields.slack_webhook_url,
            true,
        )
        .into_any(),
        "email" => view! {
            <label for=id("host")>"SMTP host"</label>
            <input id=id("host") type="text" required placeholder="smtp.example.com" bind:value=fields.host/>
            <label for=id("port")>"Port"</label>
            <input id=id("port") type="number" min="1" max="65535" required bind:value=fields.port/>
            <label for=id("security")>"Security"</label>
            <select id=id("security") prop:value=move || fields.security.get()
                on:change=move |event| fields.security.set(event_target_value(&event))>
                {SECURITY.map(|(value, label)| view! { <option value=value>{label}</option> })}
            </select>
            <label for=id("username")>"Username (optional)"</label>
            <input id=id("username") type="text" autocomplete="off" bind:value=fields.username/>
            {secret_input("password", "Password", fields.password, false)}
            <label for=id("from")>"From"</label>
            <input id=id("from") type="text" required placeholder="SM8 Webhooks <alerts@example.com>"
                bind:value=fields.email_from/>
            <label for=id("to")>"To"</label>
            <input id=id("to") type="text" required aria-describedby=id("to-hint") bind:value=fields.email_to/>
            <p id=id("to-hint") class="muted">"Addresses separated by commas."</p>
        }
        .into_any(),
        "sms" => view! {
            <label for=id("base-url")>"API base URL (optional)"</label>
            <input id=id("base-url") type="url" placeholder="https://api.twilio.com" aria-describedby=id("base-url-hint")
                bind:value=fields.base_url/>
            <p id=id("base-url-hint") class="muted">"Twilio's API unless another service of its shape is named."</p>
            <label for=id("account-sid")>"Account SID"</label>
            <input id=id("account-sid") type="text" required bind:value=fields.account_sid/>
            {secret_input("auth_token", "Auth token", fields.auth_token, true)}
            <label for=id("sms-from")>"From"</label>
            <input id=id("sms-from") type="tel" required placeholder="+61400000000" bind:value=fields.sms_from/>
            <label for=id("sms-to")>"To"</label>
            <input id=id("sms-to") type="tel" required placeholder="+61400000001" bind:value=fields.sms_to/>
        }
        .into_any(),
        _ => ().into_any(),
    }
    };
    view! {
        <form class="stacked destination-form" aria-labelledby=id("title") on:submit=submit>
            <h2 id=id("title")>{title}</h2>
            <label for=id("name")>"Name"</label>
            <input id=id("name") type="text" required maxlength="100" aria-describedby=id("name-hint")
                bind:value=fields.name/>
            <p id=id("name-hint") class="muted">"Unique in the account: rules name their destinations by it."</p>
            <label for=id("kind")>"Kind"</label>
            <select id=id("kind") prop:value=move || fields.kind.get() disabled=editing
                on:change=move |event| fields.kind.set(event_target_value(&event))>
                {KINDS.map(|(value, label)| view! { <option value=value>{label}</option> })}
            </select>
            <fieldset class="kind-fields">
                <legend>{move || format!("{} settings", kind_label(&fields.kind.get()))}</legend>
                {kind_fields}
            </fieldset>
            <div class="row-actions">
                <button type="submit" disabled=move || pending.get()>{submit_label}</button>
                {on_cancel.map(|cancel| view! {
                    <button type="button" class="secondary" on:click=move |_| cancel.run(())>"Cancel"</button>
                })}
            </div>
            {move || invalid.get().map(|message| view! { <ErrorNote message/> })}
            <Failure error/>
        </form>
    }
}

#[cfg(test)]
mod tests;

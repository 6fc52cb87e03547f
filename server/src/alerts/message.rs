//! What an alert's transition says to its destinations: a subject, a text (Slack's message, the SMS, an email's
//! text part), an HTML part and Slack blocks, rendered by the rules' template engine so that every value is
//! escaped as its part needs.

use std::sync::LazyLock;

use app::alerts::model::{AlertKind, AlertTransition};
use serde_json::{json, Value};

use crate::rules::template::{CompiledTemplate, MessageTemplate, RenderedMessage};

static TEMPLATE: LazyLock<CompiledTemplate> = LazyLock::new(|| {
    MessageTemplate {
        subject: Some("[SM8 Webhooks] {{ headline }}: {{ title }} ({{ account }})".into()),
        text: Some(
            "{{ headline }}: {{ title }} on account {{ account }}\n{{ summary }}\n\
             {% for link in links %}- {{ link.label }}: {{ link.url }}\n{% endfor %}Alerts: {{ alerts_url }}"
                .into(),
        ),
        html: Some(
            "<p><strong>{{ headline }}: {{ title }}</strong> on account {{ account }}</p><p>{{ summary }}</p>\
             {% if links %}<ul>{% for link in links %}<li><a href=\"{{ link.url }}\">{{ link.label }}</a></li>\
             {% endfor %}</ul>{% endif %}<p><a href=\"{{ alerts_url }}\">Open the alerts</a></p>"
                .into(),
        ),
        blocks: Some(
            "[{\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": \
             {{ \"*\" ~ headline ~ \": \" ~ title ~ \"* (\" ~ account ~ \")\\n\" ~ summary }}}}, \
             {\"type\": \"context\", \"elements\": [{\"type\": \"mrkdwn\", \"text\": \
             {{ \"<\" ~ alerts_url ~ \"|Open the alerts>\" }}}]}]"
                .into(),
        ),
    }
    .compile()
    .expect("the alert message template compiles")
});

/// What a transition is called at the start of its message.
fn headline(transition: AlertTransition) -> &'static str {
    match transition {
        AlertTransition::Fired => "Firing",
        AlertTransition::Renotified => "Still firing",
        AlertTransition::Resolved => "Resolved",
        AlertTransition::Acknowledged => "Acknowledged",
        AlertTransition::Silenced => "Silenced",
        AlertTransition::Unsilenced => "Unsilenced",
    }
}

/// The message for `kind`'s `transition` in `account`, links made absolute under `public_url`.
pub fn render(
    kind: AlertKind,
    transition: AlertTransition,
    account: &str,
    summary: &str,
    links: &[(String, String)],
    public_url: &str,
) -> RenderedMessage {
    let base = public_url.trim_end_matches('/');
    let document = json!({
        "headline": headline(transition),
        "title": kind.title(),
        "account": account,
        "summary": summary,
        "links": links.iter().map(|(label, path)| json!({"label": label, "url": format!("{base}{path}")})).collect::<Vec<Value>>(),
        "alerts_url": format!("{base}/admin/alerts"),
    });
    TEMPLATE
        .render(&document, None)
        .unwrap_or_else(|error| RenderedMessage {
            subject: Some(format!("[SM8 Webhooks] {}: {}", headline(transition), kind.title())),
            text: Some(format!("{summary} (the message could not be rendered: {error})")),
            html: None,
            blocks: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firing_message_names_the_alert_account_summary_and_links_in_every_part() {
        let message = render(
            AlertKind::ExhaustedRetries,
            AlertTransition::Fired,
            "acme",
            "12 events failed in the last 5 minutes",
            &[("job <j1>".into(), "/admin/webhook-dashboard/events/e1".into())],
            "https://hooks.example.com/",
        );
        assert_eq!(
            message.subject.as_deref(),
            Some("[SM8 Webhooks] Firing: Events failed (acme)")
        );
        let text = message.text.unwrap();
        assert!(text.contains("12 events failed in the last 5 minutes"), "{text}");
        assert!(
            text.contains("- job <j1>: https://hooks.example.com/admin/webhook-dashboard/events/e1"),
            "{text}"
        );
        assert!(
            text.ends_with("Alerts: https://hooks.example.com/admin/alerts"),
            "{text}"
        );
        let html = message.html.unwrap();
        assert!(
            html.contains("job &lt;j1&gt;"),
            "what the HTML part prints is escaped: {html}"
        );
        let blocks = message.blocks.unwrap();
        assert_eq!(
            blocks[0]["text"]["text"],
            "*Firing: Events failed* (acme)\n12 events failed in the last 5 minutes"
        );
        assert_eq!(
            blocks[1]["elements"][0]["text"],
            "<https://hooks.example.com/admin/alerts|Open the alerts>"
        );
    }

    #[test]
    fn a_resolution_says_so() {
        let message = render(
            AlertKind::Silence,
            AlertTransition::Resolved,
            "default",
            "webhooks are arriving",
            &[],
            "http://x",
        );
        assert_eq!(
            message.subject.as_deref(),
            Some("[SM8 Webhooks] Resolved: Webhooks stopped (default)")
        );
    }
}

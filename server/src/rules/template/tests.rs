use serde_json::{json, Value};

use super::{MessageTemplate, RenderedMessage, TemplateError, MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES};

fn document() -> Value {
    json!({
        "event": {"object_type": "job", "event_type": "updated", "received_at": 1_714_572_300_000_i64},
        "changes": {"status": "Completed"},
        "record": {
            "generated_job_id": "1042",
            "status": "Completed",
            "completion_date": "2024-05-01 14:05:00",
            "date": "2024-05-01",
            "unset_date": "0000-00-00 00:00:00",
            "job_description": "Fix <b>leak</b> & check",
            "lines": [{"item": "Labour"}, {"item": "Parts"}]
        },
        "previous": null,
        "account": {"slug": "default", "name": "Acme Plumbing"}
    })
}

fn text(source: &str) -> MessageTemplate {
    MessageTemplate {
        text: Some(source.into()),
        ..MessageTemplate::default()
    }
}

fn render_text(source: &str) -> String {
    let compiled = text(source)
        .compile()
        .unwrap_or_else(|error| panic!("{source}: {error}"));
    compiled.render(&document(), None).unwrap().text.unwrap()
}

#[test]
fn a_text_template_renders_fields_of_the_document() {
    assert_eq!(
        render_text("Job {{ record.generated_job_id }} is {{ record.status }} for {{ account.name }}"),
        "Job 1042 is Completed for Acme Plumbing"
    );
    assert_eq!(
        render_text("{% for line in record.lines %}{{ line.item }};{% endfor %}"),
        "Labour;Parts;"
    );
}

#[test]
fn missing_fields_and_fields_of_null_render_empty() {
    assert_eq!(
        render_text("[{{ record.nothing }}][{{ record.nothing.deeper }}][{{ previous.status }}]"),
        "[][][]"
    );
    assert_eq!(render_text("{{ previous.status or 'new' }}"), "new");
    assert_eq!(
        render_text("{% if previous.status %}was{% else %}fresh{% endif %}"),
        "fresh"
    );
    assert_eq!(render_text("{{ record.nothing | default('none') }}"), "none");
}

#[test]
fn only_the_html_part_escapes_what_it_prints() {
    let template = MessageTemplate {
        subject: Some("{{ record.job_description }}".into()),
        text: Some("{{ record.job_description }}".into()),
        html: Some("<p>{{ record.job_description }}</p>{{ '<br>' | safe }}".into()),
        ..MessageTemplate::default()
    };
    let rendered = template.compile().unwrap().render(&document(), None).unwrap();
    assert_eq!(
        rendered,
        RenderedMessage {
            subject: Some("Fix <b>leak</b> & check".into()),
            text: Some("Fix <b>leak</b> & check".into()),
            html: Some("<p>Fix &lt;b&gt;leak&lt;&#x2f;b&gt; &amp; check</p><br>".into()),
            blocks: None,
        }
    );
}

#[test]
fn line_breaks_in_a_subject_become_spaces() {
    let template = MessageTemplate {
        subject: Some("Job {{ record.generated_job_id }}\ndone\r\n".into()),
        text: Some("body".into()),
        ..MessageTemplate::default()
    };
    let rendered = template.compile().unwrap().render(&document(), None).unwrap();
    assert_eq!(rendered.subject.as_deref(), Some("Job 1042 done"));
    assert_eq!(rendered.html, None);
}

#[test]
fn the_transformed_message_is_available_beside_the_document() {
    let compiled = text("{{ message.headline }} ({{ record.status }})").compile().unwrap();
    let rendered = compiled
        .render(&document(), Some(&json!({"headline": "Done!"})))
        .unwrap();
    assert_eq!(rendered.text.as_deref(), Some("Done! (Completed)"));
}

#[test]
fn dates_from_servicem8_render_in_a_readable_default_or_a_chosen_format() {
    assert_eq!(render_text("{{ record.completion_date | date }}"), "1 May 2024");
    assert_eq!(
        render_text("{{ record.completion_date | datetime }}"),
        "1 May 2024 14:05"
    );
    assert_eq!(
        render_text("{{ record.date | date('[day]/[month]/[year]') }}"),
        "01/05/2024"
    );
    assert_eq!(render_text("{{ record.date | datetime }}"), "1 May 2024 00:00");
    assert_eq!(render_text("{{ event.received_at | datetime }}"), "1 May 2024 14:05");
    assert_eq!(
        render_text("{{ '2024-05-01T14:05:00+10:00' | datetime }}"),
        "1 May 2024 04:05"
    );
}

#[test]
fn empty_dates_render_empty_and_other_text_unchanged() {
    assert_eq!(
        render_text("[{{ record.unset_date | date }}][{{ record.nothing | date }}]"),
        "[][]"
    );
    assert_eq!(render_text("{{ record.status | date }}"), "Completed");
}

#[test]
fn an_invalid_date_format_fails_the_rendering_with_its_reason() {
    let compiled = text("{{ record.date | date('[nonsense]') }}").compile().unwrap();
    let error = compiled.render(&document(), None).unwrap_err();
    assert_eq!(error.part, Some("text"));
    assert!(error.reason.contains("invalid date format"), "{error}");
}

#[test]
fn a_syntax_error_is_refused_on_compile_with_its_part_and_line() {
    let template = MessageTemplate {
        html: Some("<p>\n{{ record.status }}\n{{ record.status | }}".into()),
        ..MessageTemplate::default()
    };
    let error = template.compile().unwrap_err();
    assert_eq!((error.part, error.line), (Some("html"), Some(3)), "{error}");
    assert!(
        error.to_string().starts_with("at template.html line 3: syntax error"),
        "{error}"
    );
}

#[test]
fn an_unknown_filter_is_refused_on_compile() {
    let error = text("Line one\n{{ record.status | shout }}").compile().unwrap_err();
    assert_eq!((error.part, error.line), (Some("text"), Some(2)), "{error}");
    assert!(error.reason.starts_with("unknown filter"), "{error}");
}

#[test]
fn a_template_needs_a_body_and_bounded_parts() {
    let error = MessageTemplate {
        subject: Some("hi".into()),
        ..MessageTemplate::default()
    }
    .compile()
    .unwrap_err();
    assert_eq!(
        error,
        TemplateError {
            part: None,
            line: None,
            reason: "a template needs a text or an html part".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "at template: a template needs a text or an html part"
    );
    let error = text(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).compile().unwrap_err();
    assert_eq!(error.part, Some("text"));
}

#[test]
fn rendered_output_is_bounded() {
    let compiled = text("{% for i in range(100000) %}{{ record.job_description }}{% endfor %}")
        .compile()
        .unwrap();
    let error = compiled.render(&document(), None).unwrap_err();
    assert_eq!(error.part, Some("text"));
    assert!(
        error
            .reason
            .contains(&format!("longer than {MAX_RENDERED_BYTES} bytes"))
            || error.reason.contains("fuel"),
        "{error}"
    );
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let nested = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}done";
    let error = text(nested).compile().unwrap().render(&document(), None).unwrap_err();
    assert!(error.reason.contains("fuel"), "{error}");
    let doubling = "{% macro grow(text, times) %}{{ grow(text ~ text, times - 1) if times else text | length }}\
                    {% endmacro %}{{ grow('x', 60) }}";
    let error = text(doubling).compile().unwrap().render(&document(), None).unwrap_err();
    assert!(
        error.reason.contains("fuel") || error.reason.contains("recursion"),
        "{error}"
    );
}

#[test]
fn a_template_round_trips_through_json_without_absent_parts() {
    let template: MessageTemplate = serde_json::from_value(json!({"text": "hi"})).unwrap();
    assert_eq!(serde_json::to_value(&template).unwrap(), json!({"text": "hi"}));
    assert!(serde_json::from_value::<MessageTemplate>(json!({"text": "hi", "body": "x"})).is_err());
}

fn with_blocks(source: &str) -> MessageTemplate {
    MessageTemplate {
        text: Some("Job {{ record.generated_job_id }}".into()),
        blocks: Some(source.into()),
        ..MessageTemplate::default()
    }
}

#[test]
fn blocks_print_values_as_json_so_a_record_cannot_break_the_array() {
    let source = concat!(
        r#"[{"type": "section", "text": {"type": "mrkdwn", "text": {{ record.job_description }}}},"#,
        r#" {"type": "context", "elements": [{"type": "mrkdwn", "text": {{ "Job " ~ record.generated_job_id }}}]}"#,
        r#"{% for line in record.lines %}, {"type": "section", "#,
        r#""text": {"type": "plain_text", "text": {{ line.item }}}}{% endfor %}]"#,
    );
    let rendered = with_blocks(source)
        .compile()
        .unwrap()
        .render(&document(), None)
        .unwrap();
    assert_eq!(rendered.text.as_deref(), Some("Job 1042"));
    assert_eq!(
        rendered.blocks,
        Some(json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": "Fix <b>leak</b> & check"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Job 1042"}]},
            {"type": "section", "text": {"type": "plain_text", "text": "Labour"}},
            {"type": "section", "text": {"type": "plain_text", "text": "Parts"}}
        ]))
    );
}

#[test]
fn blocks_that_do_not_render_to_a_json_array_fail_the_rendering() {
    let object = with_blocks(r#"{"type": "divider"}"#).compile().unwrap();
    let error = object.render(&document(), None).unwrap_err();
    assert_eq!(error.part, Some("blocks"));
    assert_eq!(error.reason, "the rendered blocks are JSON but not an array");
    let broken = with_blocks(r#"[{"type": "section", "text": "Job {{ record.generated_job_id }}"}]"#)
        .compile()
        .unwrap();
    let error = broken.render(&document(), None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("at template.blocks: the rendered blocks are not JSON"),
        "{error}"
    );
}

#[test]
fn a_blocks_template_is_checked_on_compile() {
    let error = with_blocks("[{{ record.status | shout }}]").compile().unwrap_err();
    assert_eq!(error.part, Some("blocks"));
    assert!(error.reason.starts_with("unknown filter"), "{error}");
    let error = with_blocks("[\n{% for %}]").compile().unwrap_err();
    assert_eq!((error.part, error.line), (Some("blocks"), Some(2)), "{error}");
    let blocks_alone = MessageTemplate {
        blocks: Some("[]".into()),
        ..MessageTemplate::default()
    };
    assert!(
        blocks_alone.compile().is_err(),
        "Slack needs text beside the blocks for notifications"
    );
}

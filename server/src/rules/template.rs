//! Message templates for Slack, email and SMS: minijinja (Jinja2 syntax) rendered from a rule's document.
//!
//! A [`MessageTemplate`] has up to four parts: `subject` (an email's subject line), `text` (Slack's message, the
//! SMS, an email's plain-text part), `html` (an email's HTML part) and `blocks` (Slack's Block Kit blocks, a
//! JSON array). Each part sees the document's `event`,
//! `changes`, `record`, `previous` and `account`, and `message`, the transform's output when the rule has one:
//!
//! ```jinja
//! Job {{ record.generated_job_id }} is now {{ record.status }} (was {{ previous.status or "new" }}).
//! Completed {{ record.completion_date | date }}.
//! ```
//!
//! - **Missing values render empty.** Undefined fields, and fields of `null` (such as `previous` for a new
//!   record), print nothing and are false in `{% if %}`, so one template serves every record; use
//!   `{{ value or "—" }}` or the `default` filter to show something instead.
//! - **Escaping.** Only `html` escapes what it prints (`<`, `>`, `&`, quotes); `| safe` prints markup as it is.
//!   `subject` and `text` print values as they are, and line breaks in a rendered subject become spaces.
//! - **Blocks are JSON.** `blocks` prints each value as JSON, so a string prints with its quotes and escapes
//!   and no field of a record can break the array: write `"text": {{ record.job_description }}`, and build a
//!   longer string with `~` (`"text": {{ "Job " ~ record.generated_job_id ~ " is done" }}`). The rendered
//!   output must parse as a JSON array, or the rendering fails.
//! - **Dates.** `date` and `datetime` format ServiceM8's `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD`, RFC 3339
//!   times and unix milliseconds (the event's `received_at`): `{{ record.completion_date | date }}` gives
//!   `1 May 2024`, `| datetime` gives `1 May 2024 14:05`, and either takes a format in the `time` crate's
//!   syntax, `| date("[day]/[month]/[year]")`. ServiceM8's dates show the account's local time as they are;
//!   milliseconds and RFC 3339 times show in UTC. An empty or zero date (`0000-00-00 00:00:00`) renders empty,
//!   and text that is not a date renders unchanged.
//! - **Checks and bounds.** Saving checks each part's syntax and the names of its filters, tests and functions
//!   (errors name the part and line). Rendering stops at 256 KiB of output per part, and a template that
//!   computes too much (deep loops, huge strings) runs out of fuel instead of running on.

use std::io;

use minijinja::value::{Serde, Value as TemplateValue};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// The longest source of one part.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// The longest rendered part.
pub const MAX_RENDERED_BYTES: usize = 256 * 1024;
/// What one rendering may spend, in minijinja's fuel (instructions, and bytes of data made): far beyond any
/// message, far below a runaway loop.
const FUEL: u64 = 200_000;
/// How deep includes, macros and nested blocks may go.
const RECURSION_LIMIT: usize = 64;

const DEFAULT_DATE_FORMAT: &str = "[day padding:none] [month repr:short] [year]";
const DEFAULT_DATETIME_FORMAT: &str = "[day padding:none] [month repr:short] [year] [hour]:[minute]";

/// The parts of a message, as a rule stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    /// An email's subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Plain text: Slack's message, the SMS, an email's text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An email's HTML part; what it prints is HTML-escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Slack's Block Kit blocks: renders to a JSON array; what it prints is written as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<String>,
}

/// A rendered message; a part is present when its template is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The rendered `blocks`, always a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Value>,
}

/// A template that does not compile or did not render: which part, on which line, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {}: {reason}", self.place())]
pub struct TemplateError {
    /// `subject`, `text`, `html` or `blocks`; none for the template as a whole.
    pub part: Option<&'static str>,
    pub line: Option<usize>,
    pub reason: String,
}

impl TemplateError {
    /// Where the error is: `template`, `template.html`, `template.text line 3`.
    pub fn place(&self) -> String {
        let part = self.part.map(|part| format!(".{part}")).unwrap_or_default();
        let line = self.line.map(|line| format!(" line {line}")).unwrap_or_default();
        format!("template{part}{line}")
    }
}

impl MessageTemplate {
    fn parts(&self) -> [(&'static str, Option<&String>); 4] {
        [
            ("subject", self.subject.as_ref()),
            ("text", self.text.as_ref()),
            ("html", self.html.as_ref()),
            ("blocks", self.blocks.as_ref()),
        ]
    }

    /// Checks every part: a text or HTML body, sizes, syntax, and the filters, tests and functions it names.
    pub fn compile(&self) -> Result<CompiledTemplate, TemplateError> {
        if self.text.is_none() && self.html.is_none() {
            return Err(TemplateError {
                part: None,
                line: None,
                reason: "a template needs a text or an html part".into(),
            });
        }
        let mut environment = environment();
        for (part, source) in self.parts() {
            let Some(source) = source else { continue };
            if source.len() > MAX_TEMPLATE_BYTES {
                let reason = format!("{} bytes long; at most {MAX_TEMPLATE_BYTES} are allowed", source.len());
                return Err(TemplateError {
                    part: Some(part),
                    line: None,
                    reason,
                });
            }
            environment
                .add_template_owned(part, source.clone())
                .map_err(|error| template_error(part, &error))?;
        }
        let compiled = CompiledTemplate {
            environment,
            subject: self.subject.is_some(),
            text: self.text.is_some(),
            html: self.html.is_some(),
            blocks: self.blocks.is_some(),
        };
        compiled.check_names()?;
        Ok(compiled)
    }
}

/// A checked template, ready to render.
#[derive(Debug)]
pub struct CompiledTemplate {
    environment: Environment<'static>,
    subject: bool,
    text: bool,
    html: bool,
    blocks: bool,
}

impl CompiledTemplate {
    /// Renders every part from the document and, when the rule has a transform, the message it produced.
    pub fn render(&self, document: &Value, message: Option<&Value>) -> Result<RenderedMessage, TemplateError> {
        let context = match message {
            Some(message) => minijinja::context! { message => Serde(message), ..TemplateValue::from(Serde(document)) },
            None => TemplateValue::from(Serde(document)),
        };
        let render = |present: bool, part: &'static str| present.then(|| self.render_part(part, &context)).transpose();
        Ok(RenderedMessage {
            subject: render(self.subject, "subject")?.map(|subject| subject.replace(['\r', '\n'], " ")),
            text: render(self.text, "text")?,
            html: render(self.html, "html")?,
            blocks: render(self.blocks, "blocks")?
                .map(|blocks| parse_blocks(&blocks))
                .transpose()?,
        })
    }

    fn render_part(&self, part: &'static str, context: &TemplateValue) -> Result<String, TemplateError> {
        let template = self
            .environment
            .get_template(part)
            .map_err(|error| template_error(part, &error))?;
        let mut output = BoundedOutput { bytes: Vec::new() };
        template
            .render_captured_to(context, &mut output)
            .map_err(|error| match error.kind() {
                ErrorKind::WriteFailure => TemplateError {
                    part: Some(part),
                    line: None,
                    reason: format!("the rendered {part} is longer than {MAX_RENDERED_BYTES} bytes"),
                },
                _ => template_error(part, &error),
            })?;
        Ok(String::from_utf8(output.bytes)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()))
    }

    /// Renders each part from an empty document to find names minijinja only looks up while rendering: a
    /// misspelt filter is refused on save rather than at the first delivery.
    fn check_names(&self) -> Result<(), TemplateError> {
        let empty = TemplateValue::from(Serde(serde_json::json!({})));
        let parts = [
            (self.subject, "subject"),
            (self.text, "text"),
            (self.html, "html"),
            (self.blocks, "blocks"),
        ];
        for (_, part) in parts.into_iter().filter(|(present, _)| *present) {
            if let Err(error) = self.render_part(part, &empty) {
                let unknown = ["unknown filter", "unknown test", "unknown function", "unknown method"];
                if unknown.iter().any(|words| error.reason.starts_with(words)) {
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

fn environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Chainable);
    environment.set_auto_escape_callback(|name| match name {
        "html" => AutoEscape::Html,
        "blocks" => AutoEscape::Json,
        _ => AutoEscape::None,
    });
    environment.set_fuel(Some(FUEL));
    environment.set_recursion_limit(RECURSION_LIMIT);
    environment.add_filter("date", |value: TemplateValue, format: Option<String>| {
        format_time(&value, format.as_deref().unwrap_or(DEFAULT_DATE_FORMAT))
    });
    environment.add_filter("datetime", |value: TemplateValue, format: Option<String>| {
        format_time(&value, format.as_deref().unwrap_or(DEFAULT_DATETIME_FORMAT))
    });
    environment
}

/// The rendered `blocks` part as the JSON array Slack expects.
fn parse_blocks(rendered: &str) -> Result<Value, TemplateError> {
    let refuse = |reason: String| TemplateError {
        part: Some("blocks"),
        line: None,
        reason,
    };
    match serde_json::from_str(rendered) {
        Ok(blocks @ Value::Array(_)) => Ok(blocks),
        Ok(_) => Err(refuse("the rendered blocks are JSON but not an array".into())),
        Err(error) => Err(refuse(format!("the rendered blocks are not JSON: {error}"))),
    }
}

fn template_error(part: &'static str, error: &minijinja::Error) -> TemplateError {
    let reason = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    TemplateError {
        part: Some(part),
        line: error.line(),
        reason,
    }
}

/// Collects a part's output and refuses to grow past [`MAX_RENDERED_BYTES`].
struct BoundedOutput {
    bytes: Vec<u8>,
}

impl io::Write for BoundedOutput {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + data.len() > MAX_RENDERED_BYTES {
            return Err(io::Error::other("the rendered output is too long"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `date` and `datetime` filters.
fn format_time(value: &TemplateValue, format: &str) -> Result<String, minijinja::Error> {
    let invalid = |reason: String| minijinja::Error::new(ErrorKind::InvalidOperation, reason);
    let description = time::format_description::parse_borrowed::<1>(format)
        .map_err(|error| invalid(format!("invalid date format {format:?}: {error}")))?;
    let Some(moment) = moment(value) else {
        return Ok(match value.as_str() {
            Some(text) if !is_empty_date(text) => text.to_owned(),
            _ => String::new(),
        });
    };
    moment
        .format(&description)
        .map_err(|error| invalid(format!("cannot format with {format:?}: {error}")))
}

/// A date or time the value holds, without a zone: unix milliseconds and RFC 3339 times in UTC.
fn moment(value: &TemplateValue) -> Option<PrimitiveDateTime> {
    if let Some(text) = value.as_str() {
        let text = text.trim();
        if is_empty_date(text) {
            return None;
        }
        if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
            let utc = moment.to_offset(time::UtcOffset::UTC);
            return Some(PrimitiveDateTime::new(utc.date(), utc.time()));
        }
        let datetime = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        if let Ok(moment) = PrimitiveDateTime::parse(text, datetime) {
            return Some(moment);
        }
        let date = Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
        return Some(PrimitiveDateTime::new(date, Time::MIDNIGHT));
    }
    let millis = i64::try_from(value.clone()).ok()?;
    let moment = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
    Some(PrimitiveDateTime::new(moment.date(), moment.time()))
}

/// ServiceM8 writes an unset date as zeros.
fn is_empty_date(text: &str) -> bool {
    text.trim().is_empty() || text.trim_start_matches(['0', '-', ' ', ':']).is_empty()
}

#[cfg(test)]
mod tests;

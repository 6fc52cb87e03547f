//! The scheduled digest: after each UTC day or week (from Monday), a summary of the account's analytics for it,
//! sent to the destination the account chose. It goes through the delivery queue like a rule's message, keyed by
//! its period, so it is sent once whichever node queues it first, and retried as any delivery is.

use app::analytics::model::{AnalyticsDimension, AnalyticsRange, AnalyticsReport, AnalyticsTotals, Percentiles};
use serde_json::json;

use super::report::{report_over, Span};
use super::SETTLE_MS;
use crate::rules::template::RenderedMessage;
use crate::rules::MessageBody;
use crate::store::analytics::{Cadence, Period};
use crate::store::outbound::{DestinationKind, NewDelivery};
use crate::store::{Store, StoreError};

/// What looking for a due digest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestOutcome {
    /// The last period's digest was queued now.
    Queued,
    /// It was queued before (by this node or another).
    AlreadyQueued,
    /// The account has no digest.
    NotSet,
    /// The account's digest names a destination it no longer has.
    DestinationGone,
}

/// Queues the digest of the account's last whole period at `now`, unless it is queued already. A period counts
/// as over once its last events can be rolled up (`SETTLE_MS` after it ends, and a pass after that).
pub async fn queue_due(store: &dyn Store, account: &str, now: i64) -> Result<DigestOutcome, StoreError> {
    let Some(digest) = store.analytics_digest(account).await? else {
        return Ok(DigestOutcome::NotSet);
    };
    let Some(destination) = store.destination(account, &digest.destination_id).await? else {
        return Ok(DigestOutcome::DestinationGone);
    };
    let (from, to) = digest.cadence.last_period(now - 2 * SETTLE_MS);
    let span = Span {
        period: if digest.cadence == Cadence::Daily {
            Period::Hour
        } else {
            Period::Day
        },
        from,
        to,
    };
    let report = report_over(
        store,
        account,
        span,
        AnalyticsRange::Custom,
        AnalyticsDimension::Outcome,
    )
    .await?;
    let body = match destination.kind {
        DestinationKind::Webhook => MessageBody::Json(json!({
            "type": "analytics.digest",
            "account": account,
            "cadence": digest.cadence.as_str(),
            "from": report.from,
            "to": report.to,
            "totals": report.totals,
            "previous": report.previous,
        })),
        DestinationKind::Slack | DestinationKind::Email | DestinationKind::Sms => {
            MessageBody::Rendered(render(account, digest.cadence, &report))
        }
    };
    let delivery = NewDelivery {
        id: uuid::Uuid::now_v7().to_string(),
        account: account.to_owned(),
        destination_id: destination.id,
        event_id: None,
        rule_id: None,
        rule_name: Some(DIGEST_ORIGIN.to_owned()),
        dedup_key: Some(format!("digest:{}:{from}", digest.cadence.as_str())),
        message: serde_json::to_value(&body).expect("a message serializes"),
        created_at: now,
        next_attempt_at: now,
        failed: None,
    };
    Ok(match store.enqueue_deliveries(&[delivery]).await? {
        0 => DigestOutcome::AlreadyQueued,
        _ => DigestOutcome::Queued,
    })
}

/// What a digest's delivery names as its origin where a rule's name would be.
pub const DIGEST_ORIGIN: &str = "analytics digest";

fn latency(percentiles: &Percentiles) -> String {
    match (percentiles.p50_ms, percentiles.p95_ms, percentiles.p99_ms) {
        (Some(p50), Some(p95), Some(p99)) => format!("p50 {p50} ms, p95 {p95} ms, p99 {p99} ms"),
        _ => "no samples".to_owned(),
    }
}

fn change(current: i64, previous: i64) -> String {
    match app::analytics::model::change_percent(current, previous) {
        Some(percent) => format!("{percent:+.0}% on the period before"),
        None => "nothing the period before".to_owned(),
    }
}

/// The lines of a digest, the first its title.
fn lines(account: &str, cadence: Cadence, report: &AnalyticsReport) -> Vec<String> {
    let AnalyticsTotals {
        events,
        by_outcome,
        error_classes,
        top_failing_objects,
        deliveries,
        api_requests,
        duplicates,
        refused,
        processing,
        browser,
        ..
    } = &report.totals;
    let outcome = |name: &str| by_outcome.get(name).copied().unwrap_or(0);
    let period = match cadence {
        Cadence::Daily => report.from.get(..10).unwrap_or(&report.from).to_owned(),
        Cadence::Weekly => format!("the week of {}", report.from.get(..10).unwrap_or(&report.from)),
    };
    let mut lines = vec![
        format!(
            "{} digest of {account} for {period} (UTC)",
            if cadence == Cadence::Daily { "Daily" } else { "Weekly" }
        ),
        format!("Events: {events} ({})", change(*events, report.previous.events)),
        format!(
            "Succeeded {}, failed {}, skipped {}",
            outcome("success"),
            outcome("failed"),
            outcome("skipped")
        ),
        format!("Processing: {}", latency(processing)),
        format!("Webhook to browser: {}", latency(browser)),
        format!(
            "ServiceM8 requests: {api_requests}; duplicates: {duplicates}; refused deliveries: {}",
            refused.values().sum::<i64>()
        ),
    ];
    if !error_classes.is_empty() {
        let classes: Vec<String> = error_classes.iter().map(|(class, n)| format!("{class} {n}")).collect();
        lines.push(format!("Error classes: {}", classes.join(", ")));
    }
    if !top_failing_objects.is_empty() {
        let objects: Vec<String> = top_failing_objects
            .iter()
            .take(5)
            .map(|object| format!("{} ({})", object.object, object.failures))
            .collect();
        lines.push(format!("Objects that failed most: {}", objects.join(", ")));
    }
    for destination in deliveries {
        lines.push(format!(
            "Deliveries to {}: {} delivered, {} failed",
            destination.destination, destination.delivered, destination.failed
        ));
    }
    lines
}

/// The digest as a subject, text and HTML (each destination kind takes what it sends).
fn render(account: &str, cadence: Cadence, report: &AnalyticsReport) -> RenderedMessage {
    let lines = lines(account, cadence, report);
    let escape = |line: &str| line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let items: String = lines[1..]
        .iter()
        .map(|line| format!("<li>{}</li>", escape(line)))
        .collect();
    RenderedMessage {
        subject: Some(lines[0].clone()),
        text: Some(lines.join("\n")),
        html: Some(format!("<h2>{}</h2><ul>{items}</ul>", escape(&lines[0]))),
        blocks: None,
    }
}

#[cfg(test)]
mod tests {
    use app::analytics::model::FailingObject;

    use super::*;

    #[test]
    fn a_digest_names_its_period_and_lists_the_totals_with_their_change() {
        let mut report = AnalyticsReport {
            from: "2026-01-05T00:00:00Z".into(),
            to: "2026-01-12T00:00:00Z".into(),
            ..AnalyticsReport::default()
        };
        report.totals.events = 150;
        report.totals.by_outcome.insert("success".into(), 140);
        report.totals.by_outcome.insert("failed".into(), 10);
        report.totals.error_classes.insert("timeout".into(), 4);
        report.totals.top_failing_objects = vec![FailingObject {
            object: "job:<a>".into(),
            failures: 3,
        }];
        report.previous.events = 100;
        let message = render("acme", Cadence::Weekly, &report);
        assert_eq!(
            message.subject.as_deref(),
            Some("Weekly digest of acme for the week of 2026-01-05 (UTC)")
        );
        let text = message.text.unwrap();
        assert!(text.contains("Events: 150 (+50% on the period before)"), "{text}");
        assert!(text.contains("Succeeded 140, failed 10, skipped 0"), "{text}");
        assert!(text.contains("Error classes: timeout 4"), "{text}");
        assert!(text.contains("Processing: no samples"), "{text}");
        assert!(message.html.unwrap().contains("job:&lt;a&gt; (3)"));
    }
}

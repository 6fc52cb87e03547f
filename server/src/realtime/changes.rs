//! `postgres_changes` over the mirror tables: what a join's `config.postgres_changes` bindings ask for, which
//! row changes each one matches, who may see a row, and the frame realtime-js reads.
//!
//! A binding names an event (`INSERT`, `UPDATE`, `DELETE` or `*`), schema `public`, a table (a mirror table, an
//! alias from `ALIASES`, or none for every table) and at most one filter in PostgREST's syntax: `column=op.value`
//! with `eq`, `neq`, `lt`, `lte`, `gt`, `gte`, or `in.(a,b)`. A bad binding refuses the join with its reason.
//!
//! Row changes travel as ephemeral broadcasts on the account's `ROWS_TOPIC` (a hub topic no client can name, as
//! every client topic starts with `realtime:`), so the PostgreSQL bus carries them to every node like any
//! broadcast. Access is like row-level security: an account's admin and viewer tokens see its rows, a portal token
//! only its company's, no token none. The frame is upstream's:
//! `{ids, data: {schema, table, commit_timestamp, type, columns, record, old_record, errors}}`; realtime-js makes
//! `eventType`, `new` and `old` from it and calls the callbacks of the bindings in `ids`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::auth::Identity;
use super::bus::{Broadcast, Publication};
use super::protocol::{BroadcastPayload, Frame, Outgoing};
use super::scope::scoped;
use crate::store::{row_columns, ObjectSpec, OBJECTS};
use crate::updates::{RowChange, RowChangeKind};

/// The hub topic, per account, that carries its row changes.
pub const ROWS_TOPIC: &str = "postgres_changes";
/// The event of row change frames, as upstream names it.
const ROWS_EVENT: &str = "postgres_changes";
/// The only schema: the mirror tables are `public`'s.
const SCHEMA: &str = "public";
/// Table names a binding may use for the mirror tables, beside their own.
pub const ALIASES: &[(&str, &str)] = &[
    ("jobs", "sm8_jobs"),
    ("companies", "sm8_companies"),
    ("job_activities", "sm8_job_activities"),
    ("activities", "sm8_job_activities"),
    ("attachments", "sm8_attachments"),
    ("staff", "sm8_staff"),
];

/// A row change on its way to table subscribers, with the company its row belongs to (for access).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowEvent {
    pub change: RowChange,
    pub company_uuid: Option<String>,
}

impl RowEvent {
    /// The broadcast that carries the change to `account`'s table subscribers on every node.
    pub fn publication(&self, account: &str) -> Publication {
        let payload = serde_json::to_value(self).expect("a row change serialises");
        Publication::Ephemeral(Broadcast::new(
            scoped(account, ROWS_TOPIC),
            ROWS_EVENT,
            BroadcastPayload::Json(payload),
            None,
            false,
        ))
    }

    pub fn from_payload(payload: &BroadcastPayload) -> Option<RowEvent> {
        match payload {
            BroadcastPayload::Json(value) => serde_json::from_value(value.clone()).ok(),
            BroadcastPayload::Raw(_) => None,
        }
    }

    /// Whether `identity` may see the row (its topic already keeps other accounts' rows away).
    pub fn visible_to(&self, identity: &Identity) -> bool {
        match identity {
            Identity::Admin { .. } | Identity::Viewer { .. } => true,
            Identity::Portal { company_uuid, .. } => self.company_uuid.as_ref() == Some(company_uuid),
            Identity::Anonymous => false,
        }
    }

    /// The `postgres_changes` frame for the channel on `topic`, naming the bindings `ids` it matched.
    pub fn frame(&self, topic: &str, ids: &[u64]) -> Outgoing {
        let change = &self.change;
        let columns: Vec<Value> = table_spec(&change.table)
            .map(row_columns)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, kind)| json!({"name": name, "type": kind}))
            .collect();
        let mut data = json!({
            "schema": SCHEMA,
            "table": change.table,
            "commit_timestamp": commit_timestamp(change.committed_at),
            "type": change.kind,
            "columns": columns,
            "errors": null,
        });
        if change.kind != RowChangeKind::Delete {
            data["record"] = change.new.clone();
        }
        if let Some(old) = &change.old {
            data["old_record"] = old.clone();
        }
        let payload = json!({"ids": ids, "data": data});
        Outgoing::Frame(Frame::new(None, None, topic, ROWS_EVENT, payload))
    }
}

fn commit_timestamp(unix_millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_millis) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn table_spec(table: &str) -> Option<&'static ObjectSpec> {
    OBJECTS.iter().copied().find(|spec| spec.table == table)
}

/// One `postgres_changes` binding of a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The id the join reply gave it, which row change frames name.
    pub id: u64,
    /// `None` for `*`.
    event: Option<RowChangeKind>,
    /// `None` for every table.
    table: Option<&'static ObjectSpec>,
    filter: Option<Filter>,
}

impl Binding {
    /// Reads a client's binding, or says what is wrong with it.
    pub fn parse(binding: &Value, id: u64) -> Result<Binding, String> {
        let text = |field: &str| binding.get(field).and_then(Value::as_str);
        let event = match text("event").map(str::to_ascii_uppercase).as_deref() {
            Some("*") => None,
            Some("INSERT") => Some(RowChangeKind::Insert),
            Some("UPDATE") => Some(RowChangeKind::Update),
            Some("DELETE") => Some(RowChangeKind::Delete),
            other => return Err(format!("event must be INSERT, UPDATE, DELETE or *, not {other:?}")),
        };
        if text("schema").is_some_and(|schema| schema != SCHEMA) {
            return Err(format!("schema must be {SCHEMA}"));
        }
        let table = match text("table").filter(|table| *table != "*") {
            None => None,
            Some(name) => {
                let table = ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == name)
                    .map_or(name, |(_, table)| table);
                Some(table_spec(table).ok_or_else(|| format!("unknown table {name:?}"))?)
            }
        };
        let filter = match text("filter").filter(|filter| !filter.is_empty()) {
            None => None,
            Some(filter) => Some(Filter::parse(filter, table)?),
        };
        Ok(Binding {
            id,
            event,
            table,
            filter,
        })
    }

    /// Whether `change` is one this binding asked for. A filter reads the row the change shows: the new one, or
    /// for a delete the old one.
    pub fn matches(&self, change: &RowChange) -> bool {
        let row = match change.kind {
            RowChangeKind::Delete => change.old.as_ref().unwrap_or(&change.new),
            RowChangeKind::Insert | RowChangeKind::Update => &change.new,
        };
        self.event.is_none_or(|event| event == change.kind)
            && self.table.is_none_or(|table| table.table == change.table)
            && self.filter.as_ref().is_none_or(|filter| filter.matches(row))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    column: String,
    operator: Operator,
    /// One value, or `in`'s list.
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
}

impl Filter {
    /// `column=op.value`, the column one of the table's (of any mirror table's when none is named).
    fn parse(filter: &str, table: Option<&ObjectSpec>) -> Result<Filter, String> {
        let malformed = || format!("filter {filter:?} is not column=op.value");
        let (column, condition) = filter.split_once('=').ok_or_else(malformed)?;
        let (operator, value) = condition.split_once('.').ok_or_else(malformed)?;
        let known = match table {
            Some(table) => row_columns(table).iter().any(|(name, _)| *name == column),
            None => OBJECTS
                .iter()
                .any(|table| row_columns(table).iter().any(|(name, _)| *name == column)),
        };
        if !known {
            return Err(format!("filter column {column:?} is not a column of the table"));
        }
        let operator = match operator {
            "eq" => Operator::Eq,
            "neq" => Operator::Neq,
            "lt" => Operator::Lt,
            "lte" => Operator::Lte,
            "gt" => Operator::Gt,
            "gte" => Operator::Gte,
            "in" => Operator::In,
            other => {
                return Err(format!(
                    "filter operator {other:?} is not eq, neq, lt, lte, gt, gte or in"
                ))
            }
        };
        let values = if operator == Operator::In {
            let list = value
                .strip_prefix('(')
                .and_then(|list| list.strip_suffix(')'))
                .ok_or_else(|| format!("filter {filter:?}: in takes a list, in.(a,b)"))?;
            list.split(',').map(|item| unquote(item.trim()).to_owned()).collect()
        } else {
            vec![unquote(value).to_owned()]
        };
        Ok(Filter {
            column: column.to_owned(),
            operator,
            values,
        })
    }

    /// As SQL compares: numbers as numbers, text as text, and a null matches nothing.
    fn matches(&self, row: &Value) -> bool {
        let cell = match row.get(&self.column) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            Some(Value::Bool(flag)) => flag.to_string(),
            _ => return false,
        };
        let order = |value: &String| match (cell.parse::<f64>(), value.parse::<f64>()) {
            (Ok(cell), Ok(value)) => cell.partial_cmp(&value),
            _ => Some(cell.as_str().cmp(value.as_str())),
        };
        use std::cmp::Ordering::{Equal, Greater, Less};
        let first = order(&self.values[0]);
        match self.operator {
            Operator::Eq => first == Some(Equal),
            Operator::Neq => first.is_some_and(|order| order != Equal),
            Operator::Lt => first == Some(Less),
            Operator::Lte => matches!(first, Some(Less | Equal)),
            Operator::Gt => first == Some(Greater),
            Operator::Gte => matches!(first, Some(Greater | Equal)),
            Operator::In => self.values.iter().any(|value| order(value) == Some(Equal)),
        }
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_change(kind: RowChangeKind, status: &str, generated_job_id: &str) -> RowChange {
        let row = json!({"uuid": "j1", "company_uuid": "c1", "status": status, "generated_job_id": generated_job_id,
                         "edit_date": "", "active": 1, "record": {}, "mirrored_at": 5});
        RowChange {
            table: "sm8_jobs".into(),
            kind,
            new: row.clone(),
            old: (kind != RowChangeKind::Insert).then_some(row),
            committed_at: 1_700_000_000_123,
        }
    }

    fn binding(value: Value) -> Result<Binding, String> {
        Binding::parse(&value, 1)
    }

    #[test]
    fn bindings_name_mirror_tables_or_their_aliases_and_bad_ones_say_why() {
        let alias = binding(json!({"event": "*", "schema": "public", "table": "jobs"})).unwrap();
        assert_eq!(alias.table.map(|t| t.table), Some("sm8_jobs"));
        assert!(binding(json!({"event": "insert", "schema": "public", "table": "sm8_staff"})).is_ok());
        assert!(binding(json!({"event": "*", "schema": "public"}))
            .unwrap()
            .table
            .is_none());
        for (bad, reason) in [
            (
                json!({"event": "*", "schema": "public", "table": "todos"}),
                "unknown table",
            ),
            (json!({"event": "TRUNCATE", "schema": "public"}), "event must be"),
            (json!({"event": "*", "schema": "private"}), "schema must be public"),
            (
                json!({"event": "*", "table": "jobs", "filter": "status"}),
                "is not column=op.value",
            ),
            (
                json!({"event": "*", "table": "jobs", "filter": "colour=eq.red"}),
                "not a column",
            ),
            (
                json!({"event": "*", "table": "jobs", "filter": "status=like.Q%"}),
                "operator",
            ),
            (
                json!({"event": "*", "table": "jobs", "filter": "status=in.Quote"}),
                "takes a list",
            ),
        ] {
            let error = binding(bad.clone()).unwrap_err();
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn a_binding_matches_its_event_table_and_filter() {
        let update = job_change(RowChangeKind::Update, "Completed", "42");
        let matches = |value: Value| binding(value).unwrap().matches(&update);
        assert!(matches(json!({"event": "*", "table": "jobs"})));
        assert!(matches(json!({"event": "UPDATE"})));
        assert!(!matches(json!({"event": "INSERT", "table": "jobs"})));
        assert!(!matches(json!({"event": "*", "table": "companies"})));
        for (filter, expected) in [
            ("status=eq.Completed", true),
            ("status=neq.Completed", false),
            ("status=in.(Quote,\"Completed\")", true),
            ("status=in.(Quote,Work Order)", false),
            ("generated_job_id=gt.9", true),
            ("generated_job_id=lt.100", true),
            ("generated_job_id=gte.42", true),
            ("generated_job_id=lte.41", false),
            ("active=eq.1", true),
            ("company_uuid=eq.c2", false),
        ] {
            assert_eq!(
                matches(json!({"event": "*", "table": "jobs", "filter": filter})),
                expected,
                "{filter}"
            );
        }
    }

    #[test]
    fn portal_tokens_see_only_their_companys_rows_and_no_token_none() {
        let event = RowEvent {
            change: job_change(RowChangeKind::Insert, "Quote", "1"),
            company_uuid: Some("c1".into()),
        };
        let portal = |company: &str| Identity::Portal {
            account: "default".into(),
            company_uuid: company.into(),
        };
        assert!(event.visible_to(&portal("c1")));
        assert!(!event.visible_to(&portal("c2")));
        assert!(event.visible_to(&Identity::Viewer {
            account: "default".into()
        }));
        assert!(!event.visible_to(&Identity::Anonymous));
    }

    #[test]
    fn the_frame_is_upstreams_with_the_old_row_for_updates_and_deletes() {
        let event = RowEvent {
            change: job_change(RowChangeKind::Delete, "Quote", "1"),
            company_uuid: None,
        };
        let Outgoing::Frame(frame) = event.frame("realtime:jobs", &[3, 5]) else {
            panic!("a frame")
        };
        assert_eq!(
            (frame.topic.as_str(), frame.event.as_str()),
            ("realtime:jobs", "postgres_changes")
        );
        let data = &frame.payload["data"];
        assert_eq!(frame.payload["ids"], json!([3, 5]));
        assert_eq!(
            (data["schema"].as_str(), data["table"].as_str()),
            (Some("public"), Some("sm8_jobs"))
        );
        assert_eq!(data["type"], "DELETE");
        assert_eq!(data["commit_timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(data["old_record"]["status"], "Quote");
        assert!(data.get("record").is_none());
        assert_eq!(data["errors"], Value::Null);
        assert!(data["columns"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "record", "type": "jsonb"})));
    }
}

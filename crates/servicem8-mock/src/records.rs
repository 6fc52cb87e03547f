//! The records of the simulated account: its object types, the tables holding them, and keyset pages over them.
//!
//! Records are plain JSON maps shaped like the real API's: every record
//! has `uuid`, `active` (1/0; deleting sets 0) and `edit_date` (`YYYY-MM-DD HH:MM:SS`, UTC).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use app::objects::{self, ObjectSpec};
use serde_json::{Map, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use super::filter::Filter;

/// One record: field name to value, as the API serves it.
pub type Record = Map<String, Value>;

/// How ServiceM8 writes an unset date.
pub const NO_DATE: &str = "0000-00-00 00:00:00";

/// The object types the simulated account serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Job,
    Company,
    JobActivity,
    Attachment,
    Staff,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::Job,
        ObjectKind::Company,
        ObjectKind::JobActivity,
        ObjectKind::Attachment,
        ObjectKind::Staff,
    ];

    /// The product's description of this object type (`app::objects`).
    pub fn spec(self) -> &'static ObjectSpec {
        match self {
            ObjectKind::Job => &objects::JOB,
            ObjectKind::Company => &objects::COMPANY,
            ObjectKind::JobActivity => &objects::JOB_ACTIVITY,
            ObjectKind::Attachment => &objects::ATTACHMENT,
            ObjectKind::Staff => &objects::STAFF,
        }
    }

    /// The name in URLs and callbacks, lowercase.
    pub fn as_str(self) -> &'static str {
        self.spec().object_type
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown object type `{0}`")]
pub struct UnknownObject(pub String);

impl FromStr for ObjectKind {
    type Err = UnknownObject;

    /// Case-insensitive, as in the real API's paths (`Job.json` is `job.json`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ObjectKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownObject(name.to_owned()))
    }
}

/// Why a change to a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("no {0} record with uuid {1}")]
    NotFound(ObjectKind, String),
    #[error("a record must be a JSON object")]
    NotAnObject,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// All records of the account, each table ordered by uuid so that a page can continue after the last uuid seen,
/// whatever was inserted meanwhile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    tables: BTreeMap<ObjectKind, BTreeMap<String, Record>>,
}

impl Records {
    pub fn get(&self, kind: ObjectKind, uuid: &str) -> Option<&Record> {
        self.tables.get(&kind)?.get(uuid)
    }

    pub fn len(&self, kind: ObjectKind) -> usize {
        self.tables.get(&kind).map_or(0, BTreeMap::len)
    }

    /// The uuids of `kind`, in table order.
    pub fn uuids(&self, kind: ObjectKind) -> impl Iterator<Item = &String> {
        self.tables.get(&kind).into_iter().flat_map(BTreeMap::keys)
    }

    /// Records of `kind` matching `filter`: all of them when `page_size` is `None`, else up to `page_size` after
    /// `cursor` (`None` starts at the beginning).
    pub fn list(&self, kind: ObjectKind, filter: &Filter, cursor: Option<&str>, page_size: Option<usize>) -> Page {
        let Some(table) = self.tables.get(&kind) else {
            return Page {
                records: Vec::new(),
                next_cursor: None,
            };
        };
        let start = match cursor {
            Some(after) => std::ops::Bound::Excluded(after.to_owned()),
            None => std::ops::Bound::Unbounded,
        };
        let mut matching = table
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(_, record)| filter.matches(record))
            .map(|(_, record)| record);
        let Some(page_size) = page_size else {
            return Page {
                records: matching.cloned().collect(),
                next_cursor: None,
            };
        };
        let records: Vec<Record> = matching.by_ref().take(page_size.max(1)).cloned().collect();
        let next_cursor = match matching.next() {
            Some(_) => records.last().and_then(|last| last["uuid"].as_str()).map(str::to_owned),
            None => None,
        };
        Page { records, next_cursor }
    }

    /// Stores `record` (which must carry a `uuid`), replacing any record with that uuid.
    pub fn put(&mut self, kind: ObjectKind, record: Record) {
        let uuid = record
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.tables.entry(kind).or_default().insert(uuid, record);
    }

    /// Sets the fields of `changes` on the record and bumps its `edit_date`; returns the names of the fields
    /// whose value changed.
    pub fn update(
        &mut self,
        kind: ObjectKind,
        uuid: &str,
        changes: Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, RecordError> {
        let record = self
            .tables
            .get_mut(&kind)
            .and_then(|table| table.get_mut(uuid))
            .ok_or_else(|| RecordError::NotFound(kind, uuid.to_owned()))?;
        let mut changed = Vec::new();
        for (field, value) in changes {
            // The identity of a record never changes.
            if field == "uuid" {
                continue;
            }
            if record.get(&field) != Some(&value) {
                changed.push(field.clone());
                record.insert(field, value);
            }
        }
        record.insert("edit_date".into(), format_date(now).into());
        Ok(changed)
    }
}

/// A date as ServiceM8 writes it: `YYYY-MM-DD HH:MM:SS`.
pub fn format_date(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
        .expect("every date formats")
}

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(uuid: &str, edit_date: &str) -> Record {
        json!({"uuid": uuid, "active": 1, "edit_date": edit_date})
            .as_object()
            .unwrap()
            .clone()
    }

    fn table_of(count: usize) -> Records {
        let mut records = Records::default();
        for i in 0..count {
            records.put(ObjectKind::Job, record(&format!("uuid-{i:03}"), "2024-01-01 00:00:00"));
        }
        records
    }

    #[test]
    fn object_names_are_case_insensitive() {
        assert_eq!("Job".parse(), Ok(ObjectKind::Job));
        assert_eq!("JOBACTIVITY".parse(), Ok(ObjectKind::JobActivity));
        assert_eq!("attachment".parse(), Ok(ObjectKind::Attachment));
        assert_eq!("invoice".parse::<ObjectKind>(), Err(UnknownObject("invoice".into())));
    }

    #[test]
    fn paging_with_the_cursor_visits_every_record_once() {
        let records = table_of(7);
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = records.list(ObjectKind::Job, &Filter::default(), cursor.as_deref(), Some(3));
            pages += 1;
            seen.extend(page.records.iter().map(|r| r["uuid"].as_str().unwrap().to_owned()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, records.uuids(ObjectKind::Job).cloned().collect::<Vec<_>>());
    }

    #[test]
    fn a_page_that_ends_the_table_exactly_has_no_cursor() {
        let records = table_of(6);
        let first = records.list(ObjectKind::Job, &Filter::default(), None, Some(3));
        let second = records.list(
            ObjectKind::Job,
            &Filter::default(),
            first.next_cursor.as_deref(),
            Some(3),
        );
        assert_eq!(second.records.len(), 3);
        assert_eq!(second.next_cursor, None);
    }

    #[test]
    fn without_a_page_size_everything_is_listed() {
        let page = table_of(12).list(ObjectKind::Job, &Filter::default(), None, None);
        assert_eq!((page.records.len(), page.next_cursor), (12, None));
    }

    #[test]
    fn an_update_reports_the_fields_that_changed_and_bumps_the_edit_date() {
        let mut records = table_of(1);
        let now = time::macros::datetime!(2025-03-04 05:06:07 UTC);
        let changes = json!({"status": "Completed", "active": 1, "uuid": "other"})
            .as_object()
            .unwrap()
            .clone();
        let changed = records.update(ObjectKind::Job, "uuid-000", changes, now).unwrap();
        assert_eq!(changed, ["status"]);
        let stored = records.get(ObjectKind::Job, "uuid-000").unwrap();
        assert_eq!(stored["edit_date"], "2025-03-04 05:06:07");
        assert_eq!(stored["uuid"], "uuid-000");
        assert_eq!(
            records.update(ObjectKind::Job, "missing", Map::new(), now),
            Err(RecordError::NotFound(ObjectKind::Job, "missing".into()))
        );
    }
}

//! Mirror tables: one per ServiceM8 object type (`app::objects`), with typed key columns copied from the record.

pub use app::objects::{object_spec, ObjectSpec, OBJECTS};
use serde_json::{Map, Value};

use crate::updates::{RowChange, RowChangeKind};

/// A record ready to be written to its mirror table.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorRecord {
    /// The account whose ServiceM8 the record came from.
    pub account: String,
    pub table: &'static ObjectSpec,
    pub uuid: String,
    pub edit_date: String,
    pub active: bool,
    pub record: serde_json::Value,
}

impl MirrorRecord {
    /// Builds `account`'s row from a ServiceM8 record; `None` when it lacks a uuid.
    pub fn from_record(account: &str, table: &'static ObjectSpec, record: serde_json::Value) -> Option<MirrorRecord> {
        let uuid = record.get("uuid")?.as_str()?.to_owned();
        let edit_date = text_field(&record, "edit_date").unwrap_or_default();
        let active = match record.get("active") {
            Some(serde_json::Value::Bool(active)) => *active,
            Some(serde_json::Value::Number(n)) => n.as_i64() != Some(0),
            Some(serde_json::Value::String(s)) => s != "0",
            _ => true,
        };
        Some(MirrorRecord {
            account: account.to_owned(),
            table,
            uuid,
            edit_date,
            active,
            record,
        })
    }

    /// The value of each key column, in `table.key_columns` order.
    pub fn key_values(&self) -> Vec<Option<String>> {
        self.table
            .key_columns
            .iter()
            .map(|column| text_field(&self.record, column))
            .collect()
    }

    /// `INSERT ... ON CONFLICT DO UPDATE` that only replaces an older or equal edit_date, with `$n` binds (both
    /// engines read them): account, uuid, keys..., edit_date, active, record, mirrored_at.
    pub fn upsert_sql(&self) -> String {
        let keys = self.table.key_columns;
        let columns = ["account", "uuid"]
            .iter()
            .chain(keys)
            .chain(&["edit_date", "active", "record", "mirrored_at"])
            .copied();
        let columns: Vec<&str> = columns.collect();
        let values: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
        let updates: Vec<String> = columns[2..]
            .iter()
            .map(|column| format!("{column} = excluded.{column}"))
            .collect();
        format!(
            "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (account, uuid) DO UPDATE SET {updates} \
             WHERE excluded.edit_date >= {table}.edit_date",
            table = self.table.table,
            columns = columns.join(", "),
            values = values.join(", "),
            updates = updates.join(", "),
        )
    }
}

impl MirrorRecord {
    /// The row as its table holds it (without `account`), as table subscribers see it.
    pub fn row(&self, mirrored_at: i64) -> Value {
        let mut row = Map::new();
        row.insert("uuid".into(), self.uuid.clone().into());
        for (column, value) in self.table.key_columns.iter().zip(self.key_values()) {
            row.insert((*column).into(), value.map_or(Value::Null, Value::String));
        }
        row.insert("edit_date".into(), self.edit_date.clone().into());
        row.insert("active".into(), i32::from(self.active).into());
        row.insert("record".into(), self.record.clone());
        row.insert("mirrored_at".into(), mirrored_at.into());
        Value::Object(row)
    }

    /// What `write` of this record, at `mirrored_at`, looks like to table subscribers: a record appearing
    /// (new, or active again) is an insert, one turning `active = 0` a delete; `None` when no visible row changed.
    pub fn change(&self, write: &MirrorWrite, mirrored_at: i64) -> Option<RowChange> {
        let (kind, old) = match write {
            MirrorWrite::Stale => return None,
            MirrorWrite::Inserted if self.active => (RowChangeKind::Insert, None),
            MirrorWrite::Inserted => return None,
            MirrorWrite::Updated { previous } => match (previous.active, self.active) {
                (true, true) => (RowChangeKind::Update, Some(previous.row.clone())),
                (true, false) => (RowChangeKind::Delete, Some(previous.row.clone())),
                (false, true) => (RowChangeKind::Insert, None),
                (false, false) => return None,
            },
        };
        Some(RowChange {
            table: self.table.table.to_owned(),
            kind,
            new: self.row(mirrored_at),
            old,
            committed_at: mirrored_at,
        })
    }
}

/// The columns of `table`'s rows as `MirrorRecord::row` gives them, with their PostgreSQL type names (what
/// realtime-js converts values by).
pub fn row_columns(table: &ObjectSpec) -> Vec<(&'static str, &'static str)> {
    let keys = table.key_columns.iter().map(|column| (*column, "text"));
    [("uuid", "text")]
        .into_iter()
        .chain(keys)
        .chain([
            ("edit_date", "text"),
            ("active", "int4"),
            ("record", "jsonb"),
            ("mirrored_at", "int8"),
        ])
        .collect()
}

/// A field as text: strings as they are, numbers and booleans rendered, null and absent as `None`.
pub fn text_field(record: &serde_json::Value, field: &str) -> Option<String> {
    match record.get(field)? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// What a mirror write did to the stored record.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorWrite {
    /// There was none: the record is new.
    Inserted,
    /// It replaced the stored record, which was `previous`.
    Updated { previous: StoredRecord },
    /// The stored record has a newer edit_date; nothing was written.
    Stale,
}

/// A mirrored record as it was stored before a write.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Its `active` column.
    pub active: bool,
    /// The row, as `MirrorRecord::row` gives it.
    pub row: Value,
}

impl StoredRecord {
    /// `table`'s stored row of `account`: its `record`, `active` and `mirrored_at` columns.
    pub fn new(account: &str, table: &'static ObjectSpec, record: Value, active: bool, mirrored_at: i64) -> Self {
        let row = MirrorRecord::from_record(account, table, record)
            .map_or(Value::Null, |stored| MirrorRecord { active, ..stored }.row(mirrored_at));
        StoredRecord { active, row }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_becomes_a_row_with_its_key_columns() {
        let table = object_spec("job").unwrap();
        let row = MirrorRecord::from_record(
            "default",
            table,
            json!({"uuid": "j1", "company_uuid": "c1", "status": "Quote", "generated_job_id": 42,
                   "edit_date": "2024-01-01 10:00:00", "active": 1}),
        )
        .unwrap();
        assert_eq!(
            row.key_values(),
            vec![Some("c1".into()), Some("Quote".into()), Some("42".into())]
        );
        assert!(row.active);
        assert_eq!(row.edit_date, "2024-01-01 10:00:00");
    }

    #[test]
    fn active_zero_means_deleted() {
        let table = object_spec("staff").unwrap();
        let row = MirrorRecord::from_record("default", table, json!({"uuid": "s1", "active": 0})).unwrap();
        assert!(!row.active);
        let row = MirrorRecord::from_record("default", table, json!({"uuid": "s1", "active": "0"})).unwrap();
        assert!(!row.active);
    }

    #[test]
    fn a_record_without_uuid_is_not_mirrored() {
        assert_eq!(
            MirrorRecord::from_record("default", object_spec("job").unwrap(), json!({"status": "Quote"})),
            None
        );
    }

    #[test]
    fn writes_become_inserts_updates_and_deletes_by_what_was_stored() {
        let table = object_spec("job").unwrap();
        let row = |status: &str, active: i32| {
            MirrorRecord::from_record(
                "default",
                table,
                json!({"uuid": "j1", "company_uuid": "c1", "status": status, "active": active}),
            )
            .unwrap()
        };
        let stored = |status: &str, active: i32| MirrorWrite::Updated {
            previous: StoredRecord::new("default", table, row(status, active).record, active == 1, 5),
        };
        let insert = row("Quote", 1).change(&MirrorWrite::Inserted, 9).unwrap();
        assert_eq!((insert.kind, insert.old), (RowChangeKind::Insert, None));
        assert_eq!(insert.new["status"], "Quote");
        assert_eq!(insert.new["record"]["status"], "Quote");
        assert_eq!(
            (insert.new["active"].clone(), insert.new["mirrored_at"].clone()),
            (json!(1), json!(9))
        );
        let update = row("Completed", 1).change(&stored("Quote", 1), 9).unwrap();
        assert_eq!(update.kind, RowChangeKind::Update);
        assert_eq!(update.old.unwrap()["status"], "Quote");
        let delete = row("Quote", 0).change(&stored("Quote", 1), 9).unwrap();
        assert_eq!(
            (delete.kind, delete.old.unwrap()["active"].clone()),
            (RowChangeKind::Delete, json!(1))
        );
        assert_eq!(
            row("Quote", 1).change(&stored("Quote", 0), 9).unwrap().kind,
            RowChangeKind::Insert
        );
        assert_eq!(row("Quote", 0).change(&stored("Quote", 0), 9), None);
        assert_eq!(row("Quote", 0).change(&MirrorWrite::Inserted, 9), None);
        assert_eq!(row("Quote", 1).change(&MirrorWrite::Stale, 9), None);
        let columns: Vec<&str> = row_columns(table).into_iter().map(|(name, _)| name).collect();
        assert_eq!(insert.new.as_object().unwrap().keys().count(), columns.len());
    }

    #[test]
    fn the_upsert_only_replaces_older_records() {
        let table = object_spec("company").unwrap();
        let row = MirrorRecord::from_record("default", table, json!({"uuid": "c1"})).unwrap();
        let sql = row.upsert_sql();
        assert!(
            sql.starts_with("INSERT INTO sm8_companies (account, uuid, name, edit_date, active, record, mirrored_at)")
        );
        assert!(sql.contains("VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account, uuid)"));
        assert!(sql.ends_with("WHERE excluded.edit_date >= sm8_companies.edit_date"));
        assert_eq!(object_spec("form"), None);
    }
}

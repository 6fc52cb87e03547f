//! Mirror tables: one per ServiceM8 object type (`app::objects`), with typed key columns copied from the record.

pub use app::objects::{object_spec, ObjectSpec, OBJECTS};

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

/// A field as text: strings as they are, numbers and booleans rendered, null and absent as `None`.
pub fn text_field(record: &serde_json::Value, field: &str) -> Option<String> {
    match record.get(field)? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Whether a mirror write changed the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorWrite {
    Applied,
    /// The stored record has a newer edit_date; nothing was written.
    Stale,
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

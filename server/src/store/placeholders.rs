//! Statement parameters for statements of many rows, written once for both engines.
//!
//! The shared SQL numbers its parameters (`$1, $2, …`), which both engines accept. SQLite, though, keeps numbered
//! parameters in a list that it searches from the start for each parameter it prepares or binds, so a statement
//! of n numbered parameters costs O(n²): a thousand events of 14 columns, 14,000 parameters, took the one writer
//! about a tenth of a second to bind, and every request waiting on that commit waited as long. Plain `?`
//! parameters are bound by position at no such cost. [`for_engine`] rewrites a statement for SQLite when its
//! parameters appear in order, each once, as every statement built from [`numbered`] and [`value_rows`] does.

use sqlx::Database;

/// `$first, $first+1, …`: `count` numbered placeholders.
pub fn numbered(first: usize, count: usize) -> String {
    let placeholders: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    placeholders.join(", ")
}

/// `($1, $2), ($3, $4), …`: `rows` rows of `columns` placeholders each.
pub fn value_rows(rows: usize, columns: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| format!("({})", numbered(row * columns + 1, columns)))
        .collect();
    rows.join(", ")
}

/// `sql` as engine `DB` binds it fastest: on SQLite with `?` for each `$n` when that reads the same.
pub fn for_engine<DB: Database>(sql: String) -> String {
    if DB::NAME == <sqlx::Sqlite as Database>::NAME {
        positional(&sql).unwrap_or(sql)
    } else {
        sql
    }
}

/// `sql` with each `$n` written `?`, when the parameters appear as `$1, $2, $3, …` in that order, each once (so
/// that binding by position binds the same values); `None` when one is used twice or out of order. Text in
/// single quotes is left as it is.
fn positional(sql: &str) -> Option<String> {
    let mut rewritten = String::with_capacity(sql.len());
    let mut expected = 1_usize;
    let mut quoted = false;
    let mut rest = sql;
    while let Some(at) = rest.find(['$', '\'']) {
        rewritten.push_str(&rest[..at]);
        let (mark, after) = rest[at..].split_at(1);
        if mark == "'" {
            quoted = !quoted;
            rewritten.push('\'');
            rest = after;
            continue;
        }
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let follows_a_name = rewritten
            .chars()
            .next_back()
            .is_some_and(|previous| previous.is_alphanumeric() || previous == '_');
        if quoted || digits == 0 || follows_a_name {
            rewritten.push('$');
            rest = after;
            continue;
        }
        if after[..digits].parse::<usize>().ok()? != expected {
            return None;
        }
        expected += 1;
        rewritten.push('?');
        rest = &after[digits..];
    }
    rewritten.push_str(rest);
    Some(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_placeholders_number_each_column_of_each_row() {
        assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(numbered(9, 2), "$9, $10");
    }

    #[test]
    fn parameters_in_order_become_positional_on_sqlite_only() {
        let sql = format!(
            "UPDATE t SET a = $1, b = COALESCE($2, b) WHERE id IN ({})",
            numbered(3, 10)
        );
        assert_eq!(
            for_engine::<sqlx::Sqlite>(sql.clone()),
            "UPDATE t SET a = ?, b = COALESCE(?, b) WHERE id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        assert_eq!(for_engine::<sqlx::Postgres>(sql.clone()), sql);
        assert_eq!(
            for_engine::<sqlx::Sqlite>(format!("INSERT INTO t (a, b) VALUES {}", value_rows(2, 2))),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn a_parameter_used_twice_or_out_of_order_keeps_its_number() {
        assert_eq!(positional("SELECT $1 WHERE a = $2 OR b = $2"), None);
        assert_eq!(positional("SELECT $2, $1"), None);
        let sql = "SELECT $1, $3".to_owned();
        assert_eq!(for_engine::<sqlx::Sqlite>(sql.clone()), sql);
    }

    #[test]
    fn dollars_in_text_paths_and_names_are_not_parameters() {
        assert_eq!(
            positional("SELECT json_extract(x, '$.a'), '$1', a$1 FROM t WHERE b = $1").as_deref(),
            Some("SELECT json_extract(x, '$.a'), '$1', a$1 FROM t WHERE b = ?")
        );
    }
}

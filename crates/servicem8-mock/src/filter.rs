//! The `$filter` query parameter of list requests, as the real API accepts it: up to ten conditions
//! `field op value` joined with `and`, where `op` is `eq`, `ne`, `gt` or `lt` and a text value is in single quotes,
//! e.g. `edit_date gt '2024-01-01 00:00:00' and active eq 1`.

use std::cmp::Ordering;

use serde_json::Value;

use super::records::Record;

/// The real API refuses more conditions than this.
pub const MAX_CONDITIONS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub operator: Operator,
    pub value: String,
}

/// Conditions that must all hold; the default (no conditions) matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("$filter is empty")]
    Empty,
    #[error("$filter: expected a field name, found `{0}`")]
    ExpectedField(String),
    #[error("$filter: unknown operator `{0}` (use eq, ne, gt or lt)")]
    UnknownOperator(String),
    #[error("$filter: expected a value after `{0}`")]
    MissingValue(String),
    #[error("$filter: a quoted value is not closed")]
    UnterminatedString,
    #[error("$filter: expected `and`, found `{0}`")]
    ExpectedAnd(String),
    #[error("$filter: at most {MAX_CONDITIONS} conditions are allowed")]
    TooManyConditions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Word(text) | Token::Quoted(text) => text,
        }
    }
}

impl Filter {
    /// Parses the (already URL-decoded) value of `$filter`.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(FilterError::Empty);
        }
        let mut tokens = tokens.into_iter();
        let mut conditions = Vec::new();
        loop {
            let field = match tokens.next() {
                Some(Token::Word(field)) if field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => field,
                Some(other) => return Err(FilterError::ExpectedField(other.text().to_owned())),
                None => return Err(FilterError::ExpectedField(String::new())),
            };
            let operator = match tokens.next() {
                Some(Token::Word(word)) => parse_operator(&word).ok_or(FilterError::UnknownOperator(word))?,
                Some(Token::Quoted(text)) => return Err(FilterError::UnknownOperator(text)),
                None => return Err(FilterError::MissingValue(field)),
            };
            let value = tokens.next().ok_or_else(|| FilterError::MissingValue(field.clone()))?;
            conditions.push(Condition {
                field,
                operator,
                value: value.text().to_owned(),
            });
            if conditions.len() > MAX_CONDITIONS {
                return Err(FilterError::TooManyConditions);
            }
            match tokens.next() {
                None => return Ok(Filter { conditions }),
                Some(Token::Word(word)) if word.eq_ignore_ascii_case("and") => {}
                Some(other) => return Err(FilterError::ExpectedAnd(other.text().to_owned())),
            }
        }
    }

    pub fn matches(&self, record: &Record) -> bool {
        self.conditions.iter().all(|condition| condition.matches(record))
    }
}

impl Condition {
    fn matches(&self, record: &Record) -> bool {
        let actual = match record.get(&self.field) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        let ordering = compare(&actual, &self.value);
        match self.operator {
            Operator::Eq => ordering == Ordering::Equal,
            Operator::Ne => ordering != Ordering::Equal,
            Operator::Gt => ordering == Ordering::Greater,
            Operator::Lt => ordering == Ordering::Less,
        }
    }
}

/// Numbers compare as numbers (`active eq 1`, `total_invoice_amount gt 100`); everything else as text, which
/// orders ServiceM8's `YYYY-MM-DD HH:MM:SS` dates correctly.
fn compare(actual: &str, expected: &str) -> Ordering {
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() => a.total_cmp(&b),
        _ => actual.cmp(expected),
    }
}

fn parse_operator(word: &str) -> Option<Operator> {
    match word.to_ascii_lowercase().as_str() {
        "eq" => Some(Operator::Eq),
        "ne" => Some(Operator::Ne),
        "gt" => Some(Operator::Gt),
        "lt" => Some(Operator::Lt),
        _ => None,
    }
}

/// Splits on whitespace outside quotes; `''` inside a quoted value is a single quote.
fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(FilterError::UnterminatedString),
                }
            }
            tokens.push(Token::Quoted(value));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '\'' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job() -> Record {
        json!({
            "uuid": "a", "active": 1, "status": "Work Order", "edit_date": "2024-05-06 07:08:09",
            "total_invoice_amount": "393.7500", "invoice_sent": false,
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn matches(filter: &str) -> bool {
        Filter::parse(filter).unwrap().matches(&job())
    }

    #[test]
    fn a_date_condition_parses_into_field_operator_and_value() {
        assert_eq!(
            Filter::parse("edit_date gt '2024-01-01 00:00:00'").unwrap().conditions,
            [Condition {
                field: "edit_date".into(),
                operator: Operator::Gt,
                value: "2024-01-01 00:00:00".into()
            }]
        );
    }

    #[test]
    fn dates_compare_in_time_order() {
        assert!(matches("edit_date gt '2024-05-06 07:08:08'"));
        assert!(!matches("edit_date gt '2024-05-06 07:08:09'"));
        assert!(matches("edit_date lt '2024-12-01 00:00:00'"));
        assert!(matches("edit_date eq '2024-05-06 07:08:09'"));
    }

    #[test]
    fn numbers_compare_as_numbers_and_text_as_text() {
        assert!(matches("active eq 1"));
        assert!(matches("active eq '1'"));
        assert!(matches("total_invoice_amount gt 100"));
        assert!(matches("total_invoice_amount lt 1000"));
        assert!(matches("status eq 'Work Order'"));
        assert!(matches("status ne 'Completed'"));
        assert!(matches("invoice_sent eq 'false'"));
        assert!(matches("missing_field eq ''"));
    }

    #[test]
    fn conditions_joined_with_and_must_all_hold() {
        assert!(matches("active eq 1 and status eq 'Work Order'"));
        assert!(!matches("active eq 1 AND status eq 'Quote'"));
    }

    #[test]
    fn quotes_inside_values_are_doubled() {
        let filter = Filter::parse("name eq 'O''Brien Plumbing'").unwrap();
        assert_eq!(filter.conditions[0].value, "O'Brien Plumbing");
    }

    #[test]
    fn malformed_filters_are_refused_with_a_reason() {
        assert_eq!(Filter::parse("  "), Err(FilterError::Empty));
        assert_eq!(
            Filter::parse("edit_date ge '2024'"),
            Err(FilterError::UnknownOperator("ge".into()))
        );
        assert_eq!(
            Filter::parse("edit_date gt"),
            Err(FilterError::MissingValue("edit_date".into()))
        );
        assert_eq!(
            Filter::parse("edit_date gt '2024"),
            Err(FilterError::UnterminatedString)
        );
        assert_eq!(
            Filter::parse("active eq 1 or active eq 0"),
            Err(FilterError::ExpectedAnd("or".into()))
        );
        assert_eq!(Filter::parse("'x' eq 1"), Err(FilterError::ExpectedField("x".into())));
        assert_eq!(
            Filter::parse("active eq 1 and"),
            Err(FilterError::ExpectedField(String::new()))
        );
    }

    #[test]
    fn ten_conditions_are_allowed_and_eleven_are_not() {
        let conditions = |n: usize| vec!["active eq 1"; n].join(" and ");
        assert!(Filter::parse(&conditions(MAX_CONDITIONS)).is_ok());
        assert_eq!(
            Filter::parse(&conditions(MAX_CONDITIONS + 1)),
            Err(FilterError::TooManyConditions)
        );
    }
}

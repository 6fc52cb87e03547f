//! The filter language: a JSON document of conditions, in the style of Hookdeck's and Convoy's filters, compiled
//! once when a rule is saved and evaluated against every event's document.
//!
//! # Shape
//!
//! A filter is a JSON object. Each key is either a **path** into the document or an **operator** (`$…`):
//!
//! - a path is dotted (`"record.status"`) or nested (`{"record": {"status": …}}`); both mean the same. A segment
//!   of digits indexes an array (`"record.lines.0.qty"`);
//! - under a path, a bare value is an equality test (`{"record.status": "Completed"}`), a bare array asks that
//!   the field be an array holding every listed value, an object holds more paths and operators;
//! - all the keys of one object must hold (an implicit `$and`); `{}` matches every document.
//!
//! # Operators
//!
//! | operator | operand | matches when the field… |
//! |---|---|---|
//! | `$eq` | any value | equals the operand (a bare value means `$eq`) |
//! | `$neq` | any value | does not equal it (a missing field does not equal anything but `null`) |
//! | `$gt` `$gte` `$lt` `$lte` | number or string | is greater / greater or equal / less / less or equal |
//! | `$in` | non-empty array | equals one of the listed values |
//! | `$nin` | non-empty array | equals none of them (a missing field matches) |
//! | `$exist` | `true` / `false` | is present and not `null` / is missing or `null` |
//! | `$startsWith` `$endsWith` | string | is a string that starts / ends with the operand (case-sensitive) |
//! | `$contains` | value or array | is a string containing the operand as a substring, or an array holding the value (every value, for an array operand) |
//! | `$and` `$or` | non-empty array of filters | every / at least one of the filters matches |
//! | `$not` | filter | the filter does not match |
//!
//! `$and`, `$or` and `$not` may stand at the top or under a path; paths inside them continue from where they
//! stand: `{"record": {"$or": [{"status": "Completed"}, {"status": "Invoiced"}]}}`.
//!
//! # Comparison rules
//!
//! - **The operand's type decides.** A number in the filter compares numerically with a number in the document or
//!   with a string holding a decimal number (ServiceM8 sends amounts as strings: `"1234.50"`); a string in the
//!   filter compares with strings only, by Unicode code points, which orders ServiceM8's `YYYY-MM-DD HH:MM:SS`
//!   dates and ISO 8601 times correctly; `true`/`false` match booleans only. The string `"5"` never equals the
//!   number `5` in the document, and `{"$gt": 5}` never matches a boolean.
//! - **`null` and missing fields.** `{"previous.status": null}` matches a `null` or a missing field; `$exist:
//!   false` likewise. Every other positive test fails on a missing field, and its negation (`$neq`, `$nin`,
//!   `$not`) succeeds: at stage `received`, `record` and `previous` are `null`.
//! - **Arrays.** A test on an array field matches when the array itself or **any element** matches
//!   (`{"record.tags": "urgent"}` matches `["urgent", "vip"]`); a path that continues through an array looks into
//!   every element (`{"record.lines.item": "Labour"}`). The negations mean "no element": `{"record.tags":
//!   {"$neq": "urgent"}}` fails on `["urgent", "vip"]`. Each condition is tried on its own, so two conditions on
//!   fields of one array's elements may be met by different elements.
//!
//! # Errors
//!
//! A malformed filter is refused by [`Filter::compile`] with a [`FilterError`] naming the place, such as
//! `at filter.record.status: unknown operator "$equals"` or `at filter.$or: expected an array`.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// The deepest nesting of objects and arrays a filter may have.
const MAX_DEPTH: usize = 32;
/// The most tests one filter may hold.
const MAX_TESTS: usize = 1_000;

/// A malformed filter: where (`filter.record.status`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {at}: {reason}")]
pub struct FilterError {
    /// The place in the filter, from `filter` down (`filter.$or[1].record.status`).
    pub at: String,
    pub reason: String,
}

/// A compiled filter: cheap to evaluate, with no allocation per document.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

impl Filter {
    /// Compiles a filter, refusing a malformed one with the place and the reason.
    pub fn compile(filter: &Value) -> Result<Filter, FilterError> {
        let Value::Object(conditions) = filter else {
            return Err(FilterError {
                at: "filter".into(),
                reason: "expected an object of conditions".into(),
            });
        };
        let mut compiler = Compiler { tests: 0 };
        let nodes = compiler.object(conditions, &[], "filter", 0)?;
        Ok(Filter {
            root: Node::All(nodes.into_boxed_slice()),
        })
    }

    /// Whether the document meets every condition.
    pub fn matches(&self, document: &Value) -> bool {
        self.root.matches(document)
    }
}

#[derive(Debug, Clone)]
enum Node {
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Test { path: Box<[Segment]>, test: Test },
}

impl Node {
    fn matches(&self, document: &Value) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|node| node.matches(document)),
            Node::Any(nodes) => nodes.iter().any(|node| node.matches(document)),
            Node::Not(node) => !node.matches(document),
            Node::Test { path, test } => {
                let mut found = false;
                visit(document, path, &mut found, &mut |value| test.matches(value))
                    || (!found && test.matches_missing())
            }
        }
    }
}

/// Calls `test` on every value the path leads to (through arrays, into each element) until one passes; `found`
/// says whether the path led anywhere.
fn visit(value: &Value, path: &[Segment], found: &mut bool, test: &mut impl FnMut(&Value) -> bool) -> bool {
    let Some((segment, rest)) = path.split_first() else {
        *found = true;
        return test(value);
    };
    match value {
        Value::Object(fields) => fields
            .get(&*segment.key)
            .is_some_and(|field| visit(field, rest, found, test)),
        Value::Array(items) => match segment.index {
            Some(index) => items.get(index).is_some_and(|item| visit(item, rest, found, test)),
            None => items.iter().any(|item| visit(item, path, found, test)),
        },
        _ => false,
    }
}

#[derive(Debug, Clone)]
struct Segment {
    key: Box<str>,
    /// The key read as an array index, when it is all digits.
    index: Option<usize>,
}

/// A positive test on one value; the negative operators are `Node::Not` around one of these.
#[derive(Debug, Clone)]
enum Test {
    Equals(Literal),
    /// Holds when the value orders as `wanted` against the bound, or equal to it where `or_equal`.
    Compare {
        wanted: Ordering,
        or_equal: bool,
        bound: Bound,
    },
    OneOf(Box<[Literal]>),
    Exists,
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Contains(Literal),
    ContainsAll(Box<[Literal]>),
}

impl Test {
    fn matches(&self, value: &Value) -> bool {
        match self {
            Test::Exists => !value.is_null(),
            Test::Contains(literal) => match (value, literal) {
                (Value::String(text), Literal::Text(part)) => text.contains(&**part),
                (Value::Array(items), _) => items.iter().any(|item| literal.equals(item)),
                _ => false,
            },
            Test::ContainsAll(literals) => match value {
                Value::Array(items) => literals
                    .iter()
                    .all(|literal| items.iter().any(|item| literal.equals(item))),
                _ => false,
            },
            _ => {
                self.matches_one(value)
                    || matches!(value, Value::Array(items) if items.iter().any(|item| self.matches_one(item)))
            }
        }
    }

    fn matches_one(&self, value: &Value) -> bool {
        match self {
            Test::Equals(literal) => literal.equals(value),
            Test::Compare {
                wanted,
                or_equal,
                bound,
            } => bound
                .compare(value)
                .is_some_and(|found| found == *wanted || (*or_equal && found == Ordering::Equal)),
            Test::OneOf(literals) => literals.iter().any(|literal| literal.equals(value)),
            Test::StartsWith(prefix) => value.as_str().is_some_and(|text| text.starts_with(&**prefix)),
            Test::EndsWith(suffix) => value.as_str().is_some_and(|text| text.ends_with(&**suffix)),
            Test::Exists | Test::Contains(_) | Test::ContainsAll(_) => false,
        }
    }

    /// What the test says of a path that leads nowhere: only "equals null" holds.
    fn matches_missing(&self) -> bool {
        match self {
            Test::Equals(literal) => matches!(literal, Literal::Null),
            Test::OneOf(literals) => literals.iter().any(|literal| matches!(literal, Literal::Null)),
            _ => false,
        }
    }
}

/// A value from the filter, in the form its comparisons need.
#[derive(Debug, Clone)]
enum Literal {
    Null,
    Bool(bool),
    Number(Number),
    Text(Box<str>),
    /// An array or object, compared structurally.
    Structure(Value),
}

impl Literal {
    fn new(value: &Value) -> Literal {
        match value {
            Value::Null => Literal::Null,
            Value::Bool(flag) => Literal::Bool(*flag),
            Value::Number(number) => Literal::Number(number.clone()),
            Value::String(text) => Literal::Text(text.as_str().into()),
            Value::Array(_) | Value::Object(_) => Literal::Structure(value.clone()),
        }
    }

    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::Null, Value::Null) => true,
            (Literal::Bool(wanted), Value::Bool(found)) => wanted == found,
            (Literal::Number(wanted), _) => number_order(value, wanted) == Some(Ordering::Equal),
            (Literal::Text(wanted), Value::String(found)) => **wanted == **found,
            (Literal::Structure(wanted), _) => same_structure(wanted, value),
            _ => false,
        }
    }
}

/// Equality of two JSON values in which numbers compare by value (`1` equals `1.0`).
fn same_structure(wanted: &Value, found: &Value) -> bool {
    match (wanted, found) {
        (Value::Number(wanted), Value::Number(found)) => compare_numbers(found, wanted) == Some(Ordering::Equal),
        (Value::Array(wanted), Value::Array(found)) => {
            wanted.len() == found.len()
                && wanted
                    .iter()
                    .zip(found)
                    .all(|(wanted, found)| same_structure(wanted, found))
        }
        (Value::Object(wanted), Value::Object(found)) => {
            wanted.len() == found.len()
                && wanted
                    .iter()
                    .all(|(key, wanted)| found.get(key).is_some_and(|found| same_structure(wanted, found)))
        }
        _ => wanted == found,
    }
}

/// The operand of `$gt`, `$gte`, `$lt` and `$lte`.
#[derive(Debug, Clone)]
enum Bound {
    Number(Number),
    Text(Box<str>),
}

impl Bound {
    /// How the document's value orders against the bound, when the two are comparable.
    fn compare(&self, value: &Value) -> Option<Ordering> {
        match self {
            Bound::Number(bound) => number_order(value, bound),
            Bound::Text(bound) => value.as_str().map(|text| text.cmp(bound)),
        }
    }
}

/// How a document value orders against a number from the filter: numbers by value, and strings that hold a
/// finite decimal number by that number.
fn number_order(value: &Value, bound: &Number) -> Option<Ordering> {
    match value {
        Value::Number(number) => compare_numbers(number, bound),
        Value::String(text) => {
            let number = text.trim().parse::<f64>().ok().filter(|number| number.is_finite())?;
            number.partial_cmp(&bound.as_f64()?)
        }
        _ => None,
    }
}

/// Integers compare exactly; anything else as `f64`.
fn compare_numbers(left: &Number, right: &Number) -> Option<Ordering> {
    if let (Some(left), Some(right)) = (left.as_i64(), right.as_i64()) {
        return Some(left.cmp(&right));
    }
    if let (Some(left), Some(right)) = (left.as_u64(), right.as_u64()) {
        return Some(left.cmp(&right));
    }
    left.as_f64()?.partial_cmp(&right.as_f64()?)
}

struct Compiler {
    tests: usize,
}

impl Compiler {
    /// Compiles the conditions of one object standing at `prefix`.
    fn object(
        &mut self,
        conditions: &Map<String, Value>,
        prefix: &[Segment],
        at: &str,
        depth: usize,
    ) -> Result<Vec<Node>, FilterError> {
        if depth > MAX_DEPTH {
            return Err(error(at, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mut nodes = Vec::with_capacity(conditions.len());
        for (key, operand) in conditions {
            if key.starts_with('$') {
                nodes.push(self.operator(key, operand, prefix, at, depth)?);
            } else {
                let at = format!("{at}.{key}");
                let mut path = prefix.to_vec();
                path.extend(segments(key, &at)?);
                self.field(operand, path, &at, depth)?
                    .into_iter()
                    .for_each(|node| nodes.push(node));
            }
        }
        Ok(nodes)
    }

    /// Compiles what stands under a path: a bare value, a bare array, or an object of further conditions.
    fn field(&mut self, operand: &Value, path: Vec<Segment>, at: &str, depth: usize) -> Result<Vec<Node>, FilterError> {
        match operand {
            Value::Object(conditions) if conditions.is_empty() => Err(error(at, "expected at least one condition")),
            Value::Object(conditions) => self.object(conditions, &path, at, depth + 1),
            Value::Array(values) => Ok(vec![self.test(path, Test::ContainsAll(literals(values)), at)?]),
            value => Ok(vec![self.test(path, Test::Equals(Literal::new(value)), at)?]),
        }
    }

    fn operator(
        &mut self,
        operator: &str,
        operand: &Value,
        prefix: &[Segment],
        at: &str,
        depth: usize,
    ) -> Result<Node, FilterError> {
        let place = format!("{at}.{operator}");
        let at_place = place.as_str();
        match operator {
            "$and" | "$or" => {
                let Value::Array(filters) = operand else {
                    return Err(error(at_place, "expected an array of filters"));
                };
                if filters.is_empty() {
                    return Err(error(at_place, "expected at least one filter"));
                }
                let mut nodes = Vec::with_capacity(filters.len());
                for (index, filter) in filters.iter().enumerate() {
                    let at = format!("{place}[{index}]");
                    let Value::Object(conditions) = filter else {
                        return Err(error(&at, "expected an object of conditions"));
                    };
                    if conditions.is_empty() {
                        return Err(error(&at, "expected at least one condition"));
                    }
                    nodes.push(Node::All(
                        self.object(conditions, prefix, &at, depth + 1)?.into_boxed_slice(),
                    ));
                }
                let nodes = nodes.into_boxed_slice();
                Ok(if operator == "$and" {
                    Node::All(nodes)
                } else {
                    Node::Any(nodes)
                })
            }
            "$not" => match operand {
                Value::Object(conditions) if !conditions.is_empty() => {
                    let nodes = self.object(conditions, prefix, at_place, depth + 1)?;
                    Ok(Node::Not(Box::new(Node::All(nodes.into_boxed_slice()))))
                }
                _ => Err(error(at_place, "expected an object of conditions")),
            },
            _ => {
                let (test, negated) = comparison(operator, operand, at, at_place)?;
                if prefix.is_empty() {
                    return Err(error(
                        at,
                        format!(
                            "{operator:?} must stand under a path, as in {{\"record.status\": {{{operator:?}: …}}}}"
                        ),
                    ));
                }
                let node = self.test(prefix.to_vec(), test, at)?;
                Ok(if negated { Node::Not(Box::new(node)) } else { node })
            }
        }
    }

    fn test(&mut self, path: Vec<Segment>, test: Test, at: &str) -> Result<Node, FilterError> {
        self.tests += 1;
        if self.tests > MAX_TESTS {
            return Err(error(at, format!("a filter holds at most {MAX_TESTS} conditions")));
        }
        Ok(Node::Test {
            path: path.into_boxed_slice(),
            test,
        })
    }
}

/// The test a comparison operator names, and whether the operator is its negation.
fn comparison(operator: &str, operand: &Value, at: &str, at_operand: &str) -> Result<(Test, bool), FilterError> {
    let compare = |wanted, or_equal| {
        let bound = match operand {
            Value::Number(number) => Bound::Number(number.clone()),
            Value::String(text) => Bound::Text(text.as_str().into()),
            _ => return Err(error(at_operand, "expected a number or a string")),
        };
        Ok((
            Test::Compare {
                wanted,
                or_equal,
                bound,
            },
            false,
        ))
    };
    let list = || match operand {
        Value::Array(values) if !values.is_empty() => Ok(literals(values)),
        Value::Array(_) => Err(error(at_operand, "expected a non-empty array")),
        _ => Err(error(at_operand, "expected an array")),
    };
    let text = || match operand {
        Value::String(text) => Ok(Box::<str>::from(text.as_str())),
        _ => Err(error(at_operand, "expected a string")),
    };
    match operator {
        "$eq" => Ok((Test::Equals(Literal::new(operand)), false)),
        "$neq" => Ok((Test::Equals(Literal::new(operand)), true)),
        "$gt" => compare(Ordering::Greater, false),
        "$gte" => compare(Ordering::Greater, true),
        "$lt" => compare(Ordering::Less, false),
        "$lte" => compare(Ordering::Less, true),
        "$in" => Ok((Test::OneOf(list()?), false)),
        "$nin" => Ok((Test::OneOf(list()?), true)),
        "$exist" => match operand {
            Value::Bool(exists) => Ok((Test::Exists, !exists)),
            _ => Err(error(at_operand, "expected true or false")),
        },
        "$startsWith" => Ok((Test::StartsWith(text()?), false)),
        "$endsWith" => Ok((Test::EndsWith(text()?), false)),
        "$contains" => match operand {
            Value::Array(values) if values.is_empty() => Err(error(at_operand, "expected a non-empty array")),
            Value::Array(values) => Ok((Test::ContainsAll(literals(values)), false)),
            Value::Object(_) => Err(error(at_operand, "expected a value or an array of values")),
            value => Ok((Test::Contains(Literal::new(value)), false)),
        },
        _ => Err(error(
            at,
            format!(
                "unknown operator {operator:?} (known: $eq $neq $gt $gte $lt $lte $in $nin $exist $startsWith \
                 $endsWith $contains $and $or $not)"
            ),
        )),
    }
}

fn literals(values: &[Value]) -> Box<[Literal]> {
    values.iter().map(Literal::new).collect()
}

/// Splits a dotted key into path segments, refusing empty ones (`a..b`, `.a`, `a.`).
fn segments(key: &str, at: &str) -> Result<Vec<Segment>, FilterError> {
    key.split('.')
        .map(|part| {
            if part.is_empty() {
                return Err(error(at, "a path has an empty segment"));
            }
            let index = part
                .bytes()
                .all(|byte| byte.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten();
            Ok(Segment {
                key: part.into(),
                index,
            })
        })
        .collect()
}

fn error(at: &str, reason: impl Into<String>) -> FilterError {
    FilterError {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;

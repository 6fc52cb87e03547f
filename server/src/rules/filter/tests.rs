use serde_json::{json, Value};

use super::{Filter, FilterError};

fn document() -> Value {
    json!({
        "event": {"object_type": "job", "event_type": "updated", "received_at": 1_714_557_600_000_i64},
        "changes": {"status": "Completed"},
        "record": {
            "uuid": "a1b2",
            "status": "Completed",
            "total_invoice_amount": "1234.50",
            "quantity": 3,
            "ratio": 0.5,
            "active": 1,
            "is_quote": false,
            "completion_date": "2024-05-01 10:00:00",
            "job_address": "12 Main Street, Springfield",
            "tags": ["urgent", "vip"],
            "lines": [{"item": "Labour", "qty": 2}, {"item": "Parts", "qty": 5}],
            "notes": null
        },
        "previous": {"status": "Work Order", "tags": []},
        "account": {"slug": "default"}
    })
}

fn matches(filter: Value) -> bool {
    Filter::compile(&filter)
        .unwrap_or_else(|error| panic!("{filter} did not compile: {error}"))
        .matches(&document())
}

fn refused(filter: Value) -> String {
    match Filter::compile(&filter) {
        Ok(_) => panic!("{filter} compiled"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn an_empty_filter_matches_every_document() {
    assert!(matches(json!({})));
}

#[test]
fn a_bare_value_is_an_equality_test_on_a_dotted_path() {
    assert!(matches(json!({"record.status": "Completed"})));
    assert!(!matches(json!({"record.status": "Work Order"})));
    assert!(matches(json!({"event.event_type": "updated", "record.uuid": "a1b2"})));
    assert!(!matches(json!({"event.event_type": "updated", "record.uuid": "other"})));
}

#[test]
fn nested_objects_are_paths_like_dotted_keys() {
    assert!(matches(json!({"record": {"status": "Completed", "quantity": 3}})));
    assert!(!matches(json!({"record": {"status": "Completed", "quantity": 4}})));
    assert!(matches(json!({"record": {"lines.0": {"item": "Labour"}}})));
}

#[test]
fn eq_compares_strings_numbers_booleans_null_and_structures() {
    assert!(matches(json!({"record.status": {"$eq": "Completed"}})));
    assert!(matches(json!({"record.quantity": {"$eq": 3}})));
    assert!(matches(json!({"record.quantity": {"$eq": 3.0}})));
    assert!(matches(json!({"record.is_quote": {"$eq": false}})));
    assert!(matches(json!({"record.notes": {"$eq": null}})));
    assert!(matches(json!({"record.tags": {"$eq": ["urgent", "vip"]}})));
    assert!(!matches(json!({"record.tags": {"$eq": ["vip", "urgent"]}})));
    assert!(matches(json!({"changes": {"$eq": {"status": "Completed"}}})));
    assert!(!matches(
        json!({"changes": {"$eq": {"status": "Completed", "extra": 1}}})
    ));
}

#[test]
fn a_number_in_the_filter_matches_a_numeric_string_but_a_string_never_matches_a_number() {
    assert!(matches(json!({"record.total_invoice_amount": 1234.5})));
    assert!(matches(json!({"record.active": 1})));
    assert!(!matches(json!({"record.quantity": "3"})));
    assert!(!matches(json!({"record.total_invoice_amount": "1234.5"})));
    assert!(!matches(json!({"record.is_quote": 0})));
    assert!(!matches(json!({"record.status": 0})));
}

#[test]
fn neq_is_the_negation_of_eq_and_holds_for_missing_fields() {
    assert!(matches(json!({"record.status": {"$neq": "Work Order"}})));
    assert!(!matches(json!({"record.status": {"$neq": "Completed"}})));
    assert!(matches(json!({"record.missing": {"$neq": "Completed"}})));
    assert!(!matches(json!({"record.missing": {"$neq": null}})));
    assert!(!matches(json!({"record.tags": {"$neq": "urgent"}})));
    assert!(matches(json!({"record.tags": {"$neq": "other"}})));
}

#[test]
fn ordering_operators_compare_numbers_numeric_strings_and_text() {
    assert!(matches(json!({"record.quantity": {"$gt": 2}})));
    assert!(!matches(json!({"record.quantity": {"$gt": 3}})));
    assert!(matches(json!({"record.quantity": {"$gte": 3}})));
    assert!(!matches(json!({"record.quantity": {"$gte": 3.5}})));
    assert!(matches(json!({"record.quantity": {"$lt": 3.5}})));
    assert!(!matches(json!({"record.quantity": {"$lt": 3}})));
    assert!(matches(json!({"record.quantity": {"$lte": 3}})));
    assert!(!matches(json!({"record.quantity": {"$lte": 2}})));
    assert!(matches(json!({"record.ratio": {"$gt": 0.25, "$lt": 1}})));
    assert!(matches(json!({"record.total_invoice_amount": {"$gte": 1000}})));
    assert!(!matches(json!({"record.total_invoice_amount": {"$gt": 2000}})));
    assert!(matches(json!({"record.completion_date": {"$gte": "2024-05-01"}})));
    assert!(!matches(
        json!({"record.completion_date": {"$lt": "2024-05-01 09:59:59"}})
    ));
}

#[test]
fn ordering_never_matches_values_of_another_kind() {
    assert!(!matches(json!({"record.status": {"$gt": 0}})));
    assert!(!matches(json!({"record.quantity": {"$gt": "0"}})));
    assert!(!matches(json!({"record.is_quote": {"$lt": 1}})));
    assert!(!matches(json!({"record.notes": {"$lt": 1}})));
    assert!(!matches(json!({"record.missing": {"$gte": 0}})));
    assert!(!matches(json!({"record.job_address": {"$gt": 1}})));
}

#[test]
fn large_integers_compare_exactly() {
    let filter = Filter::compile(&json!({"id": {"$gt": 9_007_199_254_740_992_i64}})).unwrap();
    assert!(filter.matches(&json!({"id": 9_007_199_254_740_993_i64})));
    assert!(!filter.matches(&json!({"id": 9_007_199_254_740_992_i64})));
}

#[test]
fn in_and_nin_test_membership_of_a_list() {
    assert!(matches(json!({"record.status": {"$in": ["Quote", "Completed"]}})));
    assert!(!matches(json!({"record.status": {"$in": ["Quote", "Work Order"]}})));
    assert!(matches(json!({"record.quantity": {"$in": [1, 3]}})));
    assert!(matches(json!({"record.tags": {"$in": ["vip", "other"]}})));
    assert!(matches(json!({"record.status": {"$nin": ["Quote", "Work Order"]}})));
    assert!(!matches(json!({"record.status": {"$nin": ["Completed"]}})));
    assert!(matches(json!({"record.missing": {"$nin": ["Completed"]}})));
    assert!(matches(json!({"record.missing": {"$in": [null, "x"]}})));
    assert!(!matches(json!({"record.tags": {"$nin": ["vip"]}})));
}

#[test]
fn exist_tells_present_values_from_missing_and_null_ones() {
    assert!(matches(json!({"record.status": {"$exist": true}})));
    assert!(!matches(json!({"record.status": {"$exist": false}})));
    assert!(matches(json!({"record.missing": {"$exist": false}})));
    assert!(!matches(json!({"record.missing": {"$exist": true}})));
    assert!(matches(json!({"record.notes": {"$exist": false}})));
    assert!(matches(json!({"record.is_quote": {"$exist": true}})));
    assert!(matches(json!({"previous.tags": {"$exist": true}})));
}

#[test]
fn starts_with_and_ends_with_are_case_sensitive_and_only_for_strings() {
    assert!(matches(json!({"record.job_address": {"$startsWith": "12 Main"}})));
    assert!(!matches(json!({"record.job_address": {"$startsWith": "12 main"}})));
    assert!(matches(json!({"record.job_address": {"$endsWith": "Springfield"}})));
    assert!(!matches(json!({"record.job_address": {"$endsWith": "Shelbyville"}})));
    assert!(!matches(json!({"record.quantity": {"$startsWith": "3"}})));
    assert!(matches(json!({"record.tags": {"$startsWith": "urg"}})));
}

#[test]
fn contains_finds_substrings_and_array_elements() {
    assert!(matches(json!({"record.job_address": {"$contains": "Main"}})));
    assert!(!matches(json!({"record.job_address": {"$contains": "Elm"}})));
    assert!(matches(json!({"record.tags": {"$contains": "vip"}})));
    assert!(!matches(json!({"record.tags": {"$contains": "vi"}})));
    assert!(matches(json!({"record.tags": {"$contains": ["vip", "urgent"]}})));
    assert!(!matches(json!({"record.tags": {"$contains": ["vip", "other"]}})));
    assert!(!matches(json!({"record.quantity": {"$contains": 3}})));
    assert!(!matches(json!({"previous.tags": {"$contains": "vip"}})));
}

#[test]
fn a_bare_array_asks_for_an_array_holding_every_value() {
    assert!(matches(json!({"record.tags": ["vip"]})));
    assert!(matches(json!({"record.tags": ["vip", "urgent"]})));
    assert!(!matches(json!({"record.tags": ["vip", "other"]})));
    assert!(!matches(json!({"record.status": ["Completed"]})));
}

#[test]
fn a_test_on_an_array_field_matches_when_any_element_matches() {
    assert!(matches(json!({"record.tags": "urgent"})));
    assert!(!matches(json!({"record.tags": "other"})));
    assert!(matches(json!({"record.lines.item": "Parts"})));
    assert!(matches(json!({"record.lines": {"qty": {"$gt": 4}}})));
    assert!(!matches(json!({"record.lines.qty": {"$gt": 5}})));
    assert!(!matches(json!({"record.lines.item": {"$neq": "Parts"}})));
}

#[test]
fn a_digit_segment_indexes_an_array() {
    assert!(matches(json!({"record.lines.1.item": "Parts"})));
    assert!(!matches(json!({"record.lines.0.item": "Parts"})));
    assert!(!matches(json!({"record.lines.7.item": {"$exist": true}})));
    assert!(matches(json!({"record.tags.0": "urgent"})));
}

#[test]
fn a_digit_segment_is_an_ordinary_key_in_an_object() {
    let filter = Filter::compile(&json!({"by_year.2024": "yes"})).unwrap();
    assert!(filter.matches(&json!({"by_year": {"2024": "yes"}})));
}

#[test]
fn missing_paths_fail_positive_tests_except_null_equality() {
    assert!(!matches(json!({"record.missing": "x"})));
    assert!(matches(json!({"record.missing": null})));
    assert!(!matches(json!({"record.status.deeper": "x"})));
    assert!(!matches(json!({"nothing.at.all": {"$in": ["x"]}})));
    assert!(!matches(json!({"nothing": {"$contains": "x"}})));
    assert!(!matches(json!({"nothing": {"$startsWith": "x"}})));
    let at_received = json!({"event": {}, "changes": {}, "record": null, "previous": null, "account": {}});
    let filter = Filter::compile(&json!({"previous.status": {"$neq": "Completed"}})).unwrap();
    assert!(filter.matches(&at_received));
}

#[test]
fn and_or_and_not_combine_filters() {
    assert!(matches(
        json!({"$and": [{"record.status": "Completed"}, {"record.quantity": 3}]})
    ));
    assert!(!matches(
        json!({"$and": [{"record.status": "Completed"}, {"record.quantity": 4}]})
    ));
    assert!(matches(
        json!({"$or": [{"record.status": "Quote"}, {"record.quantity": 3}]})
    ));
    assert!(!matches(
        json!({"$or": [{"record.status": "Quote"}, {"record.quantity": 4}]})
    ));
    assert!(matches(json!({"$not": {"record.status": "Quote"}})));
    assert!(!matches(json!({"$not": {"record.status": "Completed"}})));
    assert!(matches(
        json!({"$not": {"$or": [{"record.status": "Quote"}, {"record.quantity": 4}]}})
    ));
}

#[test]
fn logical_operators_under_a_path_continue_from_it() {
    assert!(matches(
        json!({"record": {"$or": [{"status": "Quote"}, {"status": "Completed"}]}})
    ));
    assert!(!matches(
        json!({"record": {"$or": [{"status": "Quote"}, {"status": "Invoiced"}]}})
    ));
    assert!(matches(
        json!({"record.status": {"$not": {"$in": ["Quote", "Work Order"]}}})
    ));
    assert!(!matches(json!({"record.status": {"$not": {"$startsWith": "Comp"}}})));
    assert!(matches(json!({"record.quantity": {"$or": [{"$lt": 1}, {"$gt": 2}]}})));
}

#[test]
fn status_changed_to_completed_is_expressible_with_previous() {
    let filter = Filter::compile(&json!({
        "record.status": "Completed",
        "previous.status": {"$neq": "Completed"}
    }))
    .unwrap();
    assert!(filter.matches(&document()));
    let mut unchanged = document();
    unchanged["previous"]["status"] = json!("Completed");
    assert!(!filter.matches(&unchanged));
}

fn assert_refused(filter: Value, expected: &str) {
    assert_eq!(refused(filter), expected);
}

#[test]
fn an_unknown_operator_is_refused_at_its_field() {
    assert_refused(
        json!({"record": {"status": {"$equals": "Completed"}}}),
        "at filter.record.status: unknown operator \"$equals\" (known: $eq $neq $gt $gte $lt $lte $in $nin $exist \
         $startsWith $endsWith $contains $and $or $not)",
    );
}

#[test]
fn logical_operators_need_arrays_or_objects_of_filters() {
    assert_refused(json!({"$or": {"a": 1}}), "at filter.$or: expected an array of filters");
    assert_refused(json!({"$and": []}), "at filter.$and: expected at least one filter");
    assert_refused(
        json!({"$or": [{"a": 1}, "b"]}),
        "at filter.$or[1]: expected an object of conditions",
    );
    assert_refused(
        json!({"$or": [{}]}),
        "at filter.$or[0]: expected at least one condition",
    );
    assert_refused(
        json!({"$not": [{"a": 1}]}),
        "at filter.$not: expected an object of conditions",
    );
    assert_refused(json!({"$not": {}}), "at filter.$not: expected an object of conditions");
}

#[test]
fn errors_inside_logical_operators_name_the_full_place() {
    assert_refused(
        json!({"$or": [{"a": 1}, {"record.status": {"$in": "x"}}]}),
        "at filter.$or[1].record.status.$in: expected an array",
    );
    assert_refused(
        json!({"record": {"$not": {"status": {"$gt": true}}}}),
        "at filter.record.$not.status.$gt: expected a number or a string",
    );
}

#[test]
fn operands_of_the_wrong_kind_are_refused() {
    assert_refused(
        json!({"a": {"$gte": [1]}}),
        "at filter.a.$gte: expected a number or a string",
    );
    assert_refused(
        json!({"a": {"$lt": null}}),
        "at filter.a.$lt: expected a number or a string",
    );
    assert_refused(json!({"a": {"$in": []}}), "at filter.a.$in: expected a non-empty array");
    assert_refused(json!({"a": {"$nin": 3}}), "at filter.a.$nin: expected an array");
    assert_refused(
        json!({"a": {"$exist": "yes"}}),
        "at filter.a.$exist: expected true or false",
    );
    assert_refused(
        json!({"a": {"$startsWith": 1}}),
        "at filter.a.$startsWith: expected a string",
    );
    assert_refused(
        json!({"a": {"$endsWith": null}}),
        "at filter.a.$endsWith: expected a string",
    );
    assert_refused(
        json!({"a": {"$contains": {"b": 1}}}),
        "at filter.a.$contains: expected a value or an array of values",
    );
    assert_refused(
        json!({"a": {"$contains": []}}),
        "at filter.a.$contains: expected a non-empty array",
    );
}

#[test]
fn a_comparison_at_the_top_is_refused_because_it_has_no_field() {
    assert_refused(
        json!({"$eq": 1}),
        "at filter: \"$eq\" must stand under a path, as in {\"record.status\": {\"$eq\": …}}",
    );
}

#[test]
fn malformed_paths_and_shapes_are_refused() {
    assert_refused(json!("Completed"), "at filter: expected an object of conditions");
    assert_refused(json!([{"a": 1}]), "at filter: expected an object of conditions");
    assert_refused(
        json!({"record..status": 1}),
        "at filter.record..status: a path has an empty segment",
    );
    assert_refused(json!({"record.": 1}), "at filter.record.: a path has an empty segment");
    assert_refused(
        json!({"record": {}}),
        "at filter.record: expected at least one condition",
    );
}

#[test]
fn filters_nested_too_deeply_or_too_large_are_refused() {
    let mut deep = json!({"x": 1});
    for _ in 0..40 {
        deep = json!({"a": deep});
    }
    let error = Filter::compile(&deep).unwrap_err();
    assert!(error.reason.contains("nested deeper than 32 levels"), "{error}");
    let wide: serde_json::Map<String, Value> = (0..1_001).map(|index| (format!("f{index}"), json!(index))).collect();
    let error = Filter::compile(&Value::Object(wide)).unwrap_err();
    assert!(error.reason.contains("at most 1000 conditions"), "{error}");
}

#[test]
fn the_error_carries_its_place_apart_from_its_reason() {
    let FilterError { at, reason } = Filter::compile(&json!({"a": {"$in": 1}})).unwrap_err();
    assert_eq!((at.as_str(), reason.as_str()), ("filter.a.$in", "expected an array"));
}

//! Registering object webhook subscriptions with ServiceM8.
//!
//! A new subscription for an object replaces the earlier one, so the fields we ask for are merged with those
//! already subscribed rather than overwriting them.

use std::collections::BTreeSet;

use serde_json::Value;

use super::client::{ApiCallError, ServiceM8Client};
use crate::store::object_spec;

/// One subscription as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub object: String,
    pub fields: Vec<String>,
}

/// Subscribes `callback_url` to each object, merging with the fields already subscribed for that object.
pub async fn subscribe(
    client: &ServiceM8Client,
    callback_url: &str,
    requested: &[(String, Vec<String>)],
) -> Result<Vec<Subscribed>, ApiCallError> {
    let existing = client.list_subscriptions().await?;
    let mut subscribed = Vec::new();
    for (object, fields) in requested {
        let fields = merged_fields(&existing, object, fields);
        let unique_id = format!("sm8-webhooks-{object}");
        client
            .subscribe_object(object, &fields, callback_url, &unique_id)
            .await?;
        subscribed.push(Subscribed {
            object: object.clone(),
            fields,
        });
    }
    Ok(subscribed)
}

/// The requested fields plus those of any existing subscription to the same object.
pub fn merged_fields(existing: &[Value], object: &str, requested: &[String]) -> Vec<String> {
    let mut fields: BTreeSet<String> = requested.iter().cloned().collect();
    for subscription in existing {
        let same_object = subscription
            .get("object")
            .and_then(Value::as_str)
            .is_some_and(|name| name.eq_ignore_ascii_case(object));
        if !same_object {
            continue;
        }
        match subscription.get("fields") {
            Some(Value::String(list)) => fields.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
            ),
            Some(Value::Array(list)) => fields.extend(list.iter().filter_map(Value::as_str).map(str::to_owned)),
            _ => {}
        }
    }
    fields.into_iter().collect()
}

/// The default field list of `object` (`ObjectSpec::default_fields`).
pub fn default_fields(object: &str) -> Option<Vec<String>> {
    object_spec(object).map(|spec| spec.default_fields.iter().map(|f| (*f).to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn existing_fields_of_the_same_object_are_kept() {
        let existing = vec![
            json!({"object": "Job", "fields": "status,job_address"}),
            json!({"object": "company", "fields": "name"}),
        ];
        let merged = merged_fields(&existing, "job", &["status".into(), "company_uuid".into()]);
        assert_eq!(merged, vec!["company_uuid", "job_address", "status"]);
    }

    #[test]
    fn every_mirrored_object_has_default_fields() {
        for object in ["job", "company", "jobactivity", "attachment", "staff"] {
            assert!(default_fields(object).is_some_and(|fields| !fields.is_empty()));
        }
        assert_eq!(default_fields("form"), None);
    }
}

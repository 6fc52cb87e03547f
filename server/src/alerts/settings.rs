//! Each alert kind's thresholds: stored as JSON, every field optional with a default, checked when saved (a
//! wrong one is refused with the field it is about).

use app::alerts::model::AlertKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why an alert's settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("settings{}: {reason}", if field.is_empty() { String::new() } else { format!(".{field}") })]
pub struct InvalidSettings {
    pub field: String,
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> InvalidSettings {
    InvalidSettings {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExhaustedRetries {
    pub window_minutes: u32,
    pub min_events: u32,
}

impl Default for ExhaustedRetries {
    fn default() -> Self {
        ExhaustedRetries {
            window_minutes: 5,
            min_events: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureRate {
    pub window_minutes: u32,
    /// Fires at or above this share of failed attempts.
    pub percent: f64,
    /// Fewer attempts than this in the window say nothing.
    pub min_attempts: u32,
}

impl Default for FailureRate {
    fn default() -> Self {
        FailureRate {
            window_minutes: 10,
            percent: 50.0,
            min_attempts: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueAge {
    pub max_seconds: u32,
}

impl Default for QueueAge {
    fn default() -> Self {
        QueueAge { max_seconds: 300 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiBudget {
    /// Fires when the minute's or the day's use reaches this share of its limit.
    pub percent: f64,
}

impl Default for ApiBudget {
    fn default() -> Self {
        ApiBudget { percent: 90.0 }
    }
}

/// No webhook for `minutes` within the watched hours: from `from_hour` to `to_hour` on `days`, in the time zone
/// `utc_offset_minutes` east of UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Silence {
    pub minutes: u32,
    /// `mon` … `sun`.
    pub days: Vec<String>,
    pub from_hour: u8,
    pub to_hour: u8,
    pub utc_offset_minutes: i32,
}

impl Default for Silence {
    fn default() -> Self {
        Silence {
            minutes: 60,
            days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
            from_hour: 7,
            to_hour: 19,
            utc_offset_minutes: 0,
        }
    }
}

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MissedWebhooks {
    pub window_minutes: u32,
    pub min_changes: u32,
}

impl Default for MissedWebhooks {
    fn default() -> Self {
        MissedWebhooks {
            window_minutes: 60,
            min_changes: 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitOpen {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayDown {
    /// How long a relay must have been failing.
    pub after_seconds: u32,
}

impl Default for RelayDown {
    fn default() -> Self {
        RelayDown { after_seconds: 60 }
    }
}

/// An alert's kind with its thresholds.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    ExhaustedRetries(ExhaustedRetries),
    FailureRate(FailureRate),
    QueueAge(QueueAge),
    ApiBudget(ApiBudget),
    Silence(Silence),
    MissedWebhooks(MissedWebhooks),
    CircuitOpen(CircuitOpen),
    RelayDown(RelayDown),
}

impl Condition {
    /// `kind` with its default thresholds: what each new account starts with.
    pub fn default_for(kind: AlertKind) -> Condition {
        match kind {
            AlertKind::ExhaustedRetries => Condition::ExhaustedRetries(ExhaustedRetries::default()),
            AlertKind::FailureRate => Condition::FailureRate(FailureRate::default()),
            AlertKind::QueueAge => Condition::QueueAge(QueueAge::default()),
            AlertKind::ApiBudget => Condition::ApiBudget(ApiBudget::default()),
            AlertKind::Silence => Condition::Silence(Silence::default()),
            AlertKind::MissedWebhooks => Condition::MissedWebhooks(MissedWebhooks::default()),
            AlertKind::CircuitOpen => Condition::CircuitOpen(CircuitOpen::default()),
            AlertKind::RelayDown => Condition::RelayDown(RelayDown::default()),
        }
    }

    /// Reads and checks `settings` for `kind`; `null` takes every default.
    pub fn parse(kind: AlertKind, settings: &Value) -> Result<Condition, InvalidSettings> {
        let settings = match settings {
            Value::Null => &Value::Object(Default::default()),
            Value::Object(_) => settings,
            _ => return Err(invalid("", "expected an object of thresholds")),
        };
        fn read<T: for<'de> Deserialize<'de>>(settings: &Value) -> Result<T, InvalidSettings> {
            T::deserialize(settings).map_err(|error| invalid("", error.to_string()).trimmed())
        }
        let condition = match kind {
            AlertKind::ExhaustedRetries => Condition::ExhaustedRetries(read(settings)?),
            AlertKind::FailureRate => Condition::FailureRate(read(settings)?),
            AlertKind::QueueAge => Condition::QueueAge(read(settings)?),
            AlertKind::ApiBudget => Condition::ApiBudget(read(settings)?),
            AlertKind::Silence => Condition::Silence(read(settings)?),
            AlertKind::MissedWebhooks => Condition::MissedWebhooks(read(settings)?),
            AlertKind::CircuitOpen => Condition::CircuitOpen(read(settings)?),
            AlertKind::RelayDown => Condition::RelayDown(read(settings)?),
        };
        condition.validate()?;
        Ok(condition)
    }

    pub fn kind(&self) -> AlertKind {
        match self {
            Condition::ExhaustedRetries(_) => AlertKind::ExhaustedRetries,
            Condition::FailureRate(_) => AlertKind::FailureRate,
            Condition::QueueAge(_) => AlertKind::QueueAge,
            Condition::ApiBudget(_) => AlertKind::ApiBudget,
            Condition::Silence(_) => AlertKind::Silence,
            Condition::MissedWebhooks(_) => AlertKind::MissedWebhooks,
            Condition::CircuitOpen(_) => AlertKind::CircuitOpen,
            Condition::RelayDown(_) => AlertKind::RelayDown,
        }
    }

    /// The thresholds as stored, every field written out.
    pub fn settings(&self) -> Value {
        let value = match self {
            Condition::ExhaustedRetries(settings) => serde_json::to_value(settings),
            Condition::FailureRate(settings) => serde_json::to_value(settings),
            Condition::QueueAge(settings) => serde_json::to_value(settings),
            Condition::ApiBudget(settings) => serde_json::to_value(settings),
            Condition::Silence(settings) => serde_json::to_value(settings),
            Condition::MissedWebhooks(settings) => serde_json::to_value(settings),
            Condition::CircuitOpen(settings) => serde_json::to_value(settings),
            Condition::RelayDown(settings) => serde_json::to_value(settings),
        };
        value.expect("alert settings serialise")
    }

    fn validate(&self) -> Result<(), InvalidSettings> {
        fn window(minutes: u32) -> Result<(), InvalidSettings> {
            if (1..=1440).contains(&minutes) {
                Ok(())
            } else {
                Err(invalid("window_minutes", "must be from 1 to 1440"))
            }
        }
        fn percent(percent: f64) -> Result<(), InvalidSettings> {
            if percent > 0.0 && percent <= 100.0 {
                Ok(())
            } else {
                Err(invalid("percent", "must be above 0 and at most 100"))
            }
        }
        match self {
            Condition::ExhaustedRetries(settings) => {
                window(settings.window_minutes)?;
                at_least_one("min_events", settings.min_events)
            }
            Condition::FailureRate(settings) => {
                window(settings.window_minutes)?;
                percent(settings.percent)?;
                at_least_one("min_attempts", settings.min_attempts)
            }
            Condition::QueueAge(settings) => at_least_one("max_seconds", settings.max_seconds),
            Condition::ApiBudget(settings) => percent(settings.percent),
            Condition::Silence(settings) => {
                if !(1..=10_080).contains(&settings.minutes) {
                    return Err(invalid("minutes", "must be from 1 to 10080 (a week)"));
                }
                if settings.from_hour >= settings.to_hour || settings.to_hour > 24 {
                    return Err(invalid(
                        "from_hour",
                        "the hours must satisfy 0 <= from_hour < to_hour <= 24",
                    ));
                }
                if settings.utc_offset_minutes.abs() > 14 * 60 {
                    return Err(invalid("utc_offset_minutes", "must be within 14 hours of UTC"));
                }
                if settings.days.is_empty() {
                    return Err(invalid("days", "name at least one day"));
                }
                match settings.days.iter().find(|day| !DAYS.contains(&day.as_str())) {
                    Some(day) => Err(invalid("days", format!("unknown day {day:?}: use mon, tue, … sun"))),
                    None => Ok(()),
                }
            }
            Condition::MissedWebhooks(settings) => {
                window(settings.window_minutes)?;
                at_least_one("min_changes", settings.min_changes)
            }
            Condition::CircuitOpen(_) => Ok(()),
            Condition::RelayDown(settings) => at_least_one("after_seconds", settings.after_seconds),
        }
    }
}

fn at_least_one(field: &str, value: u32) -> Result<(), InvalidSettings> {
    if value >= 1 {
        Ok(())
    } else {
        Err(invalid(field, "must be at least 1"))
    }
}

impl InvalidSettings {
    /// serde names the field in its message (`unknown field `x``); the place is then the message itself.
    fn trimmed(self) -> InvalidSettings {
        let field = self
            .reason
            .split('`')
            .nth(1)
            .filter(|_| self.reason.starts_with("unknown field") || self.reason.starts_with("missing field"))
            .unwrap_or("")
            .to_owned();
        InvalidSettings { field, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_reads_its_defaults_back_from_what_it_stores() {
        for kind in AlertKind::ALL {
            let condition = Condition::default_for(kind);
            assert_eq!(
                Condition::parse(kind, &condition.settings()),
                Ok(condition.clone()),
                "{kind:?}"
            );
            assert_eq!(Condition::parse(kind, &Value::Null), Ok(condition), "{kind:?}");
        }
    }

    #[test]
    fn fields_left_out_take_their_defaults() {
        let condition = Condition::parse(AlertKind::FailureRate, &json!({"percent": 25})).unwrap();
        assert_eq!(
            condition,
            Condition::FailureRate(FailureRate {
                percent: 25.0,
                ..FailureRate::default()
            })
        );
    }

    #[test]
    fn wrong_settings_are_refused_with_the_field_they_are_about() {
        let refused = |kind, settings: Value| Condition::parse(kind, &settings).unwrap_err().to_string();
        assert!(refused(AlertKind::FailureRate, json!({"percent": 0})).starts_with("settings.percent:"));
        assert!(refused(AlertKind::FailureRate, json!({"percent": "high"})).starts_with("settings:"));
        assert!(
            refused(AlertKind::ExhaustedRetries, json!({"window_minutes": 0})).starts_with("settings.window_minutes")
        );
        assert!(refused(AlertKind::QueueAge, json!({"max_secs": 5})).starts_with("settings.max_secs:"));
        assert!(refused(AlertKind::Silence, json!({"from_hour": 19, "to_hour": 7})).starts_with("settings.from_hour"));
        assert!(refused(AlertKind::Silence, json!({"days": ["monday"]})).contains("unknown day \"monday\""));
        assert!(refused(AlertKind::Silence, json!({"utc_offset_minutes": 2000})).starts_with("settings.utc_offset"));
        assert!(refused(AlertKind::RelayDown, json!([1])).starts_with("settings:"));
    }
}

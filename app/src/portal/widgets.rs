//! Small pieces of the portal pages: the live-connection indicator, status badges and local times.

use leptos::prelude::*;

use super::model::status_class;
use crate::realtime::ConnectionStatus;

/// Whether updates are arriving live; announced politely to screen readers as it changes.
#[component]
pub fn LiveIndicator(status: Signal<ConnectionStatus>) -> impl IntoView {
    let title = move || match status.get() {
        ConnectionStatus::Connected => "Changes appear here as they happen",
        ConnectionStatus::Connecting => "Connecting to live updates",
        ConnectionStatus::Reconnecting => "The connection was lost; trying again",
        ConnectionStatus::Closed => "Live updates are off; reload the page to see changes",
    };
    view! {
        <p class="live-indicator" role="status" data-status=move || status.get().as_str() title=title>
            <span class="live-dot" aria-hidden="true"></span>
            <span class="live-label">{move || status.get().label()}</span>
        </p>
    }
}

/// A job's status as a coloured badge.
#[component]
pub fn StatusBadge(status: Option<String>) -> impl IntoView {
    let class = format!("status-badge {}", status_class(status.as_deref()));
    view! { <span class=class>{status.unwrap_or_else(|| "No status".into())}</span> }
}

/// A time in the viewer's time zone once the page runs in the browser; in UTC, marked as such, when rendered on
/// the server. `iso` is RFC 3339. A date at midnight exactly is a calendar date (ServiceM8 schedules whole days
/// that way): it is shown without a time and without moving it to another day. With `same_day_as` (the start of a
/// range), only the time is shown when both fall on the same day.
#[component]
pub fn LocalTime(
    #[prop(into)] iso: String,
    #[prop(into, default = None)] same_day_as: Option<String>,
) -> impl IntoView {
    let text = RwSignal::new(server_text(&iso, same_day_as.as_deref()));
    #[cfg(feature = "hydrate")]
    {
        let iso = iso.clone();
        Effect::new(move |_| {
            if let Some(local) = browser_text(&iso, same_day_as.as_deref()) {
                text.set(local);
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = same_day_as;
    view! { <time datetime=iso>{move || text.get()}</time> }
}

/// Whether an RFC 3339 time (as the server writes them: `YYYY-MM-DDTHH:MM:SSZ`) is midnight UTC, i.e. a date.
fn is_calendar_date(iso: &str) -> bool {
    iso.get(10..) == Some("T00:00:00Z")
}

/// `2024-05-01T09:30:00Z` as `2024-05-01 09:30 UTC` (`09:30 UTC` on the day of `same_day_as`); a calendar date as
/// `2024-05-01`.
pub fn server_text(iso: &str, same_day_as: Option<&str>) -> String {
    let date = iso.get(..10).unwrap_or(iso);
    if is_calendar_date(iso) {
        return date.to_owned();
    }
    match iso.get(11..16) {
        Some(time) if same_day_as.and_then(|other| other.get(..10)) == Some(date) => format!("{time} UTC"),
        Some(time) => format!("{date} {time} UTC"),
        None => iso.to_owned(),
    }
}

/// The viewer's rendering: "1 May 2024, 9:30 am" in their locale and zone, "9:30 am" on the day of `same_day_as`,
/// or "1 May 2024" for a date.
#[cfg(feature = "hydrate")]
fn browser_text(iso: &str, same_day_as: Option<&str>) -> Option<String> {
    use wasm_bindgen::JsValue;

    let parse = |iso: &str| {
        let date = js_sys::Date::new(&JsValue::from_str(iso));
        (!date.get_time().is_nan()).then_some(date)
    };
    let date = parse(iso)?;
    let same_day = same_day_as
        .and_then(parse)
        .is_some_and(|other| other.to_date_string() == date.to_date_string());
    let options = js_sys::Object::new();
    let set = |key: &str, value: &str| js_sys::Reflect::set(&options, &key.into(), &value.into()).ok();
    if is_calendar_date(iso) {
        set("dateStyle", "medium")?;
        set("timeZone", "UTC")?;
    } else if same_day {
        set("timeStyle", "short")?;
    } else {
        set("dateStyle", "medium")?;
        set("timeStyle", "short")?;
    }
    Some(String::from(date.to_locale_string("default", &options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_rendered_times_say_utc_and_dates_stay_dates() {
        assert_eq!(server_text("2024-05-01T09:30:00Z", None), "2024-05-01 09:30 UTC");
        assert_eq!(server_text("2024-05-01T00:00:00Z", None), "2024-05-01");
        assert_eq!(server_text("2024-05-01T00:00:01Z", None), "2024-05-01 00:00 UTC");
        assert_eq!(server_text("garbage", None), "garbage");
    }

    #[test]
    fn the_end_of_a_range_on_the_same_day_shows_only_its_time() {
        let start = Some("2024-05-01T08:00:00Z");
        assert_eq!(server_text("2024-05-01T10:30:00Z", start), "10:30 UTC");
        assert_eq!(server_text("2024-05-02T10:30:00Z", start), "2024-05-02 10:30 UTC");
    }

    #[test]
    fn only_midnight_exactly_is_a_calendar_date() {
        assert!(is_calendar_date("2024-05-01T00:00:00Z"));
        assert!(!is_calendar_date("2024-05-01T12:00:00Z"));
        assert!(!is_calendar_date("2024-05-01"));
    }
}

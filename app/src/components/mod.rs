//! Small building blocks shared by the dashboard and the portal.

mod chart;

pub use chart::{BarChart, LineChart};

use leptos::prelude::*;

/// A time shown in the viewer's time zone once the page is interactive; UTC when rendered on the server.
#[component]
pub fn LocalTime(#[prop(into)] iso: String) -> impl IntoView {
    let text = RwSignal::new(utc_text(&iso));
    #[cfg(feature = "hydrate")]
    {
        let iso = iso.clone();
        Effect::new(move |_| {
            if let Some(local) = local_text(&iso) {
                text.set(local);
            }
        });
    }
    view! { <time datetime=iso>{move || text.get()}</time> }
}

/// `2024-01-01T10:00:00.123Z` as `2024-01-01 10:00:00 UTC`.
pub fn utc_text(iso: &str) -> String {
    let trimmed = iso.trim_end_matches('Z');
    let seconds = trimmed.split('.').next().unwrap_or(trimmed);
    if seconds.is_empty() {
        return String::new();
    }
    format!("{} UTC", seconds.replacen('T', " ", 1))
}

/// The viewer's local rendering of an RFC 3339 time (or a ServiceM8 date, taken as UTC).
#[cfg(feature = "hydrate")]
pub fn local_text(iso: &str) -> Option<String> {
    let normalised = if iso.contains('T') {
        iso.to_owned()
    } else {
        format!("{}Z", iso.replacen(' ', "T", 1))
    };
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&normalised));
    if date.get_time().is_nan() {
        return None;
    }
    Some(String::from(
        date.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED),
    ))
}

/// Pretty-printed JSON in a scrollable block.
#[component]
pub fn JsonBlock(value: serde_json::Value, #[prop(into)] label: String) -> impl IntoView {
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    view! { <pre class="code" aria-label=label tabindex="0">{text}</pre> }
}

/// A failed request, as an alert.
#[component]
pub fn ErrorNote(#[prop(into)] message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}

#[cfg(test)]
mod tests {
    use super::utc_text;

    #[test]
    fn utc_text_drops_fractions_and_names_the_zone() {
        assert_eq!(utc_text("2024-01-01T10:00:00.123Z"), "2024-01-01 10:00:00 UTC");
        assert_eq!(utc_text("2024-01-01T10:00:00Z"), "2024-01-01 10:00:00 UTC");
        assert_eq!(utc_text(""), "");
    }
}

//! The two session cookies, admin and portal, and the dashboard's chosen account: their names, how they are set,
//! and how a request's are read.

/// Which session a cookie carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCookie {
    /// The dashboard's, `SameSite=Strict`: no other site's page or link carries it along.
    Admin,
    /// The portal's, `SameSite=Lax`, so the session survives arriving from a link in an email.
    Portal,
    /// Not a session: the account the dashboard shows, remembered between visits (`SameSite=Strict`).
    Account,
}

/// How long a portal session lasts: 30 days.
pub const PORTAL_SESSION_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

impl SessionCookie {
    pub fn name(self) -> &'static str {
        match self {
            SessionCookie::Admin => "sm8_admin_session",
            SessionCookie::Portal => "sm8_portal_session",
            SessionCookie::Account => "sm8_account",
        }
    }

    /// The `Set-Cookie` value that holds `value` for `max_age` seconds (an empty value with 0 ends the session):
    /// HttpOnly, on every path, `Secure` when the public URL is https.
    #[cfg(feature = "ssr")]
    pub fn set_cookie(self, value: &str, max_age: i64, secure: bool) -> String {
        let same_site = match self {
            SessionCookie::Admin | SessionCookie::Account => cookie::SameSite::Strict,
            SessionCookie::Portal => cookie::SameSite::Lax,
        };
        cookie::Cookie::build((self.name(), value))
            .path("/")
            .http_only(true)
            .same_site(same_site)
            .max_age(cookie::time::Duration::seconds(max_age))
            .secure(secure)
            .build()
            .to_string()
    }

    /// This session's cookie among a request's `headers`, if it is there and not empty.
    #[cfg(feature = "ssr")]
    pub fn value_in(self, headers: &http::HeaderMap) -> Option<&str> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == self.name() && !cookie.value().is_empty())
            .and_then(|cookie| cookie.value_raw())
    }
}

/// The headers of the request a server function is answering.
#[cfg(feature = "ssr")]
pub async fn request_headers() -> Result<http::HeaderMap, crate::error::AppError> {
    leptos_axum::extract().await.map_err(crate::error::AppError::Request)
}

/// This session's cookie on the current request, if any.
#[cfg(feature = "ssr")]
pub async fn current(session: SessionCookie) -> Result<Option<String>, crate::error::AppError> {
    Ok(session.value_in(&request_headers().await?).map(str::to_owned))
}

/// Sets (or, with an empty value and `max_age` 0, clears) a session cookie on the response being built.
#[cfg(feature = "ssr")]
pub fn set_on_response(session: SessionCookie, value: &str, max_age: i64, secure: bool) {
    if let (Some(response), Ok(cookie)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&session.set_cookie(value, max_age, secure)),
    ) {
        response.append_header(http::header::SET_COOKIE, cookie);
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn each_session_is_found_by_its_name_among_other_cookies() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "a=1; sm8_portal_session=abc".parse().unwrap());
        headers.append(http::header::COOKIE, "sm8_admin_session=zzz".parse().unwrap());
        assert_eq!(SessionCookie::Portal.value_in(&headers), Some("abc"));
        assert_eq!(SessionCookie::Admin.value_in(&headers), Some("zzz"));
        assert_eq!(SessionCookie::Admin.value_in(&http::HeaderMap::new()), None);
    }

    #[test]
    fn an_empty_cookie_is_no_session() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "sm8_admin_session=".parse().unwrap());
        assert_eq!(SessionCookie::Admin.value_in(&headers), None);
    }

    #[test]
    fn session_cookies_are_http_only_with_their_same_site_and_secure_only_over_https() {
        let portal = SessionCookie::Portal.set_cookie("abc", 60, false);
        for part in [
            "sm8_portal_session=abc",
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=60",
        ] {
            assert!(portal.contains(part), "{portal} lacks {part}");
        }
        assert!(!portal.contains("Secure"));
        let admin = SessionCookie::Admin.set_cookie("abc", 60, true);
        assert!(admin.contains("SameSite=Strict") && admin.contains("Secure"), "{admin}");
    }
}

//! The logged-in session: the API's JWT in an HttpOnly, SameSite=Lax cookie, plus the user's
//! display name for the navigation bar.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

/// Cookie holding the bearer token.
pub const SESSION_COOKIE: &str = "session";
/// Cookie holding the hex-encoded display name (display only: never trusted for access).
pub const NAME_COOKIE: &str = "session_name";

/// A request from someone who is logged in. Extracting it redirects to the login page otherwise.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub name: Option<String>,
}

/// Nobody is logged in: the visitor goes to the login page, then back to `next`. Rendered
/// through the UI's error path (the `error` module turns it into `Error::LoginRequired`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequired {
    /// The page to come back to.
    pub next: String,
}

/// The display name when logged in, for pages that anyone may see.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<String>);

/// The session in these cookies, if any.
pub fn from_jar(jar: &CookieJar) -> Option<Session> {
    let token = jar.get(SESSION_COOKIE)?.value().to_owned();
    if token.is_empty() {
        return None;
    }
    let name = jar
        .get(NAME_COOKIE)
        .and_then(|c| hex::decode(c.value()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|n| !n.is_empty());
    Some(Session { token, name })
}

/// Where to come back to after logging in: the page asked for, when it is a page.
pub fn return_path(parts: &Parts) -> String {
    if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".into())
    } else {
        "/".into()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        from_jar(&jar).ok_or_else(|| LoginRequired {
            next: return_path(parts),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        Ok(MaybeUser(
            from_jar(&jar).map(|s| s.name.unwrap_or_else(|| "Account".into())),
        ))
    }
}

/// Cookies that start a session lasting `max_age` seconds.
pub fn start(jar: CookieJar, token: String, name: &str, max_age: u64, secure: bool) -> CookieJar {
    let age = Duration::seconds(i64::try_from(max_age).unwrap_or(3600));
    let build = |k: &'static str, v: String| {
        Cookie::build((k, v))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(age)
            .build()
    };
    jar.add(build(SESSION_COOKIE, token))
        .add(build(NAME_COOKIE, hex::encode(name.as_bytes())))
}

/// Cookies that end the session.
///
/// Written as expired cookies rather than `jar.remove`, so this works even on a jar that did not
/// see the cookies arrive (error responses build their own).
pub fn end(jar: CookieJar) -> CookieJar {
    let expired = |k: &'static str| {
        Cookie::build((k, ""))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH)
            .build()
    };
    jar.add(expired(SESSION_COOKIE)).add(expired(NAME_COOKIE))
}

/// A `next` parameter is followed only when it is an absolute path on this site (no open
/// redirect): it starts with one `/`, and holds only visible ASCII (no control characters,
/// which browsers drop, so `/` + tab + `/evil.example` would become `//evil.example`; no
/// spaces, no non-ASCII, which would not fit a `Location` header) and no backslash (read as
/// `/` by browsers). Anything else goes to the home page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_site() {
        assert_eq!(safe_next(Some("/history?page=2")), "/history?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        // Browsers drop tabs and newlines: `/\t/evil.example` would leave the site.
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\u{b}/x",
            "/\u{0}",
            "/ /evil.example",
            "/é",
            "/%0a",
        ] {
            let got = safe_next(Some(bad));
            assert!(
                got == "/" || got == bad && bad.is_ascii(),
                "{bad:?} -> {got:?}"
            );
            assert!(
                axum::http::HeaderValue::from_str(&got).is_ok(),
                "{bad:?} must fit a Location header"
            );
        }
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/results/1?x=%2F")), "/results/1?x=%2F");
    }
}

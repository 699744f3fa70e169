//! CSRF protection by double submit: a random token in an HttpOnly, SameSite=Lax cookie
//! (`__Host-csrf` when cookies are `Secure`), echoed by every form in a hidden field. A
//! cross-site page can make the browser send the cookie but cannot read it, so it cannot put
//! the matching value in the form.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{HeaderValue, SET_COOKIE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use rand::RngCore;
use serde::de::DeserializeOwned;

use crate::AppState;

/// Name of the cookie that holds the token when cookies cannot be `Secure` (plain http).
pub const COOKIE: &str = "csrf";
/// Its name when they are: browsers accept a `__Host-` cookie only `Secure`, for `Path=/` and
/// without `Domain`, so no other host (a sibling subdomain) can plant or overwrite it.
pub const HOST_COOKIE: &str = "__Host-csrf";

/// The cookie name for a UI whose cookies are `secure` or not. Over plain http a `Secure`
/// cookie would not come back (except from localhost), so the prefix cannot be had there.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        HOST_COOKIE
    } else {
        COOKIE
    }
}
/// Name of the hidden form field that must repeat it.
pub const FIELD: &str = "csrf";

/// A form came without the matching token. Rendered as the UI's error page (the `error`
/// module turns it into `Error::Csrf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrfMismatch;

/// The token of the current request (from its cookie, or freshly minted), for templates and checks.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl CsrfToken {
    /// Fail unless `submitted` equals this token.
    pub fn verify(&self, submitted: &str) -> Result<(), CsrfMismatch> {
        if !self.0.is_empty() && constant_time_eq(self.0.as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(CsrfMismatch)
        }
    }
}

/// A form that repeats the token in its hidden [`FIELD`].
pub trait CsrfField {
    /// The token the form sent back.
    fn csrf(&self) -> &str;
}

/// A posted form whose hidden field matched the visitor's token, with that token (for a form
/// shown again): `CheckedForm(csrf, form)`. A mismatch is refused before the handler runs, so no
/// handler that takes this can forget the check.
pub struct CheckedForm<F>(pub CsrfToken, pub F);

impl<S: Send + Sync, F: DeserializeOwned + CsrfField> FromRequest<S> for CheckedForm<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Extension(csrf) = Extension::<CsrfToken>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Form(form) = Form::<F>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        csrf.verify(form.csrf())
            .map_err(IntoResponse::into_response)?;
        Ok(Self(csrf, form))
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cookie holding `token` (no `Domain`: a `__Host-` cookie must have none).
fn cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((cookie_name(secure), token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build()
}

/// `jar` with a new token cookie: at log-in, so a token planted or read before the session
/// began (login CSRF, a shared computer) is worth nothing after it.
pub fn rotated(jar: CookieJar, secure: bool) -> CookieJar {
    jar.add(cookie(new_token(), secure))
}

/// Middleware: make sure every visitor has a token cookie, and hand the token to handlers.
///
/// A request whose cookie is missing gets a new token; its own form post will then fail the check,
/// which is right: the form it submits was not issued with that cookie.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // Probes and static files never render a form: no cookie for them.
    let path = req.uri().path();
    if path == "/health" || path.starts_with("/static/") {
        return next.run(req).await;
    }
    let jar = CookieJar::from_headers(req.headers());
    let existing = jar
        .get(cookie_name(state.cookie_secure))
        .map(|c| c.value().to_owned())
        .filter(|t| well_formed(t));
    let (token, minted) = match existing {
        Some(t) => (t, false),
        None => (new_token(), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut resp = next.run(req).await;
    if minted {
        if let Ok(v) = HeaderValue::from_str(&cookie(token, state.cookie_secure).to_string()) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (a, b) = (new_token(), new_token());
        assert!(well_formed(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn the_cookie_is_host_prefixed_exactly_when_secure() {
        let secure = cookie(new_token(), true);
        assert_eq!(secure.name(), "__Host-csrf");
        assert_eq!(
            (secure.secure(), secure.path(), secure.domain()),
            (Some(true), Some("/"), None)
        );
        let plain = cookie(new_token(), false);
        assert_eq!(plain.name(), "csrf");
        assert_eq!(plain.secure(), Some(false));
    }

    #[test]
    fn verify_accepts_only_the_exact_token() {
        let t = CsrfToken(new_token());
        assert!(t.verify(&t.0.clone()).is_ok());
        assert!(t.verify("").is_err());
        assert!(t.verify(&t.0[..63]).is_err());
        assert!(CsrfToken(String::new()).verify("").is_err());
    }
}

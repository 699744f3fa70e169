//! Sign up, log in, log out. The API's JWT goes into an HttpOnly cookie; scripts never see it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use api_types::Token;

use crate::api::ApiCallError;
use crate::csrf::{CheckedForm, CsrfField, CsrfToken};
use crate::error::{Error, Result};
use crate::pages::{LoginPage, Notice, Page, SignupPage};
use crate::session::{self, MaybeUser};
use crate::AppState;

/// The routes of this module.
pub fn router() -> axum::Router<crate::AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/login", get(login_form).post(login))
        .route("/signup", get(signup_form).post(signup))
        .route("/logout", get(super::classify::redirect_home).post(logout))
}

/// Query parameters of the log-in and sign-up pages (sign-up reads only `next`, where to go once
/// the account exists).
#[derive(Debug, Default, Deserialize)]
pub struct AuthQuery {
    next: Option<String>,
    expired: Option<String>,
    registered: Option<String>,
    logged_out: Option<String>,
}

/// `GET /login`.
pub async fn login_form(
    MaybeUser(user): MaybeUser,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<AuthQuery>,
) -> Page<LoginPage> {
    let mut page = LoginPage::new(user, &csrf.0, session::safe_next(q.next.as_deref()));
    page.notice = if q.expired.is_some() {
        Some(Notice::new(
            "warning",
            "Your session has expired. Please log in again.",
        ))
    } else if q.registered.is_some() {
        Some(Notice::new(
            "success",
            "Your account is ready. Log in with your email and password.",
        ))
    } else if q.logged_out.is_some() {
        Some(Notice::new("info", "You have been logged out."))
    } else if q.next.is_some() {
        Some(Notice::new("info", "Please log in to continue."))
    } else {
        None
    };
    Page::ok(page)
}

/// The login form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
}

impl CsrfField for LoginForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The person is in: the token goes into the session cookie, the CSRF token is replaced (see
/// [`crate::csrf::rotated`]) and the browser goes on to `next`.
fn logged_in(state: &AppState, jar: CookieJar, token: Token, name: &str, next: &str) -> Response {
    let secure = state.cookie_secure;
    let jar = session::start(jar, token.access_token, name, token.expires_in, secure);
    let jar = crate::csrf::rotated(jar, secure);
    (jar, Redirect::to(next)).into_response()
}

/// `POST /login`: ask the API for a token, keep it in a cookie, go where the person was heading.
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    CheckedForm(csrf, form): CheckedForm<LoginForm>,
) -> Result<Response> {
    let email = form.email.trim().to_owned();
    let mut page = LoginPage::new(None, &csrf.0, session::safe_next(form.next.as_deref()));
    page.email.clone_from(&email);
    if email.is_empty() || form.password.is_empty() {
        page.errors.email = email
            .is_empty()
            .then(|| "Enter the email you signed up with.".to_owned());
        page.errors.password = form
            .password
            .is_empty()
            .then(|| "Enter your password.".to_owned());
        return Ok(Page::with_status(StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let again = |status: StatusCode, text: &str| {
        let notice = Some(Notice::new("error", text));
        Page::with_status(
            status,
            LoginPage {
                notice,
                ..page.clone()
            },
        )
        .into_response()
    };
    let token = match state.api.login(&email, &form.password).await {
        Ok(t) => t,
        Err(e) => match login_refusal(&e) {
            Some((status, text)) => return Ok(again(status, text)),
            None => return Err(e.into()),
        },
    };
    let name = match state.api.me(&token.access_token).await {
        Ok(u) if !u.name.trim().is_empty() => u.name,
        Ok(u) if !u.email.is_empty() => u.email,
        _ => email,
    };
    Ok(logged_in(&state, jar, token, &name, &page.next))
}

/// What the log-in page says when the API refuses a log-in (`None`: the ordinary error page).
fn login_refusal(e: &ApiCallError) -> Option<(StatusCode, &'static str)> {
    let status = match e {
        ApiCallError::Status { status, .. } => *status,
        _ => StatusCode::OK,
    };
    Some(match e {
        ApiCallError::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "That email and password do not match an account. Check them and try again.",
        ),
        ApiCallError::Status { .. } if status == StatusCode::UNPROCESSABLE_ENTITY => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter a valid email address and your password.",
        ),
        ApiCallError::Status { .. } if status == StatusCode::TOO_MANY_REQUESTS => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many log-in attempts. Wait a minute, then try again.",
        ),
        ApiCallError::Unavailable(_) => {
            tracing::warn!(error = %e, "login: API unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is unavailable right now, so we cannot log you in. Please try again in a minute.",
            )
        }
        _ => return None,
    })
}

/// `GET /signup`.
pub async fn signup_form(
    MaybeUser(user): MaybeUser,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<AuthQuery>,
) -> Page<SignupPage> {
    Page::ok(SignupPage::new(
        user,
        &csrf.0,
        session::safe_next(q.next.as_deref()),
    ))
}

/// The sign-up form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignupForm {
    csrf: String,
    name: String,
    email: String,
    password: String,
    next: Option<String>,
}

impl CsrfField for SignupForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Every problem of the sign-up form at once, each next to its field, checked by the API's
/// own rules (the API would name only the first).
fn check_signup(page: &mut SignupPage, password: &str) {
    let name_len = page.name.chars().count();
    if name_len == 0 {
        page.errors.name = Some("Enter your name.".into());
    } else if !(api_types::MIN_NAME_CHARS..=api_types::MAX_NAME_CHARS).contains(&name_len) {
        page.errors.name = Some(format!(
            "Use {} to {} characters for your name.",
            api_types::MIN_NAME_CHARS,
            api_types::MAX_NAME_CHARS
        ));
    }
    let email_ok = page.email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.split('.').count() >= 2
            && domain.split('.').all(|p| !p.is_empty())
            && !page.email.chars().any(char::is_whitespace)
    });
    if !email_ok {
        page.errors.email = Some("Enter an email address like name@example.com.".into());
    }
    let pw = password.chars().count();
    if pw == 0 {
        page.errors.password = Some("Choose a password.".into());
    } else if pw < api_types::MIN_PASSWORD_CHARS {
        page.errors.password = Some(format!(
            "Use at least {} characters.",
            api_types::MIN_PASSWORD_CHARS
        ));
    } else if pw > api_types::MAX_PASSWORD_CHARS {
        page.errors.password = Some(format!(
            "Use at most {} characters.",
            api_types::MAX_PASSWORD_CHARS
        ));
    }
}

/// `POST /signup`: create the account, log the person in and go on where they were heading.
pub async fn signup(
    State(state): State<AppState>,
    jar: CookieJar,
    CheckedForm(csrf, form): CheckedForm<SignupForm>,
) -> Result<Response> {
    let mut page = SignupPage::new(None, &csrf.0, session::safe_next(form.next.as_deref()));
    page.name = form.name.trim().to_owned();
    page.email = form.email.trim().to_owned();
    check_signup(&mut page, &form.password);
    if page.errors.any() {
        return Ok(Page::with_status(StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    match state
        .api
        .register(&page.name, &page.email, &form.password)
        .await
    {
        Ok(()) => {
            // Logged in at once; should that fail (a busy API), the log-in page says the
            // account is ready.
            let token = match state.api.login(&page.email, &form.password).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "signup: the new account could not log in");
                    let url = format!(
                        "/login?registered=1&next={}",
                        crate::percent_encode(&page.next)
                    );
                    return Ok(Redirect::to(&url).into_response());
                }
            };
            Ok(logged_in(&state, jar, token, &page.name, &page.next))
        }
        Err(ApiCallError::Status {
            status,
            message,
            field,
            ..
        }) if status.is_client_error() => {
            show_refusal(&mut page, status, message, field.as_deref());
            Ok(Page::with_status(status, page).into_response())
        }
        Err(ApiCallError::Unavailable(e)) => {
            tracing::warn!(error = %e, "signup: API unavailable");
            page.notice = Some(Notice::new(
                "error",
                "The service is unavailable right now, so we cannot create your account. Please try again in a minute.",
            ));
            Ok(Page::with_status(StatusCode::SERVICE_UNAVAILABLE, page).into_response())
        }
        Err(e) => Err(Error::from(e)),
    }
}

/// Puts the API's refusal of a sign-up next to the field it names (a taken email next to the
/// email), else above the form.
fn show_refusal(page: &mut SignupPage, status: StatusCode, message: String, field: Option<&str>) {
    match (status.as_u16(), field) {
        (409, _) => {
            page.errors.email = Some(
                "An account with this email already exists. Log in instead, or use another email."
                    .into(),
            )
        }
        (_, Some("name")) => page.errors.name = Some(message),
        (_, Some("email")) => page.errors.email = Some(message),
        (_, Some("password")) => page.errors.password = Some(message),
        _ => page.notice = Some(Notice::new("error", message)),
    }
}

/// The log-out form: only the CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    csrf: String,
}

impl CsrfField for LogoutForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /logout`: revoke the token at the API (so a copy of it is worthless too), then
/// forget it. The cookies are cleared even when the API cannot be reached.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    _: CheckedForm<LogoutForm>,
) -> Response {
    if let Some(s) = session::from_jar(&jar) {
        if let Err(e) = state.api.logout(&s.token).await {
            tracing::warn!(error = %e, "logout: the API did not revoke the token");
        }
    }
    (session::end(jar), Redirect::to("/login?logged_out=1")).into_response()
}

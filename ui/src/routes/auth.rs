//! Sign up, log in, log out. The API's JWT goes into an HttpOnly cookie; scripts never see it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::api::ApiError;
use crate::csrf::CsrfToken;
use crate::error::{Error, Result};
use crate::pages::{Layout, LoginPage, Notice, Page, SignupPage};
use crate::session::{self, MaybeUser};
use crate::AppState;

/// Query parameters the login page understands.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    registered: Option<String>,
    logged_out: Option<String>,
}

/// `GET /login`.
pub async fn login_form(
    MaybeUser(user): MaybeUser,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<LoginQuery>,
) -> Page<LoginPage> {
    let notice = if q.expired.is_some() {
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
    Page::ok(LoginPage {
        layout: Layout::new("Log in", user, &csrf.0, "login"),
        email: String::new(),
        next: session::safe_next(q.next.as_deref()),
        notice,
        email_error: None,
        password_error: None,
    })
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

/// `POST /login`: ask the API for a token, keep it in a cookie, go where the person was heading.
pub async fn login(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    csrf.verify(&form.csrf)?;
    let email = form.email.trim().to_owned();
    let next = session::safe_next(form.next.as_deref());
    let again = |status: StatusCode, text: &str| {
        Page::with_status(
            status,
            LoginPage {
                layout: Layout::new("Log in", None, &csrf.0, "login"),
                email: email.clone(),
                next: next.clone(),
                notice: Some(Notice::new("error", text)),
                email_error: None,
                password_error: None,
            },
        )
        .into_response()
    };
    if email.is_empty() || form.password.is_empty() {
        let page = LoginPage {
            layout: Layout::new("Log in", None, &csrf.0, "login"),
            email: email.clone(),
            next: next.clone(),
            notice: None,
            email_error: email
                .is_empty()
                .then(|| "Enter the email you signed up with.".to_owned()),
            password_error: form
                .password
                .is_empty()
                .then(|| "Enter your password.".to_owned()),
        };
        return Ok(Page::with_status(StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let token = match state.api.login(&email, &form.password).await {
        Ok(t) => t,
        Err(ApiError::Unauthorized) => {
            return Ok(again(
                StatusCode::UNAUTHORIZED,
                "That email and password do not match an account. Check them and try again.",
            ))
        }
        Err(ApiError::Status { status, .. }) if status == StatusCode::UNPROCESSABLE_ENTITY => {
            return Ok(again(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Enter a valid email address and your password.",
            ))
        }
        Err(ApiError::Status { status, .. }) if status == StatusCode::TOO_MANY_REQUESTS => {
            return Ok(again(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many log-in attempts. Wait a minute, then try again.",
            ))
        }
        Err(e @ ApiError::Unavailable(_)) => {
            tracing::warn!(error = %e, "login: API unavailable");
            return Ok(again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is unavailable right now, so we cannot log you in. Please try again in a minute.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let name = match state.api.me(&token.access_token).await {
        Ok(u) if !u.name.trim().is_empty() => u.name,
        Ok(u) if !u.email.is_empty() => u.email,
        _ => email.clone(),
    };
    let jar = session::start(
        jar,
        token.access_token,
        &name,
        token.expires_in,
        state.cookie_secure,
    );
    let jar = crate::csrf::rotated(jar, state.cookie_secure);
    Ok((jar, Redirect::to(&next)).into_response())
}

/// Query of the sign-up page: where to go once the account exists.
#[derive(Debug, Default, Deserialize)]
pub struct SignupQuery {
    next: Option<String>,
}

/// `GET /signup`.
pub async fn signup_form(
    MaybeUser(user): MaybeUser,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<SignupQuery>,
) -> Page<SignupPage> {
    Page::ok(SignupPage {
        layout: Layout::new("Create an account", user, &csrf.0, "signup"),
        next: session::safe_next(q.next.as_deref()),
        name: String::new(),
        email: String::new(),
        notice: None,
        name_error: None,
        email_error: None,
        password_error: None,
    })
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

/// Every problem of the sign-up form at once, each next to its field, checked by the API's
/// own rules (the API would name only the first).
fn check_signup(page: &mut SignupPage, password: &str) {
    let name_len = page.name.chars().count();
    if name_len == 0 {
        page.name_error = Some("Enter your name.".into());
    } else if !(api_types::MIN_NAME_CHARS..=api_types::MAX_NAME_CHARS).contains(&name_len) {
        page.name_error = Some(format!(
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
        page.email_error = Some("Enter an email address like name@example.com.".into());
    }
    let pw = password.chars().count();
    if pw == 0 {
        page.password_error = Some("Choose a password.".into());
    } else if pw < api_types::MIN_PASSWORD_CHARS {
        page.password_error = Some(format!(
            "Use at least {} characters.",
            api_types::MIN_PASSWORD_CHARS
        ));
    } else if pw > api_types::MAX_PASSWORD_CHARS {
        page.password_error = Some(format!(
            "Use at most {} characters.",
            api_types::MAX_PASSWORD_CHARS
        ));
    }
}

/// `POST /signup`: create the account, log the person in and go on where they were heading.
pub async fn signup(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
    Form(form): Form<SignupForm>,
) -> Result<Response> {
    csrf.verify(&form.csrf)?;
    let mut page = SignupPage {
        layout: Layout::new("Create an account", None, &csrf.0, "signup"),
        next: session::safe_next(form.next.as_deref()),
        name: form.name.trim().to_owned(),
        email: form.email.trim().to_owned(),
        notice: None,
        name_error: None,
        email_error: None,
        password_error: None,
    };
    check_signup(&mut page, &form.password);
    if page.name_error.is_some() || page.email_error.is_some() || page.password_error.is_some() {
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
            let jar = session::start(
                jar,
                token.access_token,
                &page.name,
                token.expires_in,
                state.cookie_secure,
            );
            let jar = crate::csrf::rotated(jar, state.cookie_secure);
            Ok((jar, Redirect::to(&page.next)).into_response())
        }
        Err(ApiError::Status {
            status,
            message,
            field,
            ..
        }) if status.is_client_error() => {
            match (status.as_u16(), field.as_deref()) {
                (409, _) => {
                    page.email_error = Some(
                        "An account with this email already exists. Log in instead, or use another email."
                            .into(),
                    )
                }
                (_, Some("name")) => page.name_error = Some(message),
                (_, Some("email")) => page.email_error = Some(message),
                (_, Some("password")) => page.password_error = Some(message),
                _ => page.notice = Some(Notice::new("error", message)),
            }
            Ok(Page::with_status(status, page).into_response())
        }
        Err(ApiError::Unavailable(e)) => {
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

/// The log-out form: only the CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: revoke the token at the API (so a copy of it is worthless too), then
/// forget it. The cookies are cleared even when the API cannot be reached.
pub async fn logout(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response> {
    csrf.verify(&form.csrf)?;
    if let Some(s) = session::from_jar(&jar) {
        if let Err(e) = state.api.logout(&s.token).await {
            tracing::warn!(error = %e, "logout: the API did not revoke the token");
        }
    }
    Ok((session::end(jar), Redirect::to("/login?logged_out=1")).into_response())
}

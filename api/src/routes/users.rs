//! Registration, login and user administration.

use api_types::{
    ErrorBody, LoginRequest, RegisterRequest, Token, TokenType, User, UserPage, MAX_EMAIL_LEN,
    MAX_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_NAME_CHARS, MIN_PASSWORD_CHARS,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::{hash_password, verify_password};
use crate::error::{ApiError, AppJson, AppPath as Path, AppQuery as Query, Result};
use crate::extract::{AuthUser, ClientAddr};
use crate::routes::Page;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", post(create_user).get(list_users))
        .route("/users/me", get(get_me))
        .route("/users/{id}", get(get_user).delete(delete_user))
        .route("/login", post(create_login))
        .route("/logout", post(create_logout))
}

/// Checks the fields; the error names the first bad one. Returns the name and email as they
/// are kept ([`shared::text::normalize`]d, so look-alike compatibility forms are one account).
pub fn validate_user(u: &RegisterRequest) -> Result<(String, String)> {
    // The same rules as `RegisterRequest`'s schema: at most 50 characters as sent, at least 2
    // once trimmed; and no more than 50 once normalised (NFKC can lengthen).
    let name = shared::text::normalize(&u.name);
    let chars = name.chars().count();
    if u.name.chars().count() > MAX_NAME_CHARS
        || !(MIN_NAME_CHARS..=MAX_NAME_CHARS).contains(&chars)
    {
        return Err(ApiError::Validation(
            format!("name must be {MIN_NAME_CHARS} to {MAX_NAME_CHARS} characters"),
            "name",
        ));
    }
    if name.chars().any(shared::text::is_invisible) {
        return Err(ApiError::Validation(
            "name must not contain control, invisible or direction-changing characters".into(),
            "name",
        ));
    }
    let email = shared::text::normalize_email(&u.email);
    if !valid_email(&email) {
        return Err(ApiError::Validation(
            "email must look like name@example.com".into(),
            "email",
        ));
    }
    let pw = u.password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&pw) {
        return Err(ApiError::Validation(
            format!("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
            "password",
        ));
    }
    Ok((name, email))
}

/// A pragmatic email shape: one `@`, a non-empty local part, a dotted domain whose labels
/// neither start nor end with `-`, no spaces and no invisible or direction-changing characters.
pub fn valid_email(e: &str) -> bool {
    let invisible = |c: char| c.is_whitespace() || shared::text::is_invisible(c);
    if e.len() > MAX_EMAIL_LEN || e.chars().any(invisible) {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|p| {
            !p.is_empty()
                && !p.starts_with('-')
                && !p.ends_with('-')
                && p.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// Registers a user: 201, 409 on a taken email, 422 naming an invalid field.
#[utoipa::path(post, path = "/users", tag = "users", request_body = RegisterRequest,
    responses((status = 201, body = User, description = "created; `Location` names it"),
        (status = 409, body = ErrorBody, description = "`conflict`: the email is registered"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many sign-ups from this address, or too many passwords being hashed; see `Retry-After`"),
))]
pub async fn create_user(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    AppJson(body): AppJson<RegisterRequest>,
) -> Result<Response> {
    state.limits.check_signup(addr)?;
    let (name, email) = validate_user(&body)?;
    if state
        .db_call(state.db.user_by_email(&email))
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(
            "an account with that email already exists".into(),
        ));
    }
    let hash = hash_password(&state.argon2, body.password).await?;
    let user = state
        .db_call(state.db.create_user(&name, &email, &hash, false))
        .await
        .map_err(|e| match e {
            ApiError::Conflict(_) => {
                ApiError::Conflict("an account with that email already exists".into())
            }
            other => other,
        })?;
    let location = format!("/users/{}", user.view.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(User::from(user)),
    )
        .into_response())
}

/// Exchanges email + password for a bearer token; 401 with the same body for an unknown
/// email or a wrong password.
#[utoipa::path(post, path = "/login", tag = "users",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    responses((status = 200, body = Token),
        (status = 400, body = ErrorBody, description = "`bad_request`: the body could not be read"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: wrong email or password"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: the body is over the limit"),
        (status = 422, body = ErrorBody, description = "`validation_failed`: an empty or unreadable body, or `username` or `password` missing"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many attempts from this address, the account is locked out after failed attempts, or too many passwords being checked; see `Retry-After`")))]
pub async fn create_login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Token>> {
    // The body's own rejection is plain text; every answer of this API is the JSON error.
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge
        } else {
            ApiError::BadRequest {
                code: api_types::ErrorCode::BadRequest,
                message: e.body_text(),
            }
        }
    })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let form: LoginRequest = if is_json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Validation(format!("invalid login body: {e}"), "body"))?
    } else {
        serde_urlencoded_form(&body)?
    };
    let email = shared::text::normalize_email(&form.username);
    state.limits.check_login(addr, &email)?;
    let user = state.db_call(state.db.user_by_email(&email)).await?;
    let ok = verify_password(
        &state.argon2,
        form.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            state.limits.login_failed(&email, addr);
            return Err(ApiError::Unauthorized("wrong email or password".into()));
        }
    };
    state.limits.login_succeeded(&email, addr);
    let token = state.jwt.issue(user.view.id)?;
    Ok(Json(Token {
        access_token: token,
        token_type: TokenType::Bearer,
        expires_in: state.jwt.ttl_secs,
    }))
}

/// Logs out: the caller's token is revoked until it would have expired (any copy of it is
/// refused from now on).
#[utoipa::path(post, path = "/logout", tag = "users", security(("bearer" = [])),
    responses((status = 204, description = "the token is revoked"), (status = 503, body = ErrorBody, description = "`unavailable`: the database did not answer in time")))]
pub async fn create_logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode> {
    // Every accepted token has a `jti` (see `Jwt::verify_claims`), so every one can be revoked.
    let expires_ms = i64::try_from(user.token_exp.saturating_mul(1000)).unwrap_or(i64::MAX);
    state
        .db_call(state.db.revoke_token(&user.token_id, expires_ms))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn serde_urlencoded_form(body: &[u8]) -> Result<LoginRequest> {
    let mut username = None;
    let mut password = None;
    for (k, v) in form_urlencoded_pairs(body) {
        match k.as_str() {
            "username" | "email" => username = Some(v),
            "password" => password = Some(v),
            _ => {}
        }
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok(LoginRequest {
            username: u,
            password: p,
        }),
        (None, _) => Err(ApiError::Validation(
            "username is required".into(),
            "username",
        )),
        (_, None) => Err(ApiError::Validation(
            "password is required".into(),
            "password",
        )),
    }
}

/// Decodes `a=b&c=d` with `+` and percent escapes.
fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) =
                    u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The caller.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])), responses((status = 200, body = User)))]
pub async fn get_me(State(state): State<AppState>, user: AuthUser) -> Result<Json<User>> {
    get_user(State(state), UserInReach(user.id)).await
}

/// The `{id}` of a user route, once the caller is known to be that user or an admin. Anyone
/// else's id is 404, the same as an unknown one (401 comes first, without a token).
pub struct UserInReach(i64);

impl FromRequestParts<AppState> for UserInReach {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let Path(id) = Path::<i64>::from_request_parts(parts, state).await?;
        if user.may_access(id) {
            Ok(UserInReach(id))
        } else {
            Err(ApiError::not_found("user"))
        }
    }
}

/// One user (self or admin).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = User),
        (status = 404, body = ErrorBody, description = "no such user, or not the caller (unless an admin)")))]
pub async fn get_user(
    State(state): State<AppState>,
    UserInReach(id): UserInReach,
) -> Result<Json<User>> {
    state
        .db_call(state.db.user_by_id(id))
        .await?
        .map(|u| Json(User::from(u)))
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Deletes a user and all their data (self or admin).
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = i64, Path, description = "user id")),
    responses((status = 204, description = "deleted, with their history and feedback"),
        (status = 404, body = ErrorBody, description = "no such user, or not the caller (unless an admin)")))]
pub async fn delete_user(
    State(state): State<AppState>,
    UserInReach(id): UserInReach,
) -> Result<StatusCode> {
    if state.db_call(state.db.delete_user(id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("user"))
    }
}

/// All users (admin only).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(Page),
    responses((status = 200, body = UserPage),
        (status = 403, body = ErrorBody, description = "`forbidden`: not an admin")))]
pub async fn list_users(
    State(state): State<AppState>,
    user: AuthUser,
    Query(p): Query<Page>,
) -> Result<Json<UserPage>> {
    if !user.is_admin {
        return Err(ApiError::Forbidden("only an admin can list users".into()));
    }
    let (page, per_page, limit, offset) = p.bounds()?;
    let (items, total) = state.db_call(state.db.list_users(limit, offset)).await?;
    let items = items.into_iter().map(User::from).collect();
    Ok(Json(UserPage::new(items, page, per_page, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "a@x-y.co"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.co",
            "a@b",
            "a b@c.de",
            "a@@b.co",
            "a@b..co",
            "a@-b.co",
            "a@b-.co",
            "a@b.-co",
            "\u{200b}a@b.co",
            "a\u{202e}@b.co",
            "a\0@b.co",
            "x'; DROP TABLE users;--@x.io",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn form_decoding_handles_escapes() {
        let pairs = form_urlencoded_pairs(b"username=a%40b.co&password=p+w%21");
        assert_eq!(
            pairs,
            vec![
                ("username".into(), "a@b.co".into()),
                ("password".into(), "p w!".into())
            ]
        );
    }
}

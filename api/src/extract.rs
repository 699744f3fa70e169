//! The request extractors handlers take: the authenticated caller ([`AuthUser`]) and the
//! client's address ([`ClientAddr`]). They read [`AppState`], so they live here and not in
//! `auth` or `limits`, which stay free of the state they are part of.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller (token verified and not revoked, account still existing).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    /// The token's id and expiry (Unix seconds), for log-out.
    pub token_id: String,
    pub token_exp: u64,
}

impl AuthUser {
    /// Self or admin may act on `user_id`.
    pub fn may_access(&self, user_id: i64) -> bool {
        self.is_admin || self.id == user_id
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized("log in first: send `Authorization: Bearer <token>`".into())
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthorized("expected a Bearer token".into()))?;
        let token = state.jwt.verify_claims(token.trim())?;
        if state.db_call(state.db.token_revoked(&token.jti)).await? {
            return Err(ApiError::Unauthorized(
                "this token was revoked (logged out); log in again".into(),
            ));
        }
        let user = state
            .db_call(state.db.user_by_id(token.user_id))
            .await?
            .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
        Ok(AuthUser {
            id: user.view.id,
            name: user.view.name,
            email: user.view.email,
            is_admin: user.view.is_admin,
            token_id: token.jti,
            token_exp: token.exp,
        })
    }
}

/// The client's address (see [`crate::limits::Limits::client_ip`]); `None` when the request came without a
/// connection (tests driving the router directly), which per-address limits then skip.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(state.limits.client_ip(&parts.headers, peer)))
    }
}

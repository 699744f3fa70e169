//! Passwords (argon2id, hashed off the async runtime) and HS256 JWT bearer tokens, plus the
//! `AuthUser` extractor every protected handler takes.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// Signing and verification keys plus token lifetime.
#[derive(Clone)]
pub struct Jwt {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    pub ttl_secs: u64,
}

/// Token claims: the user id as `sub`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
}

impl Jwt {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Jwt {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            ttl_secs,
        }
    }

    /// Issues a token for a user.
    pub fn issue(&self, user_id: i64) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm (HS256 only: `none` and others are refused) and expiry.
    pub fn verify(&self, token: &str) -> Result<i64, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the token has expired; log in again"
                }
                _ => "the token is invalid; log in again",
            };
            ApiError::Unauthorized(why.into())
        })?;
        data.claims
            .sub
            .parse()
            .map_err(|_| ApiError::Unauthorized("the token is invalid; log in again".into()))
    }
}

/// Hashes a password with argon2id on the blocking pool.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// Verifies a password on the blocking pool. With no stored hash (unknown email) a dummy
/// hash is checked instead, so both failures take the same time.
pub async fn verify_password(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let dummy = dummy_hash();
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy.to_owned());
        let parsed =
            PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"timing-equalizer", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// The authenticated caller (token verified, account still existing).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub is_admin: bool,
}

impl AuthUser {
    /// Self or admin may act on `user_id`.
    pub fn may_access(&self, user_id: i64) -> bool {
        self.is_admin || self.id == user_id
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
        let id = state.jwt.verify(token.trim())?;
        let user = state
            .db_call(state.db.user_by_id(id))
            .await?
            .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
        Ok(AuthUser {
            id: user.id,
            name: user.name,
            email: user.email,
            is_admin: user.is_admin,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let jwt = Jwt::new(&[7u8; 32], 60);
        let t = jwt.issue(42).unwrap();
        assert_eq!(jwt.verify(&t).unwrap(), 42);
        let other = Jwt::new(&[8u8; 32], 60);
        assert!(other.verify(&t).is_err(), "wrong key");
        let mut tampered = t.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(jwt.verify(&tampered).is_err());
        // alg: none with the same claims
        let parts: Vec<&str> = t.split('.').collect();
        let none = format!("{}.{}.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", parts[1]);
        assert!(jwt.verify(&none).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let jwt = Jwt::new(&[7u8; 32], 60);
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "1".into(),
            iat: now - 7200,
            exp: now - 3600,
        };
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        let err = jwt.verify(&t).unwrap_err();
        assert!(err.to_string().contains("expired"));
    }

    #[tokio::test]
    async fn passwords_verify_only_with_the_right_hash() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong".into(), Some(h)).await.unwrap());
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }
}

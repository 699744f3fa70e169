//! HS256 JWT bearer tokens: issued at log-in, verified on every request.

use std::sync::Arc;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Signing and verification keys plus token lifetime.
#[derive(Clone)]
pub struct Jwt {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    pub ttl_secs: u64,
}

/// Token claims: the user id as `sub`, a random token id as `jti` (what log-out revokes).
/// Every claim is required: a token without `jti` could never be revoked, one without `iat`
/// could not be checked for having been issued in the future.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
}

/// Seconds of clock difference forgiven on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 5;

/// A verified token: whose it is, its id and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub jti: String,
    pub exp: u64,
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
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm (HS256 only: `none` and others are refused), expiry, `nbf`
    /// when present, `iat` (not in the future) and a non-empty `jti`.
    pub fn verify(&self, token: &str) -> Result<i64, ApiError> {
        self.verify_claims(token).map(|v| v.user_id)
    }

    /// [`Jwt::verify`], keeping the token id and expiry.
    pub fn verify_claims(&self, token: &str) -> Result<Verified, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
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
        let invalid = || ApiError::Unauthorized("the token is invalid; log in again".into());
        let issued_in_future =
            data.claims.iat > jsonwebtoken::get_current_timestamp() + LEEWAY_SECS;
        if data.claims.jti.is_empty() || issued_in_future {
            return Err(invalid());
        }
        let user_id = data.claims.sub.parse().map_err(|_| invalid())?;
        Ok(Verified {
            user_id,
            jti: data.claims.jti,
            exp: data.claims.exp,
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
            jti: "t".into(),
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
}

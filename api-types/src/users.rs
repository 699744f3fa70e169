//! Accounts: registration, login and the user view.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as the API shows them (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    /// RFC 3339.
    pub created_at: String,
}

crate::page_type!(
    /// `GET /users` (admin): all users.
    UserPage,
    User
);

/// Shortest password (characters).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password (characters).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Shortest name (characters, once leading and trailing whitespace is trimmed).
pub const MIN_NAME_CHARS: usize = 2;
/// Longest name (characters, as sent).
pub const MAX_NAME_CHARS: usize = 50;
/// Longest email (bytes, as RFC 5321 allows).
pub const MAX_EMAIL_LEN: usize = 254;

/// `POST /users` body. The limits in the schema are the ones the API checks (422 with `field`
/// naming the first bad one).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// At most 50 characters, stored without leading and trailing whitespace, of which at
    /// least 2 characters remain (the pattern: two non-whitespace characters, whitespace being
    /// Unicode `White_Space` as Rust's `char::is_whitespace` defines it).
    #[schema(
        min_length = 2,
        max_length = 50,
        pattern = r"[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][\s\S]*[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub name: String,
    /// `name@example.com`: one `@`, a dotted domain, no whitespace, at most 254 characters.
    /// Stored in lower case; must be unused.
    #[schema(format = Email, min_length = 3, max_length = 254)]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(format = Password, min_length = 8, max_length = 256)]
    pub password: String,
}

/// `POST /login` body: the OAuth2 password form (`username`, `password`), or the same as JSON
/// (where `email` may stand for `username`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The email (OAuth2 calls it `username`).
    #[serde(alias = "email")]
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// Passwords are never printed, not even in debug logs.
macro_rules! redacted_debug {
    ($ty:ident, $($field:ident),*) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .field("password", &"[redacted]")
                    .finish()
            }
        }
    };
}
redacted_debug!(RegisterRequest, name, email);
redacted_debug!(LoginRequest, username);

/// The kind of token `POST /login` issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Send it as `Authorization: Bearer <access_token>`.
    Bearer,
}

/// `POST /login` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// An HS256 JWT.
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let r = RegisterRequest {
            name: "Ada".into(),
            email: "a@b.co".into(),
            password: "hunter22-secret".into(),
        };
        let shown = format!("{r:?}");
        assert!(
            shown.contains("Ada") && !shown.contains("hunter22"),
            "{shown}"
        );
        let l: LoginRequest =
            serde_json::from_str(r#"{"email":"a@b.co","password":"hunter22-secret"}"#).unwrap();
        assert_eq!(l.username, "a@b.co");
        assert!(!format!("{l:?}").contains("hunter22"));
    }

    #[test]
    fn token_type_is_lowercase_bearer() {
        let t = Token {
            access_token: "t".into(),
            token_type: TokenType::Bearer,
            expires_in: 60,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"access_token":"t","token_type":"bearer","expires_in":60}"#
        );
    }
}

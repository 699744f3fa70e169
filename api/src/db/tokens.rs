//! The `revoked_tokens` table: token ids logged out before they expire.

use super::Db;

/// Token revocation queries.
impl Db {
    /// Revokes a token id until `expires_ms` (idempotent), pruning ids that have expired.
    pub async fn revoke_token(&self, jti: &str, expires_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_ms < $1")
            .bind(shared::time_util::now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_ms) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a token id was revoked (by logging out).
    pub async fn token_revoked(&self, jti: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query("SELECT 1 AS one FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

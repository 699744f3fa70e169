//! The `users` table: accounts, their password hashes and the admin flag.

use sqlx::any::AnyRow;
use sqlx::Row;

use shared::time_util::rfc3339;

use super::Db;

/// A user row, password hash included; clients see [`api_types::User`].
#[derive(Debug, Clone)]
pub struct User {
    /// Everything about the user a client may see.
    pub view: api_types::User,
    pub password_hash: String,
}

impl From<User> for api_types::User {
    fn from(u: User) -> Self {
        u.view
    }
}

fn user_from(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        view: api_types::User {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            is_admin: row.try_get::<i64, _>("is_admin")? != 0,
            created_at: rfc3339(row.try_get("created_ms")?),
        },
        password_hash: row.try_get("password_hash")?,
    })
}

const USER_COLS: &str = "id, name, email, password_hash, is_admin, created_ms";

/// User queries.
impl Db {
    pub async fn create_user(
        &self,
        name: &str,
        email: &str,
        hash: &str,
        admin: bool,
    ) -> Result<User, sqlx::Error> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (name, email, password_hash, is_admin, created_ms) VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLS}"
        ))
        .bind(name)
        .bind(email)
        .bind(hash)
        .bind(i64::from(admin))
        .bind(shared::time_util::now_ms())
        .fetch_one(&self.pool)
        .await?;
        user_from(&row)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn list_users(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<User>, i64), sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(user_from).collect::<Result<_, _>>()?, total))
    }

    pub async fn set_admin(&self, id: i64, hash: Option<&str>) -> Result<(), sqlx::Error> {
        match hash {
            Some(h) => {
                sqlx::query("UPDATE users SET is_admin = 1, password_hash = $1 WHERE id = $2")
                    .bind(h)
                    .bind(id)
            }
            None => sqlx::query("UPDATE users SET is_admin = 1 WHERE id = $1").bind(id),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a user and everything of theirs in one transaction.
    pub async fn delete_user(&self, id: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM feedback WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM predictions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Thumbnails of contents no other job refers to go with their last job.
        sqlx::query("DELETE FROM thumbnails WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.sha256 = thumbnails.sha256)")
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n.rows_affected() > 0)
    }
}

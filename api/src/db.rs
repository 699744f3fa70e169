//! Persistence through sqlx's `Any` driver: SQLite by default (file created and migrated on
//! first start), PostgreSQL when `DATABASE_URL` is `postgres://`. Queries are written once in
//! the SQL both understand (`$n` parameters, integers for booleans, Unix-millisecond times);
//! only the migrations differ per backend.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use api_types::Feedback;
use shared::time_util::rfc3339;
use shared::{Job, JobResult, JobStatus};

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The pool plus its dialect.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects (creating a SQLite file and its folder if needed) and runs the migrations.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or_default();
            if !file.is_empty() && file != ":memory:" {
                if let Some(dir) = Path::new(file)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create the database folder {}", dir.display())
                    })?;
                }
            }
            let sep = if path.contains('?') { '&' } else { '?' };
            let opts = if path.contains("mode=") {
                String::new()
            } else {
                format!("{sep}mode=rwc")
            };
            (format!("sqlite://{path}{opts}"), Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (url.to_owned(), Backend::Postgres)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        let max = if backend == Backend::Sqlite { 4 } else { 10 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&url)))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .context("database migration failed")?;
        Ok(Db { pool, backend })
    }

    /// Cheap liveness probe for `/ready`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Hides a password in a connection URL for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

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
        let n = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n.rows_affected() > 0)
    }
}

/// A new history row, written when a job is accepted.
pub struct NewPrediction<'a> {
    pub job_id: &'a str,
    pub user_id: i64,
    pub image_file_name: &'a str,
    pub sha256: &'a str,
    pub model: &'a str,
    pub top_k: usize,
    pub created_ms: i64,
}

/// How a job ended, as the persistence consumer or a cache hit records it.
pub struct Finished<'a> {
    pub job_id: &'a str,
    pub status: JobStatus,
    pub result: Option<&'a JobResult>,
    pub error: Option<&'a str>,
    pub thumbnail: Option<&'a [u8]>,
    pub finished_ms: i64,
    pub cached: bool,
}

const PRED_COLS: &str =
    "job_id, user_id, image_file_name, model, status, cached, result, error, created_ms";

fn job_from(row: &AnyRow) -> Result<Job, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(Job {
        job_id: row.try_get("job_id")?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        model: row.try_get("model")?,
        image_file_name: row.try_get("image_file_name")?,
        created_at: rfc3339(row.try_get("created_ms")?),
        cached: row.try_get::<i64, _>("cached")? != 0,
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error: row.try_get("error")?,
    })
}

/// History queries.
impl Db {
    pub async fn insert_prediction(&self, p: &NewPrediction<'_>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO predictions (job_id, user_id, image_file_name, sha256, model, top_k, status, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7)",
        )
        .bind(p.job_id)
        .bind(p.user_id)
        .bind(p.image_file_name)
        .bind(p.sha256)
        .bind(p.model)
        .bind(p.top_k as i64)
        .bind(p.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a job's outcome; idempotent (a redelivered result rewrites the same values).
    /// Returns false when no such row exists (its owner was deleted meanwhile).
    pub async fn finish_prediction(&self, f: &Finished<'_>) -> Result<bool, sqlx::Error> {
        let result_json = f
            .result
            .map(|r| serde_json::to_string(r).unwrap_or_default());
        let top = f.result.and_then(|r| r.predictions.first());
        let n = sqlx::query(
            "UPDATE predictions SET status = $1, result = $2, error = $3, top_label = $4, top_score = $5, elapsed_ms = $6, thumbnail = COALESCE($7, thumbnail), finished_ms = $8, cached = $9 WHERE job_id = $10",
        )
        .bind(f.status.as_str())
        .bind(result_json)
        .bind(f.error)
        .bind(top.map(|p| p.label.clone()))
        .bind(top.map(|p| f64::from(p.score)))
        .bind(f.result.map(|r| r.elapsed_ms))
        .bind(f.thumbnail.map(<[u8]>::to_vec))
        .bind(f.finished_ms)
        .bind(i64::from(f.cached))
        .bind(f.job_id)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// One history row as clients see it.
    pub async fn prediction(&self, job_id: &str) -> Result<Option<Job>, sqlx::Error> {
        Ok(self.owned_prediction(job_id).await?.map(|(_, job)| job))
    }

    /// One history row as its owner's user id and the client view (the owner never goes on
    /// the wire, so it travels beside the [`Job`]).
    pub async fn owned_prediction(&self, job_id: &str) -> Result<Option<(i64, Job)>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {PRED_COLS} FROM predictions WHERE job_id = $1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("user_id")?, job_from(&r)?)))
            .transpose()
    }

    pub async fn thumbnail(
        &self,
        job_id: &str,
    ) -> Result<Option<(i64, Option<Vec<u8>>)>, sqlx::Error> {
        let row = sqlx::query("SELECT user_id, thumbnail FROM predictions WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("user_id")?, r.try_get("thumbnail")?)))
            .transpose()
    }
}

/// A per-user list: which table, which columns, newest first by what, and how a row reads.
pub struct UserListing<T> {
    table: &'static str,
    cols: &'static str,
    order: &'static str,
    from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
}

/// The caller's history (`GET /predictions`).
pub const HISTORY: UserListing<Job> = UserListing {
    table: "predictions",
    cols: PRED_COLS,
    order: "created_ms DESC, job_id DESC",
    from_row: job_from,
};

/// The caller's feedback (`GET /feedback`).
pub const FEEDBACK: UserListing<Feedback> = UserListing {
    table: "feedback",
    cols: FB_COLS,
    order: "created_ms DESC, id DESC",
    from_row: feedback_from,
};

impl Db {
    /// One page of a user's rows of `list` and how many the user has in all.
    pub async fn user_page<T>(
        &self,
        list: &UserListing<T>,
        user_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<T>, i64), sqlx::Error> {
        let UserListing {
            table,
            cols,
            order,
            from_row,
        } = list;
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM {table} WHERE user_id = $1 ORDER BY {order} LIMIT $2 OFFSET $3"
        ))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
    }
}

fn feedback_from(row: &AnyRow) -> Result<Feedback, sqlx::Error> {
    Ok(Feedback {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        image_file_name: row.try_get("image_file_name")?,
        predicted_class: row.try_get("predicted_class")?,
        score: row.try_get("score")?,
        feedback: row.try_get("feedback")?,
        correct_label: row.try_get("correct_label")?,
        is_correct: row.try_get::<Option<i64>, _>("is_correct")?.map(|v| v != 0),
        created_at: rfc3339(row.try_get("created_ms")?),
    })
}

/// Fields of a new feedback row.
pub struct NewFeedback<'a> {
    pub user_id: i64,
    pub job_id: Option<&'a str>,
    pub image_file_name: &'a str,
    pub predicted_class: &'a str,
    pub score: f64,
    pub feedback: &'a str,
    pub correct_label: Option<&'a str>,
    pub is_correct: Option<bool>,
}

const FB_COLS: &str = "id, job_id, image_file_name, predicted_class, score, feedback, correct_label, is_correct, created_ms";

/// Feedback queries.
impl Db {
    pub async fn insert_feedback(&self, f: &NewFeedback<'_>) -> Result<Feedback, sqlx::Error> {
        let row = sqlx::query(&format!(
            "INSERT INTO feedback (user_id, job_id, image_file_name, predicted_class, score, feedback, correct_label, is_correct, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {FB_COLS}"
        ))
        .bind(f.user_id)
        .bind(f.job_id)
        .bind(f.image_file_name)
        .bind(f.predicted_class)
        .bind(f.score)
        .bind(f.feedback)
        .bind(f.correct_label)
        .bind(f.is_correct.map(i64::from))
        .bind(shared::time_util::now_ms())
        .fetch_one(&self.pool)
        .await?;
        feedback_from(&row)
    }

    /// The job id and image of a prediction by its image name, for feedback sent by name.
    pub async fn prediction_by_image(
        &self,
        user_id: i64,
        image: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT job_id FROM predictions WHERE user_id = $1 AND image_file_name = $2 ORDER BY created_ms DESC LIMIT 1")
            .bind(user_id)
            .bind(image)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("job_id")).transpose()
    }
}

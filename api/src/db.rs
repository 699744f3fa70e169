//! Persistence through sqlx's `Any` driver: SQLite by default (file created and migrated on
//! first start), PostgreSQL when `DATABASE_URL` is `postgres://`. Queries are written once in
//! the SQL both understand (`$n` parameters, integers for booleans, Unix-millisecond times);
//! only the migrations differ per backend.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use api_types::{Feedback, JobFeedback};
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

/// A new history row, written when a job is accepted.
pub struct NewPrediction<'a> {
    pub job_id: &'a str,
    pub user_id: i64,
    pub image_file_name: &'a str,
    pub sha256: &'a str,
    pub model: &'a str,
    pub top_k: usize,
    pub created_ms: i64,
    /// The sanitised name the file had on the uploader's machine.
    pub original_name: Option<&'a str>,
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

/// A history row with its owner's feedback (`p` the prediction, `f` the feedback, if any).
const PRED_COLS: &str = "p.job_id, p.user_id, p.image_file_name, p.original_name, p.model, p.status, p.cached, p.result, p.error, p.created_ms, f.is_correct, f.correct_label, f.feedback, f.created_ms AS feedback_ms";
/// The tables [`PRED_COLS`] reads.
const PRED_FROM: &str =
    "predictions p LEFT JOIN feedback f ON f.job_id = p.job_id AND f.user_id = p.user_id";

/// What the history keeps of a job beyond its Redis record: the original name, whether the
/// result was the caller's own repeat, the caller's feedback.
#[derive(Debug, Clone, Default)]
pub struct JobExtras {
    pub original_file_name: Option<String>,
    pub cached: bool,
    pub feedback: Option<JobFeedback>,
}

fn job_feedback_from(row: &AnyRow) -> Result<Option<JobFeedback>, sqlx::Error> {
    let Some(ms) = row.try_get::<Option<i64>, _>("feedback_ms")? else {
        return Ok(None);
    };
    Ok(Some(JobFeedback {
        is_correct: row.try_get::<Option<i64>, _>("is_correct")?.map(|v| v != 0),
        correct_label: row.try_get("correct_label")?,
        feedback: row
            .try_get::<Option<String>, _>("feedback")?
            .unwrap_or_default(),
        updated_at: rfc3339(ms),
    }))
}

/// The lower-case top-k labels joined by `|`, as history search reads them.
fn search_labels(result: &JobResult) -> String {
    result
        .predictions
        .iter()
        .map(|p| p.label.to_lowercase().replace('|', " "))
        .collect::<Vec<_>>()
        .join("|")
}

fn job_from(row: &AnyRow) -> Result<Job, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(Job {
        job_id: row.try_get("job_id")?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        model: row.try_get("model")?,
        image_file_name: row.try_get("image_file_name")?,
        original_file_name: row.try_get("original_name")?,
        created_at: rfc3339(row.try_get("created_ms")?),
        cached: row.try_get::<i64, _>("cached")? != 0,
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error: row.try_get("error")?,
        feedback: job_feedback_from(row)?,
    })
}

/// History queries.
impl Db {
    pub async fn insert_prediction(&self, p: &NewPrediction<'_>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO predictions (job_id, user_id, image_file_name, sha256, model, top_k, status, created_ms, original_name) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8)",
        )
        .bind(p.job_id)
        .bind(p.user_id)
        .bind(p.image_file_name)
        .bind(p.sha256)
        .bind(p.model)
        .bind(p.top_k as i64)
        .bind(p.created_ms)
        .bind(p.original_name)
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
            "UPDATE predictions SET status = $1, result = $2, error = $3, top_label = $4, top_score = $5, elapsed_ms = $6, finished_ms = $7, cached = $8, labels = $9 WHERE job_id = $10",
        )
        .bind(f.status.as_str())
        .bind(result_json)
        .bind(f.error)
        .bind(top.map(|p| p.label.clone()))
        .bind(top.map(|p| f64::from(p.score)))
        .bind(f.result.map(|r| r.elapsed_ms))
        .bind(f.finished_ms)
        .bind(i64::from(f.cached))
        .bind(f.result.map(search_labels))
        .bind(f.job_id)
        .execute(&self.pool)
        .await?;
        if let Some(jpeg) = f.thumbnail.filter(|_| n.rows_affected() > 0) {
            self.keep_thumbnail(f.job_id, jpeg, f.finished_ms).await?;
        }
        Ok(n.rows_affected() > 0)
    }

    /// Stores the thumbnail of a job's content unless that content has one already: one per
    /// SHA-256, however many jobs (and users) sent the same bytes.
    async fn keep_thumbnail(
        &self,
        job_id: &str,
        jpeg: &[u8],
        at_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO thumbnails (sha256, jpeg, created_ms) SELECT sha256, $1, $2 FROM predictions WHERE job_id = $3 ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(jpeg.to_vec())
        .bind(at_ms)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One history row as clients see it.
    pub async fn prediction(&self, job_id: &str) -> Result<Option<Job>, sqlx::Error> {
        Ok(self.owned_prediction(job_id).await?.map(|(_, job)| job))
    }

    /// One history row as its owner's user id and the client view (the owner never goes on
    /// the wire, so it travels beside the [`Job`]).
    pub async fn owned_prediction(&self, job_id: &str) -> Result<Option<(i64, Job)>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {PRED_COLS} FROM {PRED_FROM} WHERE p.job_id = $1"
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
        // Only a done job shows it: the content's thumbnail may come from someone else's job,
        // and a queued one must not tell that another account sent the same bytes.
        let row = sqlx::query("SELECT p.user_id, t.jpeg AS thumbnail FROM predictions p LEFT JOIN thumbnails t ON t.sha256 = p.sha256 AND p.status = 'done' WHERE p.job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("user_id")?, r.try_get("thumbnail")?)))
            .transpose()
    }
}

/// What `GET /predictions` may narrow the history to; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Substring of any of the top-k labels, case-insensitive.
    pub label: Option<String>,
    pub model: Option<String>,
    /// Unix ms, inclusive.
    pub from_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub until_ms: Option<i64>,
    pub feedback: Option<FeedbackFilter>,
}

/// Jobs by the feedback their owner gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackFilter {
    /// Any feedback given.
    Given,
    /// None given.
    None,
    /// Marked wrong.
    Wrong,
    /// Marked right.
    Right,
}

/// A bound value of a query built at run time.
enum Arg {
    Int(i64),
    Text(String),
}

/// `sql` with `args` bound in order.
fn bind_args<'q>(
    sql: &'q str,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

impl Db {
    /// Extras of a job the live Redis record does not carry (see [`JobExtras`]).
    pub async fn job_extras(&self, job_id: &str) -> Result<Option<JobExtras>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {PRED_COLS} FROM {PRED_FROM} WHERE p.job_id = $1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(JobExtras {
                original_file_name: r.try_get("original_name")?,
                cached: r.try_get::<i64, _>("cached")? != 0,
                feedback: job_feedback_from(&r)?,
            })
        })
        .transpose()
    }

    /// Whether `user_id` already has a job on these bytes with this model (then a cache hit may
    /// say "reused": it discloses nothing they do not know).
    pub async fn has_own_upload(
        &self,
        user_id: i64,
        sha256: &str,
        model: &str,
    ) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM predictions WHERE user_id = $1 AND sha256 = $2 AND model = $3 LIMIT 1",
        )
        .bind(user_id)
        .bind(sha256)
        .bind(model)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// One page of a user's history narrowed by `filter`, newest first, and how many match.
    pub async fn history_page(
        &self,
        user_id: i64,
        filter: &HistoryFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Job>, i64), sqlx::Error> {
        let mut args = vec![Arg::Int(user_id)];
        let mut cond = String::from("p.user_id = $1");
        let mut push = |args: &mut Vec<Arg>, sql: &str, arg: Arg| {
            args.push(arg);
            cond.push_str(&sql.replace('?', &format!("${}", args.len())));
        };
        if let Some(label) = filter.label.as_deref() {
            // LIKE with the pattern characters escaped: the text is matched literally.
            let escaped = label
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            push(
                &mut args,
                " AND p.labels LIKE ? ESCAPE '\\'",
                Arg::Text(format!("%{escaped}%")),
            );
        }
        if let Some(m) = filter.model.as_deref() {
            push(&mut args, " AND p.model = ?", Arg::Text(m.to_owned()));
        }
        if let Some(ms) = filter.from_ms {
            push(&mut args, " AND p.created_ms >= ?", Arg::Int(ms));
        }
        if let Some(ms) = filter.until_ms {
            push(&mut args, " AND p.created_ms < ?", Arg::Int(ms));
        }
        match filter.feedback {
            Some(FeedbackFilter::Given) => cond.push_str(" AND f.id IS NOT NULL"),
            Some(FeedbackFilter::None) => cond.push_str(" AND f.id IS NULL"),
            Some(FeedbackFilter::Wrong) => cond.push_str(" AND f.is_correct = 0"),
            Some(FeedbackFilter::Right) => cond.push_str(" AND f.is_correct = 1"),
            None => {}
        }
        let n = args.len();
        let sql = format!(
            "SELECT {PRED_COLS} FROM {PRED_FROM} WHERE {cond} ORDER BY p.created_ms DESC, p.job_id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = bind_args(&sql, &args)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let count = format!("SELECT COUNT(*) AS n FROM {PRED_FROM} WHERE {cond}");
        let total: i64 = bind_args(&count, &args)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((rows.iter().map(job_from).collect::<Result<_, _>>()?, total))
    }
}

/// A per-user list: which table, which columns, newest first by what, and how a row reads.
pub struct UserListing<T> {
    table: &'static str,
    cols: &'static str,
    order: &'static str,
    from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
}

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
    /// Records feedback: a new row, or, when the user already gave feedback on this job, that
    /// row rewritten (one per job per user). The flag says whether the row is new.
    pub async fn upsert_feedback(
        &self,
        f: &NewFeedback<'_>,
    ) -> Result<(Feedback, bool), sqlx::Error> {
        let existed = match f.job_id {
            Some(job) => sqlx::query("SELECT id FROM feedback WHERE user_id = $1 AND job_id = $2")
                .bind(f.user_id)
                .bind(job)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
            None => false,
        };
        let row = sqlx::query(&format!(
            "INSERT INTO feedback (user_id, job_id, image_file_name, predicted_class, score, feedback, correct_label, is_correct, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (user_id, job_id) DO UPDATE SET image_file_name = excluded.image_file_name, predicted_class = excluded.predicted_class, score = excluded.score, feedback = excluded.feedback, correct_label = excluded.correct_label, is_correct = excluded.is_correct, created_ms = excluded.created_ms \
             RETURNING {FB_COLS}"
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
        Ok((feedback_from(&row)?, !existed))
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

//! The `predictions` table: one history row per job, written when it is accepted and
//! completed when it finishes.

use sqlx::any::AnyRow;
use sqlx::Row;

use api_types::JobFeedback;
use shared::time_util::rfc3339;
use shared::{Job, JobResult, JobStatus};

use super::Db;

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
pub(super) const PRED_COLS: &str = "p.job_id, p.user_id, p.image_file_name, p.original_name, p.model, p.status, p.cached, p.result, p.error, p.created_ms, f.is_correct, f.correct_label, f.feedback, f.created_ms AS feedback_ms";
/// The tables [`PRED_COLS`] reads.
pub(super) const PRED_FROM: &str =
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

pub(super) fn job_from(row: &AnyRow) -> Result<Job, sqlx::Error> {
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

    /// Records a job's outcome, and counts it in the collections holding it (one transaction);
    /// idempotent (a redelivered result rewrites the same values and counts nothing again).
    /// Returns false when no such row exists (its owner was deleted meanwhile).
    pub async fn finish_prediction(&self, f: &Finished<'_>) -> Result<bool, sqlx::Error> {
        let result_json = f
            .result
            .map(|r| serde_json::to_string(r).unwrap_or_default());
        let top = f.result.and_then(|r| r.predictions.first());
        let mut tx = self.pool.begin().await?;
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
        .execute(&mut *tx)
        .await?;
        let found = n.rows_affected() > 0;
        if found {
            let done = f.status == JobStatus::Done;
            let top = top.map(|p| (p.label.as_str(), f64::from(p.score)));
            super::collections::count_outcome(&mut tx, f.job_id, done, top, f.finished_ms).await?;
        }
        tx.commit().await?;
        if let Some(jpeg) = f.thumbnail.filter(|_| found) {
            self.keep_thumbnail(f.job_id, jpeg, f.finished_ms).await?;
        }
        Ok(found)
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

/// History reads the live job path needs.
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
}

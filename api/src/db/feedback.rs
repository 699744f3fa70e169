//! The `feedback` table: what a user said about a prediction, one row per job per user.

use sqlx::any::AnyRow;
use sqlx::Row;

use api_types::Feedback;
use shared::time_util::rfc3339;

use super::listings::UserListing;
use super::Db;

/// The caller's feedback (`GET /feedback`).
pub const FEEDBACK: UserListing<Feedback> = UserListing {
    table: "feedback",
    cols: FB_COLS,
    order: "created_ms DESC, id DESC",
    from_row: feedback_from,
};

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

//! Feedback on a classification: was it right, and if not, what is in the picture.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use api_types::{ErrorBody, Feedback, FeedbackPage, FeedbackRequest};

use crate::db::{self, NewFeedback};
use crate::error::{ApiError, AppJson, AppQuery as Query, Result};
use crate::extract::AuthUser;
use crate::jobs;
use crate::routes::Page;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/feedback", post(create_feedback).get(list_feedback))
}

const MAX_TEXT: usize = 2000;

fn check_len(value: &str, max: usize, field: &'static str) -> Result<()> {
    if value.chars().count() > max {
        return Err(ApiError::Validation(
            format!("{field} must be at most {max} characters"),
            field,
        ));
    }
    Ok(())
}

/// Records feedback on one of the caller's classifications: 201 when new; 200 when the caller
/// had already given feedback on that job, which is then replaced (one per job per user).
#[utoipa::path(post, path = "/feedback", tag = "feedback", security(("bearer" = [])), request_body = FeedbackRequest,
    responses((status = 201, body = Feedback, description = "the first feedback on this job"),
        (status = 200, body = Feedback, description = "the caller's earlier feedback on this job, replaced"),
        (status = 404, body = ErrorBody, description = "no such job (or image) of the caller's")))]
pub async fn create_feedback(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(b): AppJson<FeedbackRequest>,
) -> Result<(StatusCode, Json<Feedback>)> {
    check_len(&b.predicted_class, 200, "predicted_class")?;
    check_len(&b.feedback, MAX_TEXT, "feedback")?;
    if let Some(l) = &b.correct_label {
        check_len(l, 200, "correct_label")?;
    }
    if !(0.0..=1.0).contains(&b.score) {
        return Err(ApiError::Validation(
            "score must be between 0 and 1".into(),
            "score",
        ));
    }
    let (job_id, image) = match (&b.job_id, &b.image_file_name) {
        (Some(id), _) => {
            let job = jobs::read(&state, &user, id).await?;
            (Some(job.job_id), job.image_file_name)
        }
        (None, Some(name)) => {
            check_len(name, 200, "image_file_name")?;
            let id = state
                .db_call(state.db.prediction_by_image(user.id, name))
                .await?
                .ok_or_else(|| ApiError::not_found("prediction for that image"))?;
            (Some(id), name.clone())
        }
        (None, None) => {
            return Err(ApiError::Validation(
                "job_id or image_file_name is required".into(),
                "job_id",
            ))
        }
    };
    let (fb, new) = state
        .db_call(state.db.upsert_feedback(&NewFeedback {
            user_id: user.id,
            job_id: job_id.as_deref(),
            image_file_name: &image,
            predicted_class: &b.predicted_class,
            score: b.score,
            feedback: &b.feedback,
            correct_label: b.correct_label.as_deref().filter(|l| !l.trim().is_empty()),
            is_correct: b.is_correct,
        }))
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(fb)))
}

/// The caller's feedback, newest first.
#[utoipa::path(get, path = "/feedback", tag = "feedback", security(("bearer" = [])), params(Page),
    responses((status = 200, body = FeedbackPage)))]
pub async fn list_feedback(
    State(state): State<AppState>,
    user: AuthUser,
    Query(p): Query<Page>,
) -> Result<Json<FeedbackPage>> {
    Ok(Json(
        p.fetch(&state, user.id, &db::FEEDBACK, FeedbackPage::new)
            .await?,
    ))
}

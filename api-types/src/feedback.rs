//! Feedback on a classification: was it right, and if not, what is in the picture.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /feedback` body: the job (or image name) it is about, what was predicted, what the
/// user says. One of `job_id` and `image_file_name` is required.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedbackRequest {
    pub job_id: Option<String>,
    #[schema(max_length = 200)]
    pub image_file_name: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    pub predicted_class: String,
    /// 0..=1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub score: f64,
    /// Free text, at most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub feedback: String,
    /// What is really in the picture; at most 200 characters.
    #[schema(max_length = 200)]
    pub correct_label: Option<String>,
    pub is_correct: Option<bool>,
}

/// Stored feedback (`201` of `POST /feedback`, items of `GET /feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Feedback {
    pub id: i64,
    /// `null` when the job's history row is gone.
    pub job_id: Option<String>,
    pub image_file_name: String,
    pub predicted_class: String,
    pub score: f64,
    pub feedback: String,
    pub correct_label: Option<String>,
    pub is_correct: Option<bool>,
    /// RFC 3339.
    pub created_at: String,
}

crate::page_type!(
    /// `GET /feedback`: the caller's feedback, newest first.
    FeedbackPage,
    Feedback
);

//! Classification jobs: the job view (`/predictions`), its results, and the synchronous
//! `/predict` answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorDetail;

/// Largest `top_k` a client may ask for.
pub const MAX_TOP_K: usize = 20;
/// `top_k` when a request names none.
pub const DEFAULT_TOP_K: usize = 5;

/// The multipart form of `POST /predictions` and `POST /predict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadForm {
    /// The image (JPEG, PNG, WebP, GIF, BMP), at most `MAX_UPLOAD_BYTES`; the type is read from
    /// its bytes, not from the part's content type or file name. `image` is accepted as an
    /// alias of the field name.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// A model that `/info` lists; the default model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1)]
    pub model: Option<String>,
    /// How many classes to return, 1 to 20 (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 20)]
    pub top_k: Option<u32>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Processing,
    Done,
    Failed,
}

impl JobStatus {
    /// The name stored in Redis and shown to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses the stored name; unknown text is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "processing" => JobStatus::Processing,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }

    /// Done and failed jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// One scored class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Prediction {
    /// Human-readable class name.
    pub label: String,
    /// Index of the class in the model's label list.
    pub class_id: usize,
    /// Probability, 0..=1.
    pub score: f32,
}

/// What a worker writes back for a finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobResult {
    /// Best first, `top_k` long.
    pub predictions: Vec<Prediction>,
    pub model: String,
    /// Worker time for decode, preprocessing and inference, in milliseconds.
    pub elapsed_ms: f64,
}

/// A job as clients see it (`GET /predictions/{job_id}`, history items, a cached
/// `POST /predictions`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub model: String,
    /// `<sha256>.<ext>` of the uploaded bytes.
    pub image_file_name: String,
    /// RFC 3339 time the job was accepted.
    pub created_at: String,
    /// The name the file had on the uploader's machine (the multipart part's `filename`),
    /// sanitised: no folders, no control or direction-changing characters, at most 120
    /// characters. Absent when the upload named none.
    pub original_file_name: Option<String>,
    /// True when the result was reused from the caller's own identical earlier upload. Results
    /// are reused within one account only: another account's identical upload is classified
    /// anew, so no answer tells one user what another uploaded.
    pub cached: bool,
    /// Present once the job is done.
    pub result: Option<JobResult>,
    /// Why the job failed; present only when it did.
    pub error: Option<String>,
    /// The caller's feedback on this job, once given (one per job per user).
    pub feedback: Option<JobFeedback>,
}

/// The feedback a user gave on one of their jobs, as the job view carries it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobFeedback {
    /// Whether the best guess was right; `null` when the user did not say.
    pub is_correct: Option<bool>,
    /// What is really in the picture, when the user said.
    pub correct_label: Option<String>,
    /// Free text (may be empty).
    #[serde(default)]
    pub feedback: String,
    /// RFC 3339 time the feedback was last given or changed.
    pub updated_at: String,
}

impl Job {
    /// The ranked predictions, best first (empty until the job is done).
    pub fn predictions(&self) -> &[Prediction] {
        self.result
            .as_ref()
            .map(|r| r.predictions.as_slice())
            .unwrap_or_default()
    }
}

/// `202 Accepted` answer of `POST /predictions` (with a `Location` header to poll).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobAccepted {
    pub job_id: String,
    /// Always `queued`.
    pub status: JobStatus,
    /// Where to read the job: `/predictions/{job_id}`.
    pub status_url: String,
}

/// What `POST /predictions` answers, for clients: `202` [`JobAccepted`] or, when the same
/// image was already classified by the same model, `200` with the finished [`Job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
// Held only while one answer is read; boxing would change the public pattern for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Submitted {
    /// Queued; poll `status_url`.
    Accepted(JobAccepted),
    /// Answered from the result cache, already done.
    Cached(Job),
}

impl Submitted {
    /// The new job's id, either way.
    pub fn job_id(&self) -> &str {
        match self {
            Submitted::Accepted(a) => &a.job_id,
            Submitted::Cached(j) => &j.job_id,
        }
    }
}

crate::page_type!(
    /// `GET /predictions`: the caller's jobs, newest first.
    JobPage,
    Job
);

/// `200` answer of `POST /predict` (the seeds' synchronous form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictResponse {
    /// Always `true` here; errors say `false` ([`PredictError`]).
    pub success: bool,
    /// Label of the best class (`null` only if the model returned nothing).
    pub prediction: Option<String>,
    /// Score of the best class.
    pub score: Option<f32>,
    pub image_file_name: String,
    /// `predictions` (best first), `model` and `elapsed_ms`, as in a job's result.
    #[serde(flatten)]
    pub result: JobResult,
    pub job_id: String,
    pub cached: bool,
}

/// Error answer of `POST /predict`: the usual error object plus `"success": false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PredictError {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorDetail,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn job_view_omits_absent_options() {
        let job = Job {
            job_id: "j".into(),
            status: JobStatus::Queued,
            model: "m".into(),
            image_file_name: "a.jpeg".into(),
            created_at: "1970-01-01T00:00:00Z".into(),
            original_file_name: None,
            cached: false,
            result: None,
            error: None,
            feedback: None,
        };
        let wire = serde_json::to_value(&job).unwrap();
        let keys: Vec<&str> = wire
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "cached",
                "created_at",
                "image_file_name",
                "job_id",
                "model",
                "status"
            ]
        );
        assert_eq!(wire["status"], "queued");
        let back: Job = serde_json::from_value(wire).unwrap();
        assert_eq!(back, job, "the view round-trips");
    }

    #[test]
    fn a_submission_is_told_apart_by_its_shape() {
        let queued: Submitted = serde_json::from_str(
            r#"{"job_id":"j","status":"queued","status_url":"/predictions/j"}"#,
        )
        .unwrap();
        assert!(matches!(queued, Submitted::Accepted(_)));
        let cached: Submitted = serde_json::from_str(
            r#"{"job_id":"k","status":"done","model":"m","image_file_name":"a.png",
                "created_at":"2025-01-01T00:00:00Z","cached":true,
                "result":{"predictions":[],"model":"m","elapsed_ms":1.0}}"#,
        )
        .unwrap();
        assert!(matches!(&cached, Submitted::Cached(j) if j.cached));
        assert_eq!((queued.job_id(), cached.job_id()), ("j", "k"));
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            JobStatus::Queued,
            JobStatus::Processing,
            JobStatus::Done,
            JobStatus::Failed,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(JobStatus::parse("weird"), None);
    }
}

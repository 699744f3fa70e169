//! The typed records of the queue protocol, each with exactly one way to be written and read:
//! - [`QueuedJob`]: the payload of a queue stream entry (JSON);
//! - [`JobRecord`]: the job hash; [`JobRecord::fields`] is the only code that turns a record
//!   into hash fields and [`JobRecord::from_fields`] the only code that reads them back;
//! - [`CachedResult`]: the cache hash of a finished result;
//! - [`FinishedJob`]: the results stream entry the API persists (JSON);
//! - [`DeadLetter`]: a dead-lettered job (JSON in the dead-letter hash).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::keys::field;
use crate::time_util::rfc3339;
use crate::{Job, JobResult, JobStatus};

/// The message a worker receives from the queue stream (field [`super::keys::stream::JOB`], JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job_id: String,
    /// The owning user's id: their cached results are theirs alone ([`super::keys::cache`]).
    /// An entry queued before owners were carried reads as 0, no user's id, so its result is
    /// cached for nobody.
    #[serde(default)]
    pub owner: i64,
    pub model: String,
    /// SHA-256 of the image bytes; the bytes live under [`super::keys::image`].
    pub sha256: String,
    pub top_k: usize,
    pub enqueued_ms: i64,
    /// What the stored bytes are: an encoded image (the default) or an already preprocessed
    /// tensor (the V2 protocol's FP32 input), which skips decode and resize.
    #[serde(default, skip_serializing_if = "JobInput::is_image")]
    pub input: JobInput,
    /// Whether the worker also writes every class's probability ([`super::keys::field::SCORES`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scores: bool,
}

/// The kind of bytes a job classifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobInput {
    /// An encoded image (JPEG, PNG, WebP, GIF, BMP), checked by the API before it is queued.
    #[default]
    Image,
    /// `[1, 3, S, S]` f32 little-endian, normalised as the model's registry entry says, `S` its
    /// `input_size`: fed to the model as it is.
    Tensor,
}

impl JobInput {
    pub fn is_image(&self) -> bool {
        *self == JobInput::Image
    }
}

impl QueuedJob {
    /// The stream entry's field/value pairs.
    pub(crate) fn entry(&self) -> Vec<(&'static str, Vec<u8>)> {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        vec![(super::keys::stream::JOB, json)]
    }
}

/// The job hash (`ic:job:{id}`). Every field is optional so one type serves as the whole
/// record (written at enqueue and on a cache hit, read by the API) and as the change a
/// transition applies (start, finish, requeue): only the fields that are set are written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRecord {
    pub status: Option<JobStatus>,
    pub model: Option<String>,
    /// The owning user's id.
    pub owner: Option<i64>,
    /// `<sha256>.<ext>`, the name clients see.
    pub image_file_name: Option<String>,
    pub sha256: Option<String>,
    pub top_k: Option<usize>,
    pub created_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// Deliveries so far (the start script increments it; written directly only to reset it).
    pub attempts: Option<u32>,
    /// The worker that last started or finished the job.
    pub worker: Option<String>,
    pub result: Option<JobResult>,
    /// Why the job failed; an empty text means "no error" (a revived job clears it).
    pub error: Option<String>,
    /// True when the result was reused from an identical earlier upload.
    pub cached: Option<bool>,
    /// The thumbnail of a done job (JPEG bytes).
    pub thumb: Option<Vec<u8>>,
    /// Every class's probability (f32 little-endian), for jobs that asked for them.
    pub scores: Option<Vec<u8>>,
    pub content_type: Option<String>,
    /// The last retriable error, kept for the dead-letter reason.
    pub last_error: Option<String>,
}

impl JobRecord {
    /// A fresh job waiting in its queue.
    pub fn queued(job: &QueuedJob, image_file_name: &str, content_type: &str) -> Self {
        JobRecord {
            status: Some(JobStatus::Queued),
            model: Some(job.model.clone()),
            owner: Some(job.owner),
            image_file_name: Some(image_file_name.to_owned()),
            sha256: Some(job.sha256.clone()),
            top_k: Some(job.top_k),
            created_ms: Some(job.enqueued_ms),
            attempts: Some(0),
            content_type: Some(content_type.to_owned()),
            ..JobRecord::default()
        }
    }

    /// A job answered at once from the cache (`result` is the cached one): done when it is
    /// created. It holds no copy of the thumbnail, which stays in the cache entry and the
    /// history (one per content), so repeating an upload costs Redis a small record only.
    pub fn from_cache(
        job: &QueuedJob,
        image_file_name: &str,
        content_type: &str,
        result: JobResult,
    ) -> Self {
        JobRecord {
            status: Some(JobStatus::Done),
            finished_ms: Some(job.enqueued_ms),
            cached: Some(true),
            result: Some(result),
            thumb: None,
            attempts: None,
            ..JobRecord::queued(job, image_file_name, content_type)
        }
    }

    /// The change `start` applies (the attempt count is incremented by the script itself).
    pub fn started(worker: &str, at_ms: i64) -> Self {
        JobRecord {
            status: Some(JobStatus::Processing),
            started_ms: Some(at_ms),
            worker: Some(worker.to_owned()),
            ..JobRecord::default()
        }
    }

    /// The change `requeue` applies: back to queued, remembering why.
    pub fn requeued(reason: &str) -> Self {
        JobRecord {
            status: Some(JobStatus::Queued),
            last_error: Some(reason.to_owned()),
            ..JobRecord::default()
        }
    }

    /// The change an operator's dead-letter requeue applies: queued with fresh attempts.
    pub fn revived() -> Self {
        JobRecord {
            status: Some(JobStatus::Queued),
            attempts: Some(0),
            error: Some(String::new()),
            ..JobRecord::default()
        }
    }

    /// The hash fields of every value that is set, in one encoding: numbers as decimal
    /// text, `cached` as `1`/`0`, the result as JSON, the thumbnail as raw bytes.
    pub fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        fn text(s: &str) -> Vec<u8> {
            s.as_bytes().to_vec()
        }
        fn num(n: impl ToString) -> Vec<u8> {
            n.to_string().into_bytes()
        }
        let mut out = Vec::new();
        let mut put = |name: &'static str, value: Option<Vec<u8>>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        put(field::STATUS, self.status.map(|s| text(s.as_str())));
        put(field::MODEL, self.model.as_deref().map(text));
        put(field::OWNER, self.owner.map(num));
        put(field::IMAGE, self.image_file_name.as_deref().map(text));
        put(field::SHA256, self.sha256.as_deref().map(text));
        put(field::TOP_K, self.top_k.map(num));
        put(field::CREATED, self.created_ms.map(num));
        put(field::STARTED, self.started_ms.map(num));
        put(field::FINISHED, self.finished_ms.map(num));
        put(field::ATTEMPTS, self.attempts.map(num));
        put(field::WORKER, self.worker.as_deref().map(text));
        put(
            field::RESULT,
            self.result
                .as_ref()
                .map(|r| serde_json::to_vec(r).unwrap_or_default()),
        );
        put(field::ERROR, self.error.as_deref().map(text));
        put(
            field::CACHED,
            self.cached.map(|c| text(if c { "1" } else { "0" })),
        );
        put(field::THUMB, self.thumb.clone());
        put(field::SCORES, self.scores.clone());
        put(field::CONTENT_TYPE, self.content_type.as_deref().map(text));
        put(field::LAST_ERROR, self.last_error.as_deref().map(text));
        out
    }

    /// Reads the hash back; fields that are missing or unreadable stay `None`.
    pub fn from_fields(h: &HashMap<String, Vec<u8>>) -> Self {
        let text = |k: &str| {
            h.get(k)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        let num = |k: &str| text(k).and_then(|t| t.parse::<i64>().ok());
        JobRecord {
            status: text(field::STATUS).and_then(|s| JobStatus::parse(&s)),
            model: text(field::MODEL),
            owner: num(field::OWNER),
            image_file_name: text(field::IMAGE),
            sha256: text(field::SHA256),
            top_k: text(field::TOP_K).and_then(|t| t.parse().ok()),
            created_ms: num(field::CREATED),
            started_ms: num(field::STARTED),
            finished_ms: num(field::FINISHED),
            attempts: text(field::ATTEMPTS).and_then(|t| t.parse().ok()),
            worker: text(field::WORKER),
            result: h
                .get(field::RESULT)
                .and_then(|r| serde_json::from_slice(r).ok()),
            error: text(field::ERROR),
            cached: text(field::CACHED).map(|c| c == "1"),
            thumb: h.get(field::THUMB).cloned(),
            scores: h.get(field::SCORES).cloned(),
            content_type: text(field::CONTENT_TYPE),
            last_error: text(field::LAST_ERROR),
        }
    }

    /// The client view (without the owner and attempts, which stay internal); `None` when the record has no status or model (expired or malformed).
    pub fn to_job(&self, job_id: &str) -> Option<Job> {
        Some(Job {
            job_id: job_id.to_owned(),
            status: self.status?,
            model: self.model.clone()?,
            image_file_name: self.image_file_name.clone().unwrap_or_default(),
            created_at: rfc3339(self.created_ms.unwrap_or(0)),
            // The history (the API's database) keeps the original name and the feedback, and
            // decides whether "cached" may be told to this caller.
            original_file_name: None,
            cached: self.cached.unwrap_or(false),
            result: self.result.clone(),
            error: self.error.clone().filter(|e| !e.is_empty()),
            feedback: None,
        })
    }
}

/// A finished result kept for identical uploads (`ic:cache:{model}:{sha256}:{top_k}`).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResult {
    pub result: JobResult,
    /// JPEG thumbnail bytes (may be empty).
    pub thumb: Vec<u8>,
    /// Every class's probability (f32 little-endian); empty unless the job asked for them.
    pub scores: Vec<u8>,
}

impl CachedResult {
    /// The cache hash's fields (the same names and encoding as in the job hash).
    pub(crate) fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        JobRecord {
            result: Some(self.result.clone()),
            thumb: Some(self.thumb.clone()),
            scores: Some(self.scores.clone()).filter(|s| !s.is_empty()),
            ..JobRecord::default()
        }
        .fields()
    }

    /// Reads the cache hash; `None` when there is no readable result.
    pub(crate) fn from_fields(h: &HashMap<String, Vec<u8>>) -> Option<Self> {
        let r = JobRecord::from_fields(h);
        Some(CachedResult {
            result: r.result?,
            thumb: r.thumb.unwrap_or_default(),
            scores: r.scores.unwrap_or_default(),
        })
    }
}

/// A finished job on the results stream (field [`super::keys::stream::FINISHED`], JSON):
/// what the API needs to record it in the history.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedJob {
    pub job_id: String,
    pub status: JobStatus,
    pub result: Option<JobResult>,
    pub error: Option<String>,
    /// The worker that finished it.
    pub worker: String,
    pub finished_ms: i64,
    /// JPEG thumbnail bytes, base64 in the JSON (empty for failed jobs).
    #[serde(default, with = "base64_bytes")]
    pub thumb: Vec<u8>,
}

impl FinishedJob {
    /// The stream entry's field/value pairs.
    pub(crate) fn entry(&self) -> Vec<(&'static str, Vec<u8>)> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        vec![(super::keys::stream::FINISHED, json)]
    }
}

/// A job that used up its attempts (JSON in the [`super::keys::DEAD`] hash under its id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The last retriable error.
    pub reason: String,
    /// Attempts made before giving up.
    pub attempts: u32,
    pub model: String,
    /// When it was dead-lettered (Unix ms).
    pub at_ms: i64,
    /// The job as queued, so it can be requeued as it was.
    pub job: QueuedJob,
}

/// Serde for bytes as a base64 string (thumbnails inside JSON records).
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Prediction;

    fn result() -> JobResult {
        JobResult {
            predictions: vec![Prediction {
                label: "academic gown".into(),
                class_id: 400,
                score: 0.25,
            }],
            model: "m".into(),
            elapsed_ms: 12.5,
        }
    }

    fn hash(r: &JobRecord) -> HashMap<String, Vec<u8>> {
        r.fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let q = QueuedJob {
            job_id: "j1".into(),
            owner: 7,
            model: "m".into(),
            sha256: "abc".into(),
            top_k: 3,
            enqueued_ms: 0,
            input: Default::default(),
            scores: false,
        };
        let rec = JobRecord {
            worker: Some("w".into()),
            last_error: Some("slow".into()),
            ..JobRecord::from_cache(&q, "abc.jpeg", "image/jpeg", result())
        };
        assert_eq!(rec.thumb, None, "a cache hit copies no thumbnail");
        assert_eq!(JobRecord::from_fields(&hash(&rec)), rec);
        let job = rec.to_job("j1").unwrap();
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.result, Some(result()));
        assert!(job.cached);
        assert_eq!(job.created_at, "1970-01-01T00:00:00Z");
        let wire = serde_json::to_value(&job).unwrap();
        assert!(wire.get("owner").is_none(), "owner must not leak: {wire}");
        assert!(wire.get("error").is_none());
    }

    #[test]
    fn the_job_view_needs_a_status_and_a_model() {
        assert!(JobRecord::default().to_job("j").is_none());
        let h: HashMap<String, Vec<u8>> = [("status", "weird"), ("model", "m")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
            .collect();
        assert!(JobRecord::from_fields(&h).to_job("j").is_none());
        // A revived job's empty error is no error.
        let revived = JobRecord {
            model: Some("m".into()),
            ..JobRecord::revived()
        };
        assert_eq!(revived.to_job("j").unwrap().error, None);
    }

    #[test]
    fn a_finished_job_carries_its_thumbnail_as_base64() {
        let f = FinishedJob {
            job_id: "j".into(),
            status: JobStatus::Done,
            result: Some(result()),
            error: None,
            worker: "w".into(),
            finished_ms: 5,
            thumb: vec![0, 1, 254, 255],
        };
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["thumb"], "AAH+/w==");
        assert!(json.get("error").is_none());
        assert_eq!(serde_json::from_value::<FinishedJob>(json).unwrap(), f);
    }
}

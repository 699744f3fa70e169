//! Collections: a named set of a user's images classified together (`/collections`), with
//! counts kept as results arrive, per-item states and an export.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod export;

use crate::error::ErrorDetail;
use crate::jobs::Prediction;

/// Longest collection name, in characters.
pub const MAX_COLLECTION_NAME_CHARS: usize = 100;

/// `POST /collections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateCollection {
    /// Unique among the caller's collections; 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// A model `/info` lists; the default model when absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub model: Option<String>,
    /// Classes kept per image, 1 to 20 (default 5, also when null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<u32>,
    /// A top-1 score below this counts the image as uncertain (0 to 1, default 0.5, also when
    /// null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_confidence: Option<f32>,
}

/// How many items of a collection are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CollectionCounts {
    /// Every item, duplicates included.
    pub items: u64,
    /// Waiting for a worker or being classified.
    pub queued: u64,
    pub done: u64,
    pub failed: u64,
    /// Items whose bytes equal an earlier item's: classified once, through that item.
    pub duplicate: u64,
    /// Done items whose top-1 score is below the collection's `min_confidence`.
    pub uncertain: u64,
}

/// One class of the top-1 histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelCount {
    pub label: String,
    pub count: u64,
}

/// A collection (`GET /collections/{id}`; in listings without the histogram).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub id: i64,
    pub name: String,
    pub model: String,
    pub top_k: u32,
    pub min_confidence: f32,
    /// RFC 3339.
    pub created_at: String,
    /// When its first image was accepted and when the last result arrived (RFC 3339).
    pub first_activity_at: Option<String>,
    pub last_activity_at: Option<String>,
    pub counts: CollectionCounts,
    /// Results per second since the first image was accepted (absent before any result).
    pub images_per_second: Option<f64>,
    /// Seconds until the queued items are done at that rate (absent when nothing is queued
    /// or no rate is known yet).
    pub eta_seconds: Option<f64>,
    /// Top-1 classes of the done items, most frequent first (only in `GET /collections/{id}`).
    pub histogram: Option<Vec<LabelCount>>,
}

crate::page_type!(
    /// `GET /collections`: the caller's collections, newest first.
    CollectionPage,
    Collection
);

/// What happened to one part of `POST /collections/{id}/images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartOutcome {
    /// A new item, queued for classification (or done at once from the caller's cache).
    Queued,
    /// A new item whose bytes equal an earlier item's: it shares that item's result.
    Duplicate,
    /// The collection already holds this path with these bytes: nothing was done (a resumed
    /// upload).
    Present,
    /// Not added; `error` says why.
    Refused,
}

/// One part's outcome.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartResult {
    /// The part's file name: the image's path relative to the folder it came from.
    pub path: String,
    pub outcome: PartOutcome,
    /// The job that classifies the item (for a duplicate, the earlier item's).
    pub job_id: Option<String>,
    /// For a duplicate: the path of the earlier item with the same bytes.
    pub duplicate_of: Option<String>,
    /// For a refusal: the error an upload of this part would get.
    pub error: Option<ErrorDetail>,
}

/// The answer of `POST /collections/{id}/images`: every part in order.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImagesAdded {
    pub parts: Vec<PartResult>,
    pub queued: u64,
    pub duplicate: u64,
    pub present: u64,
    pub refused: u64,
    /// When a part was refused by a limit that passes (a full queue, a quota, a rate): the
    /// seconds after which sending those parts again may succeed.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    Queued,
    Processing,
    Done,
    Failed,
    Duplicate,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Queued => "queued",
            ItemState::Processing => "processing",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
            ItemState::Duplicate => "duplicate",
        }
    }
}

/// One item of a collection (`GET /collections/{id}/items`, and a row of the export).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CollectionItem {
    pub path: String,
    /// The last component of `path`.
    pub original_file_name: String,
    pub sha256: String,
    pub state: ItemState,
    pub job_id: String,
    /// Why its job failed.
    pub error: Option<String>,
    pub top_label: Option<String>,
    pub top_score: Option<f32>,
    /// The kept classes, best first (once done).
    pub predictions: Option<Vec<Prediction>>,
    /// Done with a top-1 score below the collection's `min_confidence`.
    pub uncertain: bool,
    pub model: String,
    /// The first 12 hex digits of the model file's SHA-256 (`unknown` when the registry has none).
    pub model_version: String,
    /// RFC 3339, once finished.
    pub finished_at: Option<String>,
    /// The owner's feedback on the item's job: "right", "wrong: <label>", or absent.
    pub feedback: Option<String>,
}

crate::page_type!(
    /// `GET /collections/{id}/items`: path order.
    CollectionItemPage,
    CollectionItem
);

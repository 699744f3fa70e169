//! What a deployment serves: `/info` and a model's label list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One model in `/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    pub name: String,
    /// What a person reads: "EfficientNet-Lite0".
    pub display_name: String,
    /// ImageNet top-1 accuracy in percent, as published for the weights (`null` when unknown).
    pub top1_accuracy_pct: Option<f32>,
    /// "fast", "medium" or "slow": how long one image takes on a CPU worker, roughly.
    pub speed: String,
    /// Whether uploads may name it now: a live worker serves it. A model no worker serves is
    /// listed (with `available: false`) but an upload naming it is refused.
    pub available: bool,
    pub description: String,
    /// Side of the square input, in pixels.
    pub input_size: u32,
    /// The model used when a request names none.
    pub default: bool,
    /// Live workers that have it loaded.
    pub workers: u64,
    /// Jobs waiting for this model.
    pub queue_depth: u64,
}

/// `GET /info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Info {
    pub version: String,
    pub default_model: String,
    /// Jobs waiting, all models together.
    pub queue_depth: u64,
    /// Workers whose heartbeat is fresh.
    pub workers_live: u64,
    pub models: Vec<ModelInfo>,
    /// The caller's own jobs that are waiting or running; present only when the request
    /// carries a valid token (never other people's jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub your_jobs_waiting: Option<u64>,
}

/// `GET /models/{name}/labels`: class names, index = class id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelLabels {
    pub model: String,
    pub labels: Vec<String>,
}

//! What a deployment serves: `/info` and a model's label list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One model in `/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    pub name: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Info {
    pub version: String,
    pub default_model: String,
    /// Jobs waiting, all models together.
    pub queue_depth: u64,
    /// Workers whose heartbeat is fresh.
    pub workers_live: u64,
    pub models: Vec<ModelInfo>,
}

/// `GET /models/{name}/labels`: class names, index = class id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelLabels {
    pub model: String,
    pub labels: Vec<String>,
}

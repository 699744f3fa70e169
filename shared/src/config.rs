//! Settings both api and worker read, as a clap block flattened into each binary's config:
//! every field is a flag and an environment variable of the same name.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::registry::{default_registry_path, Registry, RegistryError};

/// Redis, model registry and lifetimes.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// Redis holding queues, images and results.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Folder holding the model files named in the registry.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// The model registry (default: `models/registry.toml` of the checkout).
    #[arg(long, env = "MODEL_REGISTRY")]
    pub model_registry: Option<PathBuf>,
    /// Seconds a finished result (and its job record) stays in Redis.
    #[arg(long, env = "RESULT_TTL", default_value_t = 3600)]
    pub result_ttl: u64,
    /// Seconds uploaded image bytes stay in Redis.
    #[arg(long, env = "IMAGE_TTL", default_value_t = 3600)]
    pub image_ttl: u64,
    /// Largest accepted image in pixels (width x height), checked before decoding.
    #[arg(long, env = "MAX_PIXELS", default_value_t = 40_000_000)]
    pub max_pixels: u64,
    /// Smallest accepted image side in pixels.
    #[arg(long, env = "MIN_IMAGE_SIDE", default_value_t = 16)]
    pub min_image_side: u32,
    /// Deadline for each Redis command, in milliseconds.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 2000)]
    pub redis_timeout_ms: u64,
}

impl CommonConfig {
    /// Path of the registry file in use.
    pub fn registry_path(&self) -> PathBuf {
        self.model_registry
            .clone()
            .unwrap_or_else(default_registry_path)
    }

    /// Loads the registry.
    pub fn registry(&self) -> Result<Registry, RegistryError> {
        Registry::load(&self.registry_path())
    }

    /// Folder of the registry file (fallback for label files).
    pub fn registry_dir(&self) -> PathBuf {
        self.registry_path()
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Per-command Redis deadline.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }
}

//! Start-up: the ONNX Runtime library and every configured model, loaded once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::config::WorkerConfig;
use crate::model::{self, Model};
use crate::Models;

/// Loads the runtime and every configured model (blocking work, done once).
pub fn load_models(cfg: &WorkerConfig) -> anyhow::Result<(Vec<String>, Models)> {
    let registry = cfg.common.registry()?;
    let names = model_names(cfg, &registry)?;
    info!("{}", cfg.serving_summary(&names));
    // Check every file first so a missing one is reported before the slow loads.
    for name in &names {
        registry.model_path(name, cfg.common.models_dir())?;
    }
    let env = model::init_runtime(cfg.ort_dylib_path.as_deref())?;
    let layout = cfg.layout();
    let mut models = HashMap::new();
    for name in &names {
        let started = Instant::now();
        let m = Model::load(
            &env,
            &registry,
            &cfg.common.registry_dir(),
            name,
            cfg.common.models_dir(),
            layout,
        )?;
        info!(model = %name, sessions = layout.narrow, wide_threads = layout.wide_threads,
            cpus = layout.permits, spin = layout.spin, ms = started.elapsed().as_millis() as u64, "model loaded");
        models.insert(name.clone(), Arc::new(m));
    }
    Ok((names, models))
}

/// The models to serve: those `MODELS` lists, else every registry model whose file is present.
fn model_names(cfg: &WorkerConfig, registry: &shared::Registry) -> anyhow::Result<Vec<String>> {
    let listed = cfg.listed_models();
    if !listed.is_empty() {
        return Ok(listed);
    }
    let present = registry.present(cfg.common.models_dir());
    anyhow::ensure!(
        !present.is_empty(),
        "no model file found in {}: run `make model` or set MODELS_DIR (and MODELS) to models you have",
        cfg.common.models_dir().display()
    );
    Ok(present)
}

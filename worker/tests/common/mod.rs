//! What the worker's real-model tests share: the checkout, and the worker's models loaded
//! from the registry and `../shared/models` as `worker` would load them.

#![allow(dead_code)]

use std::path::PathBuf;

use worker::cli::Cli;
use worker::Models;

/// The checkout's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/testdata/grace_hopper.jpg`.
pub fn grace_hopper() -> Vec<u8> {
    std::fs::read(repo().join("../shared/testdata/grace_hopper.jpg")).expect("photo")
}

/// The worker's configuration serving `model` from `../shared/models`, plus `extra` flags.
pub fn config(model: &str, extra: &[&str]) -> worker::config::WorkerConfig {
    let models_dir = repo().join("../shared/models");
    let registry = repo().join("models/registry.toml");
    let mut args = vec![
        "worker",
        "--models",
        model,
        "--models-dir",
        models_dir.to_str().expect("utf-8 path"),
        "--model-registry",
        registry.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    <Cli as clap::Parser>::parse_from(args).config
}

/// `model` loaded with `extra` flags (blocking: loads ONNX Runtime sessions).
pub fn load(model: &str, extra: &[&str]) -> Models {
    let (_, models) = worker::load_models(&config(model, extra)).expect("model loads");
    models
}

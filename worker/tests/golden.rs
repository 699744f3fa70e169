//! The real model on the real photo: EfficientNet-Lite0 through ONNX Runtime must rank
//! grace_hopper.jpg like the Pillow/PyTorch reference (MODELS.md).

use std::path::PathBuf;

use fast_image_resize::Resizer;
use worker::config::Cli;
use worker::model::{Classifier as _, Upload};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn grace_hopper_top3_matches_reference() {
    let models_dir = repo().join("../shared/models");
    let cli = <Cli as clap::Parser>::parse_from([
        "worker",
        "--models",
        "efficientnet-lite0",
        "--models-dir",
        models_dir.to_str().expect("utf-8 path"),
        "--model-registry",
        repo()
            .join("models/registry.toml")
            .to_str()
            .expect("utf-8 path"),
    ]);
    let (_, models) = worker::load_models(&cli.config).expect("model loads");
    let model = &models["efficientnet-lite0"];
    let bytes = std::fs::read(repo().join("../shared/testdata/grace_hopper.jpg")).expect("photo");
    let out = model
        .classify(
            Upload {
                bytes: &bytes,
                top_k: 5,
                limits: Default::default(),
            },
            &mut Resizer::new(),
        )
        .expect("classifies");
    let top: Vec<(&str, f32)> = out
        .result
        .predictions
        .iter()
        .map(|p| (p.label.as_str(), p.score))
        .collect();
    println!("{top:?}");
    let expected = [
        ("academic gown", 0.255),
        ("mortarboard", 0.206),
        ("military uniform", 0.125),
    ];
    for (i, (label, score)) in expected.iter().enumerate() {
        assert_eq!(top[i].0, *label, "rank {i}: {top:?}");
        assert!((top[i].1 - score).abs() < 0.05, "rank {i} score: {top:?}");
    }
    assert_eq!(out.result.predictions[0].class_id, 400);
    assert!(!out.thumbnail.is_empty());
}

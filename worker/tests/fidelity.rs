//! Preprocessing fidelity: every test photo through the worker's real classify path (the
//! reduced-scale JPEG decode where it applies, SIMD resize, the tensor) and EfficientNet-Lite0
//! in ONNX Runtime must give the same top-1 as the Pillow/torchvision reference pipeline and
//! every reference top-5 score within 0.03. The reference is checked in
//! (tests/fixtures/photos/reference.json, written by scripts/fidelity-reference.py).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use fast_image_resize::Resizer;
use shared::upload::DecodeLimits;
use worker::model::{Classifier as _, Upload};

#[derive(serde::Deserialize)]
struct Ref {
    class_id: usize,
    score: f32,
}

fn photo_path(key: &str) -> PathBuf {
    if key.starts_with("shared/") {
        common::repo().join("..").join(key)
    } else {
        common::repo().join("tests/fixtures/photos").join(key)
    }
}

#[test]
fn every_photo_matches_the_pillow_reference() {
    let reference: BTreeMap<String, Vec<Ref>> = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("tests/fixtures/photos/reference.json"))
            .expect("reference.json"),
    )
    .expect("reference parses");
    assert!(reference.len() >= 4, "grace_hopper.jpg and the fixtures");
    let models = common::load("efficientnet-lite0", &[]);
    let model = &models["efficientnet-lite0"];
    let mut resizer = Resizer::new();
    let mut scaled = 0;
    for (key, want) in &reference {
        let bytes = std::fs::read(photo_path(key)).expect("photo");
        let info = shared::upload::inspect(&bytes, DecodeLimits::default()).expect("inspects");
        if info.format == image::ImageFormat::Jpeg
            && preprocess::jpeg_scale(info.width, info.height, model.spec.resize).is_some()
        {
            scaled += 1;
        }
        let out = model
            .classify(
                Upload::image(&bytes, 1000, DecodeLimits::default()),
                &mut resizer,
            )
            .expect("classifies");
        let preds = &out.result.predictions;
        let worst = want
            .iter()
            .filter_map(|r| {
                preds
                    .iter()
                    .find(|p| p.class_id == r.class_id)
                    .map(|p| (p.score - r.score).abs())
            })
            .fold(0f32, f32::max);
        println!(
            "{key}: top-1 {} ({:.4}), largest score difference {worst:.4}",
            preds[0].class_id, preds[0].score
        );
        assert_eq!(preds[0].class_id, want[0].class_id, "{key}: top-1");
        for r in want {
            let got = preds
                .iter()
                .find(|p| p.class_id == r.class_id)
                .expect("every class scored");
            assert!(
                (got.score - r.score).abs() <= 0.03,
                "{key}: class {} scores {} (reference {})",
                r.class_id,
                got.score,
                r.score
            );
        }
    }
    assert!(scaled >= 2, "the reduced-scale JPEG path is exercised");
}

#[test]
fn reduced_scale_decode_keeps_orientation_and_geometry() {
    let limits = DecodeLimits::default();
    for (name, denom, upright) in [
        ("grace_hopper_2100.jpg", 4, true),
        ("grace_hopper_1100_exif6.jpg", 2, true),
    ] {
        let bytes =
            std::fs::read(common::repo().join("tests/fixtures/photos").join(name)).expect("photo");
        let full = preprocess::decode(&bytes, limits).expect("full decode");
        let small = preprocess::decode_for(&bytes, limits, 256).expect("scaled decode");
        let (fw, fh) = full.dimensions();
        let (sw, sh) = small.dimensions();
        assert_eq!((sw, sh), (fw.div_ceil(denom), fh.div_ceil(denom)), "{name}");
        assert_eq!(fw < fh, upright, "{name}: portrait after EXIF orientation");
        assert!(sw.min(sh) >= 512, "{name}: still twice the resize target");
    }
    // Under four times the target: decoded at full size.
    let bytes = common::grace_hopper();
    let img = preprocess::decode_for(&bytes, limits, 256).expect("decodes");
    assert_eq!(img.dimensions(), (512, 600));
}

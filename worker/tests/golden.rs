//! The real model on the real photo: EfficientNet-Lite0 through ONNX Runtime must rank
//! grace_hopper.jpg like the Pillow/PyTorch reference (MODELS.md).

mod common;

use fast_image_resize::Resizer;
use worker::model::{Classifier as _, Upload};

#[test]
fn grace_hopper_top3_matches_reference() {
    let models = common::load("efficientnet-lite0", &[]);
    let model = &models["efficientnet-lite0"];
    let bytes = common::grace_hopper();
    let out = model
        .classify(
            Upload::image(&bytes, 5, Default::default()),
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

/// The parallel pool (one-thread sessions run at once) answers what the all-cores session
/// answers, to 1e-4, on the real model and real photos.
#[test]
fn parallel_pool_results_equal_single_session_results() {
    use worker::executor::Choice;

    let models = common::load("efficientnet-lite0", &["--cpus", "2"]);
    let model = models["efficientnet-lite0"].clone();
    assert_eq!(
        model.session_counts().healthy,
        3,
        "two one-thread sessions and a wide one"
    );
    let mut tensors = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("../shared/testdata")).expect("testdata") {
        let path = entry.expect("entry").path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Ok(img) = preprocess::decode(&bytes, Default::default()) {
            // The photo and three variants of it, so four different inputs run at once.
            let variants = [
                img.clone(),
                image::imageops::flip_horizontal(&img),
                image::imageops::rotate90(&img),
                image::imageops::flip_vertical(&img),
            ];
            for v in &variants {
                tensors.push(preprocess::to_tensor(v, &model.spec, &mut Resizer::new()));
            }
        }
    }
    assert!(!tensors.is_empty(), "no decodable photo in testdata");
    let single: Vec<Vec<f32>> = tensors
        .iter()
        .map(|t| model.infer_on(Choice::Wide, t).expect("runs"))
        .collect();
    // Every photo on the narrow sessions, two at a time.
    let parallel: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = tensors
            .iter()
            .map(|t| {
                let model = &model;
                s.spawn(move || model.infer_on(Choice::Narrow, t).expect("runs"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("joins"))
            .collect()
    });
    for (i, (a, b)) in single.iter().zip(&parallel).enumerate() {
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "photo {i}: outputs differ by {worst}");
    }
}

/// The V2 protocol's FP32 input: the photo preprocessed by the caller scores exactly as the
/// photo itself, with every class's probability when asked; a tensor of the wrong size or with
/// a NaN fails as the tensor's fault.
#[test]
fn a_preprocessed_tensor_scores_like_its_photo() {
    use shared::queue::JobInput;
    use worker::model::ClassifyError;
    let models = common::load("efficientnet-lite0", &[]);
    let model = &models["efficientnet-lite0"];
    let bytes = common::grace_hopper();
    let mut resizer = Resizer::new();
    let photo = Upload {
        scores: true,
        ..Upload::image(&bytes, 5, Default::default())
    };
    let by_photo = model.classify(photo, &mut resizer).expect("classifies");
    let img =
        preprocess::decode_for(&bytes, Default::default(), model.spec.resize).expect("decodes");
    let tensor: Vec<u8> = preprocess::to_tensor(&img, &model.spec, &mut resizer)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let as_tensor = |bytes| Upload {
        input: JobInput::Tensor,
        scores: true,
        ..Upload::image(bytes, 5, Default::default())
    };
    let by_tensor = model
        .classify(as_tensor(&tensor), &mut resizer)
        .expect("classifies");
    assert_eq!(by_photo.scores.len(), 1000 * 4);
    assert_eq!(by_photo.scores, by_tensor.scores);
    assert_eq!(by_photo.result.predictions, by_tensor.result.predictions);
    assert!(!by_photo.thumbnail.is_empty() && by_tensor.thumbnail.is_empty());
    let without = model
        .classify(Upload::image(&bytes, 5, Default::default()), &mut resizer)
        .expect("classifies");
    assert!(without.scores.is_empty(), "scores only when asked");

    let short = model.classify(as_tensor(&tensor[4..]), &mut resizer);
    assert!(
        matches!(short, Err(ClassifyError::Tensor(_))),
        "{:?}",
        short.err()
    );
    let mut nan = tensor.clone();
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = model.classify(as_tensor(&nan), &mut resizer);
    assert!(
        matches!(nan, Err(ClassifyError::Tensor(_))),
        "{:?}",
        nan.err()
    );
}

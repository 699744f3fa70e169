//! What the worker's fake-classifier tests share (no ONNX): the model they serve and the
//! answer a fake gives for a good image.

use shared::{JobResult, Prediction};
use worker::model::Classified;

/// The one model the fakes serve.
pub const MODEL: &str = "m";

/// `top_k` cats, with a two-byte thumbnail.
pub fn cat(top_k: usize) -> Classified {
    Classified {
        result: JobResult {
            predictions: vec![
                Prediction {
                    label: "cat".into(),
                    class_id: 281,
                    score: 0.9,
                };
                top_k
            ],
            model: MODEL.into(),
            elapsed_ms: 1.0,
        },
        thumbnail: vec![0xff, 0xd8],
        scores: Vec::new(),
    }
}

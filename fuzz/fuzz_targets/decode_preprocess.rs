//! The worker's path from upload bytes to model input (the `preprocess` crate): inspect + decode
//! with the worker's default decode limits, then resize/crop/normalize into the registry's
//! tensor and make the history thumbnail; the worker's reduced-scale JPEG path (`decode_for`,
//! libjpeg-turbo) too. Any bytes give an image error or a tensor of the model's exact shape
//! with finite values, never a panic; libFuzzer's `-rss_limit_mb` and `-malloc_limit_mb` catch a
//! decode that outgrows its budget.
#![no_main]

use std::sync::OnceLock;

use fast_image_resize::Resizer;
use libfuzzer_sys::fuzz_target;
use shared::ModelSpec;
use preprocess::{decode, decode_for, thumbnail, to_tensor};
use shared::upload::DecodeLimits;

/// The EfficientNet-Lite0 entry of the repository's registry (224x224, its own mean/std).
fn spec() -> &'static ModelSpec {
    static SPEC: OnceLock<ModelSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let registry = shared::Registry::parse(include_str!("../../models/registry.toml"))
            .expect("models/registry.toml parses");
        registry.models["efficientnet-lite0"].clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    // The worker's path (a large JPEG through libjpeg-turbo at reduced scale): within limits.
    if let Ok(small) = decode_for(data, limits, spec().resize) {
        let (w, h) = small.dimensions();
        assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
    }
    let Ok(img) = decode(data, limits) else {
        return;
    };
    let (w, h) = img.dimensions();
    assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
    let spec = spec();
    let mut resizer = Resizer::new();
    let tensor = to_tensor(&img, spec, &mut resizer);
    let side = spec.input_size as usize;
    assert_eq!(tensor.len(), 3 * side * side);
    assert!(tensor.iter().all(|v| v.is_finite()));
    let thumb = thumbnail(&img, 160, &mut resizer);
    assert!(thumb.starts_with(&[0xFF, 0xD8]), "the thumbnail is a JPEG");
});

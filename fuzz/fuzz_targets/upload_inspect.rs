//! The API's upload inspection (`shared::upload::inspect`, run on every upload before it is
//! queued): any bytes give an answer, never a panic, an abort or a runaway allocation, and an
//! accepted upload's header is within the limits it was checked against.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::upload::{inspect, DecodeLimits, ACCEPTED};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    if let Ok(info) = inspect(data, limits) {
        assert!(ACCEPTED.contains(&info.format));
        assert!(u64::from(info.width) * u64::from(info.height) <= limits.max_pixels);
        assert!(info.width >= limits.min_side && info.height >= limits.min_side);
        assert!(!info.ext().is_empty() && info.content_type().starts_with("image/"));
    }
});

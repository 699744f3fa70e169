//! Issue 24, finding 1: progressive-scan JPEG bombs are refused from their markers, before any
//! decoder runs, by the `inspect` both the API (at upload) and the worker (before decoding) call.

#![allow(clippy::unwrap_used)]

use shared::upload::{inspect, DecodeLimits, ImageError, DEFAULT_MAX_JPEG_SCANS};
use test_support::hostile::scan_bomb;

#[test]
fn scan_bombs_are_refused_for_their_scan_count() {
    let limits = DecodeLimits::default();
    for (components, scans) in [(3, 2647), (1, 883)] {
        let bomb = scan_bomb(6000, 6600, components, None);
        assert_eq!(
            inspect(&bomb, limits),
            Err(ImageError::TooManyScans(scans, DEFAULT_MAX_JPEG_SCANS)),
            "{components} component(s), {} KB",
            bomb.len() / 1024
        );
    }
}

#[test]
fn the_limits_are_the_configured_ones() {
    // At the scan limit the scan count passes; a lower limit refuses it.
    let at_limit = scan_bomb(1000, 800, 3, Some(100));
    assert!(inspect(&at_limit, DecodeLimits::default()).is_ok());
    let strict = DecodeLimits {
        max_jpeg_scans: 99,
        ..DecodeLimits::default()
    };
    assert_eq!(
        inspect(&at_limit, strict),
        Err(ImageError::TooManyScans(100, 99))
    );
    // Coefficient buffers of a progressive frame count against twice the decoded budget:
    // 1000x800x3 at 1x1 sampling is 12,500 blocks x 3 x 128 B = 4.8 MB of coefficients.
    let small_budget = DecodeLimits {
        max_decoded_bytes: 2_000_000,
        ..DecodeLimits::default()
    };
    assert_eq!(
        inspect(&at_limit, small_budget),
        Err(ImageError::TooMuchMemory(2_400_000, 2_000_000))
    );
}

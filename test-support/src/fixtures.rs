//! Images for tests: the Grace Hopper photo from `../shared/testdata`, copies with unique
//! bytes (so the result cache sees a new upload), and generated PNGs.

use std::io::Cursor;
use std::path::PathBuf;

/// Path of the test photo (`../shared/testdata/grace_hopper.jpg`).
pub fn grace_hopper_path() -> PathBuf {
    crate::shared_dir().join("testdata/grace_hopper.jpg")
}

/// The test photo's bytes (a 517x606 JPEG; top-1 "academic gown" on every model).
#[track_caller]
pub fn grace_hopper() -> Vec<u8> {
    let p = grace_hopper_path();
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The JPEG with `tag` in a comment segment: decoders ignore it, but the SHA-256 (and so the
/// result cache) sees a new upload. (A trailer after the end marker no longer works: the API
/// keeps only the image's own bytes.)
pub fn with_trailer(bytes: &[u8], tag: &str) -> Vec<u8> {
    shared::upload::with_jpeg_comment(bytes, tag.as_bytes())
}

/// The test photo with a trailer naming `tag` and a random id: never seen before.
#[track_caller]
pub fn unique_photo(tag: &str) -> Vec<u8> {
    with_trailer(
        &grace_hopper(),
        &format!("\n{tag}-{}", uuid::Uuid::new_v4()),
    )
}

/// A black `w` x `h` PNG.
#[track_caller]
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image::RgbImage::new(w, h))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("cannot encode a PNG: {e}"));
    out.into_inner()
}

/// A valid PNG whose header declares `w` x `h` pixels (the IHDR CRC fixed up): tests limits
/// enforced before decoding.
#[track_caller]
pub fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut b = png(16, 16);
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The top-1 label of a job view (empty when it has no result).
pub fn top1(job: &api_types::Job) -> &str {
    job.predictions().first().map_or("", |p| p.label.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_size_is_read_back_by_a_decoder() {
        let b = png_declaring(50_000, 40_000);
        let r = image::ImageReader::new(Cursor::new(&b))
            .with_guessed_format()
            .expect("reader");
        assert_eq!(r.into_dimensions().expect("header"), (50_000, 40_000));
    }
}

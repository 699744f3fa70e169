//! The hostile corpus: files that lie about their type or size, decompression bombs, truncated
//! and padded files and unusual pixel formats, for every accepted format, each with the answer
//! the service must give. Generated here (deterministically) so the large ones need not be
//! checked in: `cargo xtask hostile-corpus` writes them all to `tests/fixtures/hostile/`, where
//! the small ones are committed (a test checks they still match this generator).

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage};

mod progressive;
pub use progressive::scan_bomb;

/// Files up to this size are committed; larger ones are generated (`large/`, git-ignored).
pub const COMMITTED_MAX: usize = 64 * 1024;

/// What the service must do with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Refused at upload with this status and error code.
    Refused(u16, &'static str),
    /// Accepted, and the job ends (done, or failed with a reason) in bounded time.
    Processed,
}

/// One file of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// File name, with the extension its bytes claim (not always what they are).
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub expect: Expect,
    /// Why the file is hostile.
    pub why: &'static str,
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("encoding an in-memory image");
    out.into_inner()
}

/// A colourful RGB image (so encoders cannot shrink it to nothing).
fn picture(w: u32, h: u32) -> RgbImage {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
    })
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(picture(w, h)), ImageFormat::Jpeg)
}

/// A PNG's IHDR rewritten to `w` x `h` (CRC kept valid).
fn png_with_size(mut b: Vec<u8>, w: u32, h: u32) -> Vec<u8> {
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A JPEG's frame header (SOF0) rewritten to `w` x `h`.
fn jpeg_with_size(mut b: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    let sof = b
        .windows(2)
        .position(|p| p == [0xFF, 0xC0])
        .expect("a baseline JPEG has SOF0");
    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    b
}

/// A real PNG bomb: `w` x `h` of zeros in `color`, compressed to almost nothing.
fn png_bomb(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let channels = match color {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        _ => 1,
    };
    let bytes_per_sample = if depth == png::BitDepth::Sixteen {
        2
    } else {
        1
    };
    let row = vec![0u8; w as usize * channels * bytes_per_sample];
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        let mut writer = enc.write_header().expect("png header");
        let mut stream = writer.stream_writer().expect("png stream");
        for _ in 0..h {
            std::io::Write::write_all(&mut stream, &row).expect("png row");
        }
        stream.finish().expect("png end");
    }
    out
}

/// A GIF's logical screen rewritten to `w` x `h`.
fn gif_with_screen(mut b: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    b[6..8].copy_from_slice(&w.to_le_bytes());
    b[8..10].copy_from_slice(&h.to_le_bytes());
    b
}

/// A lossless WebP whose header claims `w` x `h` (at most 16384 each).
fn webp_with_size(mut b: Vec<u8>, w: u32, h: u32) -> Vec<u8> {
    assert_eq!(&b[12..16], b"VP8L");
    let bits = u32::from_le_bytes(b[21..25].try_into().expect("4 bytes"));
    let bits = (bits & !0x0FFF_FFFF) | (w - 1) | ((h - 1) << 14);
    b[21..25].copy_from_slice(&bits.to_le_bytes());
    b
}

/// A BMP header declaring `w` x `h` at 24 bits, with only a few rows of pixels.
fn bmp_with_size(w: i32, h: i32) -> Vec<u8> {
    let mut b = encode(DynamicImage::ImageRgb8(picture(32, 32)), ImageFormat::Bmp);
    b[18..22].copy_from_slice(&w.to_le_bytes());
    b[22..26].copy_from_slice(&h.to_le_bytes());
    b
}

fn with_tail(mut b: Vec<u8>, tail: &[u8]) -> Vec<u8> {
    b.extend_from_slice(tail);
    b
}

/// A RIFF (WebP) container whose size field says `by` bytes fewer than its chunks hold.
fn riff_size_short(mut b: Vec<u8>, by: u32) -> Vec<u8> {
    let size = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    b[4..8].copy_from_slice(&(size - by).to_le_bytes());
    b
}

fn cut(b: Vec<u8>, keep: usize) -> Vec<u8> {
    b[..keep.min(b.len())].to_vec()
}

/// A CMYK JPEG (Adobe APP14), as print workflows write them.
fn jpeg_cmyk() -> Vec<u8> {
    let (w, h) = (96u32, 64u32);
    let px: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 255) as u8, (i / 3 % 255) as u8, 40, 10])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&px, w as u16, h as u16, jpeg_encoder::ColorType::Cmyk)
        .expect("CMYK JPEG");
    out
}

/// An ordinary progressive JPEG (jpeg-encoder's scan script), as web tools write them.
fn jpeg_progressive() -> Vec<u8> {
    let img = picture(200, 150);
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_progressive(true);
    enc.encode(img.as_raw(), 200, 150, jpeg_encoder::ColorType::Rgb)
        .expect("progressive JPEG");
    out
}

/// The whole corpus, in a fixed order.
pub fn corpus() -> Vec<Case> {
    use Expect::{Processed, Refused};
    let photo = jpeg(160, 120);
    let png_small = encode(DynamicImage::ImageRgb8(picture(64, 48)), ImageFormat::Png);
    let gif_small = encode(DynamicImage::ImageRgb8(picture(64, 48)), ImageFormat::Gif);
    let webp_small = encode(DynamicImage::ImageRgb8(picture(64, 48)), ImageFormat::WebP);
    let bmp_small = encode(DynamicImage::ImageRgb8(picture(64, 48)), ImageFormat::Bmp);
    let big_tail = vec![0x41u8; 8 << 20];
    let case = |name, bytes, expect, why| Case {
        name,
        bytes,
        expect,
        why,
    };
    vec![
        // Lies about the type.
        case(
            "empty.jpg",
            Vec::new(),
            Refused(400, "empty_file"),
            "no bytes at all",
        ),
        case(
            "text.jpg",
            b"just some text, named .jpg\n".to_vec(),
            Refused(415, "unsupported_media_type"),
            "text with an image name",
        ),
        case(
            "page.png",
            b"<!doctype html><script>alert(1)</script>".to_vec(),
            Refused(415, "unsupported_media_type"),
            "HTML with an image name",
        ),
        case(
            "vector.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
            Refused(415, "unsupported_media_type"),
            "SVG (scriptable) is not accepted",
        ),
        case(
            "tiff.jpg",
            with_tail(b"II*\0\x08\0\0\0".to_vec(), &[0; 64]),
            Refused(415, "unsupported_media_type"),
            "a TIFF header: a real image type, not accepted",
        ),
        case(
            "zip.png",
            with_tail(b"PK\x03\x04".to_vec(), &[0; 64]),
            Refused(415, "unsupported_media_type"),
            "a ZIP archive named .png",
        ),
        case(
            "jpeg-magic-garbage.jpg",
            with_tail(vec![0xFF, 0xD8, 0xFF, 0xE0], &[0x13; 4000]),
            Refused(400, "invalid_image"),
            "JPEG magic then garbage",
        ),
        case(
            "png-magic-garbage.png",
            with_tail(b"\x89PNG\r\n\x1a\n".to_vec(), &[0x13; 4000]),
            Refused(400, "invalid_image"),
            "PNG signature then garbage",
        ),
        // Lies about the size (headers declaring more than the limits).
        case(
            "jpeg-65500x65500.jpg",
            jpeg_with_size(photo.clone(), 65500, 65500),
            Refused(413, "image_too_large"),
            "a JPEG frame header claiming 4.3 gigapixels",
        ),
        case(
            "png-50000x50000.png",
            png_with_size(png_small.clone(), 50_000, 50_000),
            Refused(413, "image_too_large"),
            "a PNG header claiming 2.5 gigapixels",
        ),
        case(
            "png16-rgba-6320x6320-header.png",
            png_with_size(
                encode(
                    DynamicImage::ImageRgba16(ImageBuffer::new(16, 16)),
                    ImageFormat::Png,
                ),
                6320,
                6320,
            ),
            Refused(413, "image_too_large"),
            "under the pixel limit but 320 MB decoded (16-bit RGBA)",
        ),
        case(
            "gif-65535x65535.gif",
            gif_with_screen(gif_small.clone(), 65535, 65535),
            Refused(413, "image_too_large"),
            "a GIF logical screen of 4.3 gigapixels",
        ),
        case(
            "webp-16384x16384.webp",
            webp_with_size(webp_small.clone(), 16384, 16384),
            Refused(413, "image_too_large"),
            "a WebP canvas of 268 megapixels",
        ),
        case(
            "bmp-30000x30000.bmp",
            bmp_with_size(30_000, 30_000),
            Refused(413, "image_too_large"),
            "a BMP header claiming 900 megapixels",
        ),
        case(
            "bmp-topdown-30000x-30000.bmp",
            bmp_with_size(30_000, -30_000),
            Refused(413, "image_too_large"),
            "the same, top-down (negative height)",
        ),
        case(
            "png-1x1.png",
            encode(DynamicImage::ImageRgb8(picture(1, 1)), ImageFormat::Png),
            Refused(422, "image_too_small"),
            "too small to classify",
        ),
        case(
            "jpeg-zero-size.jpg",
            jpeg_with_size(photo.clone(), 0, 0),
            Refused(400, "invalid_image"),
            "a frame of 0x0 pixels",
        ),
        // Decompression bombs (real pixel data that inflates).
        case(
            "bomb-png16-rgba-6000x6000.png",
            png_bomb(6000, 6000, png::ColorType::Rgba, png::BitDepth::Sixteen),
            Refused(413, "image_too_large"),
            "288 MB of 16-bit zeros in a few hundred KB",
        ),
        case(
            "bomb-png-rgb-7000x5000.png",
            png_bomb(7000, 5000, png::ColorType::Rgb, png::BitDepth::Eight),
            Processed,
            "105 MB decoded, within the budget: the worker must cope",
        ),
        case(
            "bomb-png-gray-6000x6000.png",
            png_bomb(6000, 6000, png::ColorType::Grayscale, png::BitDepth::Eight),
            Processed,
            "36 MB of grey zeros: converted to RGB in the worker",
        ),
        case(
            "bomb-jpeg-progressive-6000x6600.jpg",
            scan_bomb(6000, 6600, 3, None),
            Refused(413, "image_too_large"),
            "2,647 scans of end-of-band runs in ~380 KB: minutes of decoding, 237 MB of coefficients",
        ),
        case(
            "bomb-jpeg-progressive-gray-6000x6600.jpg",
            scan_bomb(6000, 6600, 1, None),
            Refused(413, "image_too_large"),
            "883 scans in ~125 KB: 16 s of decoding per upload",
        ),
        // Truncations.
        case(
            "jpeg-half.jpg",
            cut(photo.clone(), photo.len() / 2),
            Refused(400, "invalid_image"),
            "a JPEG cut in its scan",
        ),
        case(
            "jpeg-no-eoi.jpg",
            cut(photo.clone(), photo.len() - 2),
            Refused(400, "invalid_image"),
            "a JPEG missing its end marker",
        ),
        case(
            "png-half.png",
            cut(png_small.clone(), png_small.len() / 2),
            Refused(400, "invalid_image"),
            "a PNG cut in its data",
        ),
        case(
            "gif-half.gif",
            cut(gif_small.clone(), gif_small.len() / 2),
            Refused(400, "invalid_image"),
            "a GIF cut in its first frame",
        ),
        case(
            "webp-half.webp",
            cut(webp_small.clone(), webp_small.len() / 2),
            Refused(400, "invalid_image"),
            "a WebP shorter than its RIFF size",
        ),
        case(
            "webp-riff-short.webp",
            riff_size_short(webp_small.clone(), 4),
            Refused(400, "invalid_image"),
            "a WebP whose RIFF size is 4 bytes shorter than its chunks",
        ),
        case(
            "bmp-half.bmp",
            cut(bmp_small.clone(), bmp_small.len() / 2),
            Refused(400, "invalid_image"),
            "a BMP without half its pixel rows",
        ),
        // Trailing data: accepted, only the image's own bytes are kept.
        case(
            "jpeg-trailing-8mb.jpg",
            with_tail(photo.clone(), &big_tail),
            Processed,
            "a 10 KB JPEG carrying 8 MB after its end marker",
        ),
        case(
            "png-trailing-zip.png",
            with_tail(png_small.clone(), b"PK\x03\x04 a polyglot archive"),
            Processed,
            "a PNG with a ZIP after IEND",
        ),
        case(
            "gif-trailing.gif",
            with_tail(gif_small.clone(), &[0x55; 5000]),
            Processed,
            "a GIF with data after its trailer",
        ),
        case(
            "webp-trailing.webp",
            with_tail(webp_small.clone(), &[0x55; 5000]),
            Processed,
            "a WebP with data after the RIFF chunk",
        ),
        case(
            "bmp-trailing.bmp",
            with_tail(bmp_small.clone(), &[0x55; 5000]),
            Processed,
            "a BMP with data after its pixel array",
        ),
        case(
            "over-upload-limit.jpg",
            // Just over: a server answering 413 before reading a much larger body makes the
            // client see a reset instead of the answer.
            with_tail(photo.clone(), &vec![0x41u8; (10 << 20) + (100 << 10)]),
            Refused(413, "payload_too_large"),
            "a body just over MAX_UPLOAD_BYTES (10 MiB)",
        ),
        // Unusual but valid pixel formats.
        case(
            "jpeg-progressive.jpg",
            jpeg_progressive(),
            Processed,
            "an ordinary progressive JPEG",
        ),
        case(
            "jpeg-cmyk.jpg",
            jpeg_cmyk(),
            Processed,
            "a CMYK JPEG (Adobe APP14)",
        ),
        case(
            "jpeg-gray.jpg",
            encode(
                DynamicImage::ImageLuma8(ImageBuffer::from_fn(80, 60, |x, y| {
                    image::Luma([(x + y) as u8])
                })),
                ImageFormat::Jpeg,
            ),
            Processed,
            "a grayscale JPEG",
        ),
        case(
            "png16-rgba.png",
            encode(
                DynamicImage::ImageRgba16(ImageBuffer::from_fn(64, 48, |x, y| {
                    image::Rgba([(x * 900) as u16, (y * 1200) as u16, 3000, 40000])
                })),
                ImageFormat::Png,
            ),
            Processed,
            "16-bit RGBA with transparency",
        ),
        case(
            "png16-gray.png",
            encode(
                DynamicImage::ImageLuma16(ImageBuffer::from_fn(64, 48, |x, _| {
                    image::Luma([(x * 1000) as u16])
                })),
                ImageFormat::Png,
            ),
            Processed,
            "16-bit grayscale",
        ),
        case(
            "bmp-32bit-alpha.bmp",
            encode(
                DynamicImage::ImageRgba8(ImageBuffer::from_fn(64, 48, |x, y| {
                    image::Rgba([x as u8, y as u8, 9, 128])
                })),
                ImageFormat::Bmp,
            ),
            Processed,
            "a 32-bit BMP with alpha",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_large_varied_and_deterministic() {
        let a = corpus();
        assert!(a.len() >= 30, "{}", a.len());
        let names: std::collections::HashSet<_> = a.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), a.len(), "unique names");
        let b = corpus();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.bytes, y.bytes, "{} is not deterministic", x.name);
        }
    }
}

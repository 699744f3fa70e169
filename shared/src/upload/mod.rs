//! Upload inspection shared by the API (before it queues a job) and the worker (before it
//! decodes): the type is decided by magic bytes, the size by the header alone, so a hostile
//! file is refused before any full decode.
//!
//! Only the image's own bytes are kept: each format's structure is walked to its end (JPEG end
//! of image, PNG `IEND`, GIF trailer, the RIFF size of WebP, the BMP pixel array), a file that
//! stops before it is refused as truncated, and whatever follows is dropped, so a tiny image
//! cannot carry megabytes of trailing data into Redis. The decoded size (width x height x
//! bytes per pixel, read from the header) is checked against a memory budget before decoding.

use std::io::Cursor;

use image::{ImageDecoder, ImageFormat, ImageReader};

mod formats;
use formats::*;

/// Formats the service accepts.
pub const ACCEPTED: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

/// Why an upload cannot be classified. Each is the upload's fault, never the service's.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not an image in an accepted format (JPEG, PNG, WebP, GIF, BMP)")]
    Unsupported,
    #[error("the image has {0} pixels, more than the limit of {1}")]
    TooManyPixels(u64, u64),
    #[error("the image would take {0} bytes once decoded, more than the limit of {1}")]
    TooMuchMemory(u64, u64),
    #[error("the image is {0}x{1}, smaller than the minimum side of {2} pixels")]
    TooSmall(u32, u32, u32),
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    /// A JPEG sent in more scans than any encoder writes: each scan is another pass over the
    /// whole frame, so the scan count is the decode work (a few hundred KB of near-empty scans
    /// kept a worker busy for minutes).
    #[error("the JPEG is sent in {0} scans, more than the limit of {1}")]
    TooManyScans(u64, u64),
}

/// Bounds checked before and during decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    pub min_side: u32,
    /// Decoded size budget: width x height x channels x bytes per sample. A progressive JPEG's
    /// coefficient buffers (2 bytes a sample, padded to whole blocks) must fit twice this.
    pub max_decoded_bytes: u64,
    /// Most scans (start-of-scan segments) a JPEG may have; see [`DEFAULT_MAX_JPEG_SCANS`].
    pub max_jpeg_scans: u64,
}

/// Default of [`DecodeLimits::max_jpeg_scans`]. Baseline JPEGs have one scan per component at
/// most; libjpeg's default progressive script has 10 (colour) or 6 (grey) and optimising
/// encoders (jpegtran, mozjpeg) stay well below 100. The crafted bomb of issue 24 had 2,647.
pub const DEFAULT_MAX_JPEG_SCANS: u64 = 100;

/// Default of [`DecodeLimits::max_decoded_bytes`]: 128 MiB, room for a 40-megapixel 8-bit RGB
/// photo; a 16-bit RGBA image of the same pixel count is refused.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 128 << 20;

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 40_000_000,
            min_side: 16,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
            max_jpeg_scans: DEFAULT_MAX_JPEG_SCANS,
        }
    }
}

/// What the header says about an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// How many leading bytes of the upload are the image; the rest is dropped.
    pub len: usize,
    /// Bytes the decoded image takes (width x height x bytes per pixel).
    pub decoded_bytes: u64,
}

impl ImageInfo {
    /// File extension used in `image_file_name`.
    pub fn ext(&self) -> &'static str {
        extension(self.format)
    }

    /// MIME type of the bytes.
    pub fn content_type(&self) -> &'static str {
        self.format.to_mime_type()
    }
}

/// File extension of an accepted format.
pub fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        _ => "bin",
    }
}

/// Checks type, completeness, declared size and decoded size without decoding pixels.
pub fn inspect(bytes: &[u8], limits: DecodeLimits) -> Result<ImageInfo, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::Unsupported)?;
    if !ACCEPTED.contains(&format) {
        return Err(ImageError::Unsupported);
    }
    let len = match image_len(format, bytes) {
        Ok(len) => len,
        Err(truncated) => {
            // A file that lies about its size cannot hold its pixels either: say 413 for the
            // size when the header alone shows it, 400 for the truncation otherwise.
            if let Some((w, h)) = header_dimensions(format, bytes) {
                check_dimensions(w, h, limits)?;
            }
            return Err(truncated);
        }
    };
    let bytes = &bytes[..len];
    if format == ImageFormat::Jpeg {
        check_jpeg_work(bytes, limits)?;
    }
    if format == ImageFormat::WebP {
        // The WebP decoder refuses huge canvases with a generic error; say 413 ourselves.
        if let Some((w, h)) = webp_canvas(bytes) {
            check_dimensions(w, h, limits)?;
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    lim.max_alloc = Some(64 << 20); // header parsing only
    reader.limits(lim);
    let decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(ImageError::TooMuchMemory(
            decoded_bytes,
            limits.max_decoded_bytes,
        ));
    }
    Ok(ImageInfo {
        format,
        width,
        height,
        len,
        decoded_bytes,
    })
}

/// The size a header declares, if it can be read at all.
fn header_dimensions(format: ImageFormat, bytes: &[u8]) -> Option<(u32, u32)> {
    if format == ImageFormat::WebP {
        if let Some(dims) = webp_canvas(bytes) {
            return Some(dims);
        }
    }
    ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .ok()
}

/// Checks a declared size against the limits.
pub fn check_dimensions(w: u32, h: u32, limits: DecodeLimits) -> Result<(), ImageError> {
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooManyPixels(pixels, limits.max_pixels));
    }
    if w < limits.min_side || h < limits.min_side {
        return Err(ImageError::TooSmall(w, h, limits.min_side));
    }
    Ok(())
}

/// The length of the image at the start of `bytes`, walking the format's structure to its
/// end; an error when the data stops before the end (truncated).
pub fn image_len(format: ImageFormat, bytes: &[u8]) -> Result<usize, ImageError> {
    let end = match format {
        ImageFormat::Jpeg => jpeg_end(bytes),
        ImageFormat::Png => png_end(bytes),
        ImageFormat::Gif => gif_end(bytes),
        ImageFormat::WebP => webp_end(bytes),
        ImageFormat::Bmp => bmp_end(bytes),
        _ => None,
    };
    end.filter(|&e| e <= bytes.len()).ok_or_else(|| {
        ImageError::Corrupt(format!(
            "the {} data is truncated or malformed (its end could not be found)",
            extension(format).to_uppercase()
        ))
    })
}

/// `jpeg` with `text` in comment (`COM`) segments right after its start marker: the pixels
/// are unchanged but the bytes (and so the SHA-256 the result cache keys on) are new. Other
/// formats come back unchanged with `text` appended, which [`inspect`] drops.
pub fn with_jpeg_comment(jpeg: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        out.extend_from_slice(jpeg);
        out.extend_from_slice(text);
        return out;
    }
    out.extend_from_slice(&jpeg[..2]);
    for chunk in text.chunks(65_000) {
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((chunk.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn grace() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/testdata/grace_hopper.jpg"
        ))
        .unwrap()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image::RgbImage::new(w, h))
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn keeps_only_the_images_own_bytes() {
        let mut bytes = grace();
        let len = bytes.len();
        let info = inspect(&bytes, DecodeLimits::default()).unwrap();
        assert_eq!((info.width, info.height, info.ext()), (512, 600, "jpg"));
        assert_eq!(info.len, len);
        bytes.extend_from_slice(&vec![0xAB; 1 << 20]);
        assert_eq!(inspect(&bytes, DecodeLimits::default()).unwrap().len, len);
        // A comment inside the image is kept (and makes the bytes new).
        let commented = with_jpeg_comment(&grace(), &[b'c'; 70_000]);
        let info = inspect(&commented, DecodeLimits::default()).unwrap();
        assert_eq!(info.len, commented.len());
        // Every other format: the image's length is found, a trailer is dropped.
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::new(40, 30));
        for format in [
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            let mut b = encode(img.clone(), format);
            let own = b.len();
            assert_eq!(image_len(format, &b), Ok(own), "{format:?}");
            b.extend_from_slice(b"trailing data, kilobytes of it");
            let info = inspect(&b, DecodeLimits::default()).unwrap();
            assert_eq!(
                (info.len, info.width, info.height),
                (own, 40, 30),
                "{format:?}"
            );
        }
    }

    #[test]
    fn truncated_files_of_every_format_are_refused() {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, 7])
        }));
        let mut all = vec![(ImageFormat::Jpeg, grace())];
        for format in [
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            all.push((format, encode(img.clone(), format)));
        }
        for (format, b) in all {
            // A GIF missing only its trailer byte is complete (decoders agree); one more is not.
            let last = if format == ImageFormat::Gif { 2 } else { 1 };
            for cut in [b.len() - last, b.len() * 3 / 4, b.len() / 2] {
                assert!(
                    matches!(
                        inspect(&b[..cut], DecodeLimits::default()),
                        Err(ImageError::Corrupt(_))
                    ),
                    "{format:?} cut at {cut} of {}",
                    b.len()
                );
            }
        }
    }

    #[test]
    fn the_decoded_size_counts_channels_and_bytes_per_sample() {
        let limits = DecodeLimits {
            max_decoded_bytes: 64 * 64 * 4,
            ..DecodeLimits::default()
        };
        let rgb8 = encode(
            image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 64)),
            ImageFormat::Png,
        );
        assert_eq!(inspect(&rgb8, limits).unwrap().decoded_bytes, 64 * 64 * 3);
        let rgba16 = encode(
            image::DynamicImage::ImageRgba16(image::ImageBuffer::new(64, 64)),
            ImageFormat::Png,
        );
        assert_eq!(
            inspect(&rgba16, limits),
            Err(ImageError::TooMuchMemory(64 * 64 * 8, 64 * 64 * 4))
        );
    }

    #[test]
    fn a_huge_webp_canvas_is_too_large_not_corrupt() {
        let mut b = encode(
            image::DynamicImage::ImageRgb8(image::RgbImage::new(32, 32)),
            ImageFormat::WebP,
        );
        // Rewrite the lossless header's 14-bit sizes to 16384x16384.
        assert_eq!(&b[12..16], b"VP8L");
        let bits = u32::from_le_bytes(b[21..25].try_into().unwrap());
        let bits = (bits & !0x0FFF_FFFF) | 0x3FFF | (0x3FFF << 14);
        b[21..25].copy_from_slice(&bits.to_le_bytes());
        assert!(matches!(
            inspect(&b, DecodeLimits::default()),
            Err(ImageError::TooManyPixels(268_435_456, _))
        ));
    }

    #[test]
    fn refuses_bad_uploads_with_the_right_reason() {
        let l = DecodeLimits::default();
        assert_eq!(inspect(b"", l), Err(ImageError::Empty));
        assert_eq!(
            inspect(b"just some text, named .jpg", l),
            Err(ImageError::Unsupported)
        );
        let g = grace();
        assert!(matches!(
            inspect(&g[..g.len() / 2], l),
            Err(ImageError::Corrupt(_))
        ));
        assert_eq!(inspect(&png(1, 1), l), Err(ImageError::TooSmall(1, 1, 16)));
        // A PNG header declaring 50000x50000 pixels is refused from the header alone.
        let mut huge = png(16, 16);
        huge[16..20].copy_from_slice(&50_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&50_000u32.to_be_bytes());
        // Keep the doctored header's CRC valid so only the size is wrong.
        let crc = crc32fast::hash(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            inspect(&huge, l),
            Err(ImageError::TooManyPixels(2_500_000_000, _))
        ));
    }
}

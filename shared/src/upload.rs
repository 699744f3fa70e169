//! Upload inspection shared by the API (before it queues a job) and the worker (before it
//! decodes): the type is decided by magic bytes, the size by the header alone, so a hostile
//! file is refused before any full decode.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

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
    #[error("the image is {0}x{1}, smaller than the minimum side of {2} pixels")]
    TooSmall(u32, u32, u32),
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
}

/// Bounds checked before and during decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    pub min_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 40_000_000,
            min_side: 16,
        }
    }
}

/// What the header says about an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
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

/// Checks type, completeness and declared size without decoding pixels.
pub fn inspect(bytes: &[u8], limits: DecodeLimits) -> Result<ImageInfo, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::Unsupported)?;
    if !ACCEPTED.contains(&format) {
        return Err(ImageError::Unsupported);
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(ImageError::Corrupt(
            "the JPEG data is truncated (no end-of-image marker after the last scan)".into(),
        ));
    }
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    check_dimensions(width, height, limits)?;
    Ok(ImageInfo {
        format,
        width,
        height,
    })
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

/// JPEG decoders quietly pad a truncated scan with grey; the end-of-image marker after the last
/// start-of-scan tells a complete file from a cut one (inside scan data `FF` is always stuffed,
/// so `FF D9` there can only be the real marker). Bytes after the marker are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let find_last = |pat: [u8; 2]| bytes.windows(2).rposition(|w| w == pat);
    match (find_last([0xFF, 0xDA]), find_last([0xFF, 0xD9])) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
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

    #[test]
    fn accepts_the_photo_with_or_without_a_trailer() {
        let mut bytes = grace();
        let info = inspect(&bytes, DecodeLimits::default()).unwrap();
        assert_eq!((info.width, info.height, info.ext()), (512, 600, "jpg"));
        bytes.extend_from_slice(b"trailing bytes after EOI");
        assert!(inspect(&bytes, DecodeLimits::default()).is_ok());
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

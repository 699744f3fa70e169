//! Image decoding and preprocessing (the worker's first stage, in a crate of its own so the fuzz
//! targets build it without the runtime): any accepted upload becomes the exact NCHW float tensor
//! the registry describes (shorter side resized with Pillow-style antialiased bilinear, center
//! crop, scale to [0,1], per-channel mean/std).

use std::io::Cursor;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use shared::upload::{inspect, DecodeLimits, ImageError, ImageInfo};
use shared::ModelSpec;

/// Decodes `bytes` to 8-bit RGB: EXIF orientation applied, first frame of a GIF, alpha
/// composited over white, grayscale/CMYK/16-bit converted. Full size; see [`decode_for`].
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, ImageError> {
    let info = inspect(bytes, limits)?;
    decode_full(&bytes[..info.len], &info)
}

/// Like [`decode`], for a model that resizes the shorter side to `resize`: a JPEG large enough
/// is decoded at 1/2, 1/4 or 1/8 scale inside the inverse DCT, which skips most of the decode
/// work and memory (see [`jpeg_scale`]). Other images, and JPEGs the scaled decoder cannot read
/// (CMYK, or any warning from libjpeg-turbo), take the full path.
pub fn decode_for(bytes: &[u8], limits: DecodeLimits, resize: u32) -> Result<RgbImage, ImageError> {
    let info = inspect(bytes, limits)?;
    let bytes = &bytes[..info.len];
    if info.format == image::ImageFormat::Jpeg {
        if let Some(img) = jpeg_scale(info.width, info.height, resize)
            .and_then(|denom| decode_jpeg_scaled(bytes, &info, denom))
        {
            return Ok(img);
        }
    }
    decode_full(bytes, &info)
}

/// The DCT scale denominator (2, 4 or 8) for a `w` x `h` JPEG whose shorter side is resized to
/// `resize`: the largest reduction that leaves the shorter side at least [`SCALED_MARGIN`]
/// times `resize`, or `None` when there is none (a JPEG under 4x the target).
pub fn jpeg_scale(w: u32, h: u32, resize: u32) -> Option<u32> {
    let short = w.min(h);
    let floor = resize.saturating_mul(SCALED_MARGIN);
    [8u32, 4, 2]
        .into_iter()
        .find(|&d| resize > 0 && short.div_ceil(d) >= floor)
}

/// How many times the resize target the DCT-scaled image keeps. The DCT reduction is a box
/// filter; Pillow's antialiased bilinear (the reference) is a triangle as wide as the scale
/// factor. Measured on the fidelity photos (worker/tests/fidelity.rs): scaling down to the
/// target itself (margin 1) moved EfficientNet-Lite0 scores by up to 0.042 and swapped ranks
/// 2 and 3 on grace_hopper.jpg; leaving a 2x antialiased resize after it keeps them within
/// 0.021 of the reference (the full decode of grace_hopper.jpg: 0.010) while a 12-megapixel
/// photo still decodes at 1/4 scale.
pub const SCALED_MARGIN: u32 = 2;

/// Decodes a JPEG at 1/`denom` scale with libjpeg-turbo (TurboJPEG's scaled IDCT, SIMD
/// Huffman and colour conversion), EXIF orientation applied. `None`: a JPEG this path does not
/// take (CMYK/YCCK, or anything libjpeg-turbo reports, even a warning); the caller then runs
/// the full decode, which decides between a picture and [`ImageError::Corrupt`] exactly as
/// before, so the scaled path never accepts what the full one refuses.
fn decode_jpeg_scaled(bytes: &[u8], info: &ImageInfo, denom: u32) -> Option<RgbImage> {
    let mut dec = turbojpeg::Decompressor::new().ok()?;
    let header = dec.read_header(bytes).ok()?;
    if (header.width, header.height) != (info.width as usize, info.height as usize)
        || matches!(
            header.colorspace,
            turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
        )
    {
        return None;
    }
    let d = denom as usize;
    let (w, h) = (header.width.div_ceil(d), header.height.div_ceil(d));
    // Within the frame `inspect` admitted (1/denom^2 of it).
    let mut pixels = vec![0u8; w * h * 3];
    let out = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    // TurboJPEG picks the scaling factor that fits the requested size: exactly 1/denom here.
    dec.decompress(bytes, out).ok()?;
    let img = RgbImage::from_raw(u32::try_from(w).ok()?, u32::try_from(h).ok()?, pixels)?;
    let orientation = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Jpeg)
        .into_decoder()
        .ok()
        .and_then(|mut d| d.orientation().ok())
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Some(img.into_rgb8())
}

fn decode_full(bytes: &[u8], info: &ImageInfo) -> Result<RgbImage, ImageError> {
    let ImageInfo {
        format,
        width: w,
        height: h,
        decoded_bytes,
        ..
    } = *info;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = Limits::default();
    lim.max_image_width = Some(w);
    lim.max_image_height = Some(h);
    // The decoded frame (within the budget `inspect` checked) plus the decoder's own buffers.
    lim.max_alloc = Some(decoded_bytes.saturating_add(64 << 20));
    reader.limits(lim);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Corrupt(e.to_string()))?;
    img.apply_orientation(orientation);
    Ok(to_rgb(img))
}

fn to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    // Transparent pixels carry arbitrary colour; a viewer shows them over a light page.
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u16::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Resizes the shorter side to `spec.resize`, center-crops `spec.input_size` and normalizes
/// into a `[1, 3, S, S]` float buffer (NCHW, RGB). Only the cropped region is resampled, which
/// gives the same pixels as resize-then-crop at a fraction of the cost.
pub fn to_tensor(img: &RgbImage, spec: &ModelSpec, resizer: &mut Resizer) -> Vec<f32> {
    let s = spec.input_size as usize;
    let mut out = vec![0f32; 3 * s * s];
    to_tensor_into(img, spec, resizer, &mut out);
    out
}

/// [`to_tensor`] written straight into `out` (one image's `3 * S * S` slot of a batch tensor,
/// allocated once and reused). Panics if `out` has another length.
pub fn to_tensor_into(img: &RgbImage, spec: &ModelSpec, resizer: &mut Resizer, out: &mut [f32]) {
    let s = spec.input_size;
    let plane = (s * s) as usize;
    assert_eq!(out.len(), 3 * plane, "tensor slot of the model's shape");
    let cropped = resize_crop(img, spec.resize, s, resizer);
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.mean[c] / spec.std[c]);
    let (r, gb) = out.split_at_mut(plane);
    let (g, b) = gb.split_at_mut(plane);
    for (((px, r), g), b) in cropped
        .chunks_exact(3)
        .zip(r.iter_mut())
        .zip(g.iter_mut())
        .zip(b.iter_mut())
    {
        *r = f32::from(px[0]) * scale[0] - shift[0];
        *g = f32::from(px[1]) * scale[1] - shift[1];
        *b = f32::from(px[2]) * scale[2] - shift[2];
    }
}

/// Torchvision's `Resize(resize)` + `CenterCrop(crop)` geometry, resampled in one pass.
fn resize_crop(img: &RgbImage, resize: u32, crop: u32, resizer: &mut Resizer) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (
            resize,
            (f64::from(resize) * f64::from(h) / f64::from(w)) as u32,
        )
    } else {
        (
            (f64::from(resize) * f64::from(w) / f64::from(h)) as u32,
            resize,
        )
    };
    let (nw, nh) = (nw.max(crop), nh.max(crop));
    let left = ((f64::from(nw) - f64::from(crop)) / 2.0).round();
    let top = ((f64::from(nh) - f64::from(crop)) / 2.0).round();
    let (sx, sy) = (f64::from(w) / f64::from(nw), f64::from(h) / f64::from(nh));
    let src = ImageRef::new(w, h, img.as_raw(), PixelType::U8x3).expect("buffer matches size");
    let mut dst = Image::new(crop, crop, PixelType::U8x3);
    let opts = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(
            left * sx,
            top * sy,
            f64::from(crop) * sx,
            f64::from(crop) * sy,
        );
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("same pixel type and a crop inside the image");
    dst.into_vec()
}

/// A small JPEG of the image (longer side at most `max_side`), kept with the history: the SIMD
/// resize, then libjpeg-turbo's SIMD encoder ([`THUMB_QUALITY`], 4:2:0). Empty if encoding fails.
pub fn thumbnail(img: &RgbImage, max_side: u32, resizer: &mut Resizer) -> Vec<u8> {
    let small = thumbnail_pixels(img, max_side, resizer);
    let (w, h) = (small.width() as usize, small.height() as usize);
    let pixels = turbojpeg::Image {
        pixels: small.as_raw().as_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(pixels, THUMB_QUALITY, turbojpeg::Subsamp::Sub2x2)
        .map(|buf| buf.to_vec())
        .unwrap_or_default()
}

/// The thumbnails' JPEG quality.
pub const THUMB_QUALITY: i32 = 80;

/// The size of a `w` x `h` picture's thumbnail: scaled (never up) so that its longer side is at
/// most `max_side`, at least 1 x 1.
pub fn thumbnail_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let scale = f64::from(max_side) / f64::from(w.max(h));
    if scale >= 1.0 {
        return (w, h);
    }
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}

/// The thumbnail's pixels ([`thumbnail_size`]), resampled with the SIMD resizer.
fn thumbnail_pixels(img: &RgbImage, max_side: u32, resizer: &mut Resizer) -> RgbImage {
    let (w, h) = img.dimensions();
    let (tw, th) = thumbnail_size(w, h, max_side);
    if (tw, th) == (w, h) {
        return img.clone();
    }
    let src = ImageRef::new(w, h, img.as_raw(), PixelType::U8x3).expect("buffer matches size");
    let mut dst = Image::new(tw, th, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("same pixel type");
    RgbImage::from_raw(tw, th, dst.into_vec()).expect("buffer matches size")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use image::{ImageBuffer, ImageFormat, Luma, Rgba};
    use shared::upload::check_dimensions;

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_every_accepted_format_to_rgb() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10])));
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Bmp,
        ] {
            let rgb = decode(&encode(img.clone(), format), DecodeLimits::default()).unwrap();
            assert_eq!(rgb.dimensions(), (40, 30), "{format:?}");
            assert!(rgb.get_pixel(5, 5)[0] > 150, "{format:?}");
        }
    }

    #[test]
    fn grayscale_16bit_and_alpha_become_rgb() {
        let gray: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_pixel(20, 20, Luma([65535]));
        let rgb = decode(
            &encode(DynamicImage::ImageLuma16(gray), ImageFormat::Png),
            DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);

        let clear = ImageBuffer::from_pixel(20, 20, Rgba([0u8, 0, 0, 0]));
        let rgb = decode(
            &encode(DynamicImage::ImageRgba8(clear), ImageFormat::Png),
            DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(
            rgb.get_pixel(3, 3).0,
            [255, 255, 255],
            "transparent over white"
        );
    }

    #[test]
    fn rejects_text_truncated_tiny_and_huge_images() {
        let limits = DecodeLimits::default();
        assert_eq!(
            decode(b"hello, not an image", limits),
            Err(ImageError::Unsupported)
        );
        assert_eq!(decode(b"", limits), Err(ImageError::Empty));

        let jpeg = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/testdata/grace_hopper.jpg"
        ))
        .unwrap();
        assert!(matches!(
            decode(&jpeg[..jpeg.len() / 3], limits),
            Err(ImageError::Corrupt(_))
        ));

        let one = DynamicImage::ImageRgb8(RgbImage::new(1, 1));
        assert!(matches!(
            decode(&encode(one, ImageFormat::Png), limits),
            Err(ImageError::TooSmall(1, 1, _))
        ));
        assert!(matches!(
            check_dimensions(50_000, 50_000, limits),
            Err(ImageError::TooManyPixels(..))
        ));
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 40x20 JPEG tagged "rotate 90" must come out 20x40.
        let jpeg = encode(
            DynamicImage::ImageRgb8(RgbImage::new(40, 20)),
            ImageFormat::Jpeg,
        );
        let exif: &[u8] = &[
            0xFF, 0xE1, 0x00, 0x22, b'E', b'x', b'i', b'f', 0, 0, b'M', b'M', 0, 0x2A, 0, 0, 0, 8,
            0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
        ];
        let mut tagged = jpeg[..2].to_vec();
        tagged.extend_from_slice(exif);
        tagged.extend_from_slice(&jpeg[2..]);
        let rgb = decode(&tagged, DecodeLimits::default()).unwrap();
        assert_eq!(rgb.dimensions(), (20, 40));
    }

    #[test]
    fn tensor_has_model_shape_and_normalization() {
        let spec = shared::Registry::parse(include_str!("../../models/registry.toml"))
            .unwrap()
            .models["efficientnet-lite0"]
            .clone();
        let white = RgbImage::from_pixel(300, 500, image::Rgb([255, 255, 255]));
        let t = to_tensor(&white, &spec, &mut Resizer::new());
        assert_eq!(t.len(), 3 * 224 * 224);
        assert!(
            t.iter().all(|v| (v - 1.0).abs() < 1e-5),
            "white maps to (1-0.5)/0.5"
        );
    }

    #[test]
    fn thumbnail_is_a_small_jpeg() {
        let img = RgbImage::from_pixel(517, 606, image::Rgb([1, 2, 3]));
        let jpg = thumbnail(&img, 160, &mut Resizer::new());
        let back = image::load_from_memory(&jpg).unwrap();
        assert_eq!((back.width(), back.height()), (137, 160));
        let px = back.to_rgb8().get_pixel(70, 80).0;
        assert!(
            px.iter().zip([1u8, 2, 3]).all(|(a, b)| a.abs_diff(b) <= 2),
            "{px:?}"
        );
        // Never scaled up; odd sizes encode too.
        let tiny = thumbnail(&RgbImage::new(3, 1), 160, &mut Resizer::new());
        let back = image::load_from_memory(&tiny).unwrap();
        assert_eq!((back.width(), back.height()), (3, 1));
    }
}

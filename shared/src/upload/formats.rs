//! Walking each accepted format's structure from its bytes alone: where the image ends, its
//! size where the header crate does not give it, and a JPEG's scans and coefficient buffers.

use super::{DecodeLimits, ImageError};

pub(super) fn be16(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}

pub(super) fn le16(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}

pub(super) fn le32(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(i..i + 4)?.try_into().ok()?,
    )))
}

/// JPEG: marker segments up to each start of scan, the entropy-coded data after it (where
/// `FF` is always stuffed, so `FF` + non-zero, non-restart is the next marker), until the end
/// of image marker. Decoders quietly pad a cut scan with grey, so this is also the truncation
/// check.
pub(super) fn jpeg_end(b: &[u8]) -> Option<usize> {
    jpeg_walk(b).map(|shape| shape.end)
}

/// What the marker walk of a JPEG finds: where it ends, how many scans it has, its frame.
#[derive(Debug, Default)]
pub(super) struct JpegShape {
    end: usize,
    scans: u64,
    progressive: bool,
    /// Bytes of coefficient buffers a progressive decode holds for the whole frame: 64
    /// coefficients of 2 bytes per 8x8 block of every component, padded to whole MCUs.
    coefficient_bytes: u64,
}

/// The coefficient buffers of the frame header `seg` (the segment after its length).
pub(super) fn jpeg_coefficient_bytes(seg: &[u8]) -> Option<u64> {
    let h = u64::from(u16::from_be_bytes([*seg.get(1)?, *seg.get(2)?]));
    let w = u64::from(u16::from_be_bytes([*seg.get(3)?, *seg.get(4)?]));
    let n = usize::from(*seg.get(5)?);
    let sampling: Vec<(u64, u64)> = (0..n)
        .map(|c| {
            seg.get(6 + 3 * c + 1)
                .map(|s| (u64::from(s >> 4), u64::from(s & 15)))
        })
        .collect::<Option<_>>()?;
    let hmax = sampling.iter().map(|s| s.0).max()?.max(1);
    let vmax = sampling.iter().map(|s| s.1).max()?.max(1);
    let (mcus_x, mcus_y) = (w.div_ceil(8 * hmax), h.div_ceil(8 * vmax));
    let blocks: u64 = sampling
        .iter()
        .map(|(hs, vs)| mcus_x * hs * mcus_y * vs)
        .sum();
    Some(blocks * 64 * 2)
}

/// The decode work a JPEG asks for, bounded from its markers alone: the scan count (each scan
/// is a pass over the frame) and, for progressive frames, the coefficient buffers the decoder
/// must hold (outside the decoded-image budget otherwise).
pub(super) fn check_jpeg_work(bytes: &[u8], limits: DecodeLimits) -> Result<(), ImageError> {
    let Some(shape) = jpeg_walk(bytes) else {
        return Ok(()); // image_len refused it already
    };
    if shape.scans > limits.max_jpeg_scans {
        return Err(ImageError::TooManyScans(shape.scans, limits.max_jpeg_scans));
    }
    let budget = limits.max_decoded_bytes.saturating_mul(2);
    if shape.progressive && shape.coefficient_bytes > budget {
        return Err(ImageError::TooMuchMemory(
            shape.coefficient_bytes / 2,
            limits.max_decoded_bytes,
        ));
    }
    Ok(())
}

/// Walks a JPEG's marker segments to its end (see [`jpeg_end`]), counting scans and reading
/// the frame header on the way.
pub(super) fn jpeg_walk(b: &[u8]) -> Option<JpegShape> {
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut shape = JpegShape::default();
    let mut i = 2;
    loop {
        // Tolerate stray bytes between segments (as libjpeg does), then skip fill bytes.
        while *b.get(i)? != 0xFF {
            i += 1;
        }
        while *b.get(i)? == 0xFF {
            i += 1;
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            0xD9 => {
                shape.end = i;
                return Some(shape);
            }
            0xD0..=0xD7 | 0x01 => continue,
            0x00 | 0xD8 => return None,
            _ => {}
        }
        let seg = be16(b, i)?;
        if seg < 2 {
            return None;
        }
        let start = i + 2;
        i = i.checked_add(seg)?;
        if i > b.len() {
            return None;
        }
        // Start of frame: every SOFn but DHT (C4), JPG (C8) and DAC (CC).
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            shape.progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
            shape.coefficient_bytes = jpeg_coefficient_bytes(&b[start..i])?;
        }
        if marker == 0xDA {
            shape.scans += 1;
            // Entropy-coded data: stop at the first real marker.
            loop {
                if *b.get(i)? == 0xFF {
                    match *b.get(i + 1)? {
                        0x00 | 0xD0..=0xD7 => i += 2,
                        0xFF => i += 1,
                        _ => break,
                    }
                } else {
                    i += 1;
                }
            }
        }
    }
}

/// PNG: chunks (length, type, data, CRC) until `IEND`.
pub(super) fn png_end(b: &[u8]) -> Option<usize> {
    let mut i = 8usize;
    loop {
        let len = usize::try_from(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)).ok()?;
        let kind = b.get(i + 4..i + 8)?;
        let end = i.checked_add(12)?.checked_add(len)?;
        if end > b.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(end);
        }
        i = end;
    }
}

/// GIF: header, colour table, then extension and image blocks until the trailer (`;`). A file
/// that ends cleanly after a complete block without a trailer is accepted as it is.
pub(super) fn gif_end(b: &[u8]) -> Option<usize> {
    fn sub_blocks(b: &[u8], mut i: usize) -> Option<usize> {
        loop {
            let n = usize::from(*b.get(i)?);
            i += 1 + n;
            if n == 0 {
                return Some(i);
            }
        }
    }
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3usize << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let mut i = 13usize.checked_add(table(*b.get(10)?))?;
    let mut images = 0;
    loop {
        match b.get(i) {
            None if images > 0 && i == b.len() => return Some(i),
            None => return None,
            Some(0x3B) => return Some(i + 1),
            Some(0x21) => i = sub_blocks(b, i + 2)?,
            Some(0x2C) => {
                let flags = *b.get(i + 9)?;
                i += 10 + table(flags) + 1; // descriptor, local table, LZW code size
                i = sub_blocks(b, i)?;
                images += 1;
            }
            Some(_) => return None,
        }
    }
}

/// WebP: the RIFF container's end (its size, padded to even), once its chunks are walked:
/// each chunk (four-byte tag, little-endian size, data padded to even) must lie inside the
/// container and the last must end where it does. A RIFF size shorter than its chunks would
/// otherwise cut the image at upload and leave the worker a file it cannot decode.
pub(super) fn webp_end(b: &[u8]) -> Option<usize> {
    let size = usize::try_from(le32(b, 4)?).ok()?;
    let end = 8usize.checked_add(size)?.checked_add(size & 1)?;
    let mut i = 12; // after "RIFF", the size and "WEBP"
    while i < end {
        let len = usize::try_from(le32(b, i + 4)?).ok()?;
        i = i.checked_add(8)?.checked_add(len)?.checked_add(len & 1)?;
    }
    (i == end && end > 12).then_some(end)
}

/// The canvas size of a WebP (`VP8X` extended header, or the bitstream header of a simple
/// lossy/lossless file).
pub(super) fn webp_canvas(b: &[u8]) -> Option<(u32, u32)> {
    let u24 = |i: usize| -> Option<u32> {
        let s = b.get(i..i + 3)?;
        Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
    };
    match b.get(12..16)? {
        b"VP8X" => Some((u24(24)? + 1, u24(27)? + 1)),
        b"VP8 " => Some((
            (le16(b, 26)? & 0x3FFF) as u32,
            (le16(b, 28)? & 0x3FFF) as u32,
        )),
        b"VP8L" => {
            let bits = le32(b, 21)? as u32;
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        _ => None,
    }
}

/// BMP: the pixel array's offset plus its size (computed for uncompressed data, from the
/// header for compressed data, else the file size the header declares).
pub(super) fn bmp_end(b: &[u8]) -> Option<usize> {
    let file_size = le32(b, 2)?;
    let offset = le32(b, 10)?;
    let dib = le32(b, 14)?;
    let (width, height, bpp, compression, image_size) = if dib == 12 {
        (le16(b, 18)?, le16(b, 20)?, le16(b, 24)?, 0, 0)
    } else {
        let w = i64::from(le32(b, 18)? as u32 as i32).max(0).unsigned_abs();
        let h = i64::from(le32(b, 22)? as u32 as i32).unsigned_abs();
        (w, h, le16(b, 28)?, le32(b, 30)?, le32(b, 34)?)
    };
    let data = match compression {
        // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows padded to 4 bytes.
        0 | 3 | 6 => width
            .checked_mul(bpp)?
            .checked_add(31)?
            .checked_div(32)?
            .checked_mul(4)?
            .checked_mul(height)?,
        _ if image_size > 0 => image_size,
        _ => file_size.checked_sub(offset)?,
    };
    let end = offset.checked_add(data)?;
    if end < 26 {
        return None;
    }
    usize::try_from(end).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::upload::inspect;

    /// A small lossless WebP, as the `image` crate writes it.
    fn webp() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image::RgbImage::new(32, 32))
            .write_to(&mut out, image::ImageFormat::WebP)
            .unwrap();
        out.into_inner()
    }

    /// Issue 24, finding 7b: a RIFF size shorter than the chunks it holds used to be taken as
    /// the image's end, so the upload was cut there, accepted, and failed later in the worker.
    /// Now the chunks are walked: they must end exactly where the RIFF size says (400 at
    /// upload otherwise), while data after a consistent container is still only dropped.
    #[test]
    fn a_webp_riff_size_must_agree_with_its_chunks() {
        let b = webp();
        assert_eq!(webp_end(&b), Some(b.len()));
        let size = le32(&b, 4).unwrap() as u32;
        for shorter in [2, 4, size - 4] {
            let mut short = b.clone();
            short[4..8].copy_from_slice(&(size - shorter).to_le_bytes());
            assert_eq!(webp_end(&short), None, "{shorter} bytes short");
            assert!(
                matches!(
                    inspect(&short, DecodeLimits::default()),
                    Err(ImageError::Corrupt(_))
                ),
                "{shorter} bytes short"
            );
        }
        let mut tail = b.clone();
        tail.extend_from_slice(&[0x55; 100]);
        assert_eq!(
            webp_end(&tail),
            Some(b.len()),
            "trailing data is not the image"
        );
        assert_eq!(
            inspect(&tail, DecodeLimits::default()).unwrap().len,
            b.len()
        );
    }
}

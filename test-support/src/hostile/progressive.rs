//! Progressive-scan JPEG bombs (issue 24, finding 1): valid, warning-free progressive JPEGs
//! whose every AC coefficient is sent one at a time (spectral selection `Ss = Se = k`) and one
//! bit at a time (successive approximation, `Al` from 13 down to 0), each scan a few bytes of
//! end-of-band runs. A few hundred KB make a decoder hold a coefficient buffer for the whole
//! frame and walk every block once per scan: thousands of passes over millions of blocks.

/// One scan of the script: the components it codes, its band and its approximation bits.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Index of the component, or `None` for the interleaved DC scan of every component.
    component: Option<u8>,
    ss: u8,
    ah: u8,
    al: u8,
}

/// Highest successive-approximation bit the standard allows for AC coefficients.
const MAX_AL: u8 = 13;

/// A `w` x `h` progressive JPEG (SOF2, baseline Huffman, no subsampling) of `components` (1 or
/// 3) planes, every sample mid-grey, and its scan script: the DC scan, then for each component
/// and each AC coefficient the first pass at `Al = 13` and 13 refinements, so
/// `1 + components x 63 x 14` scans (2,647 in colour, 883 in grey), cut to `max_scans` when set.
pub fn scan_bomb(w: u16, h: u16, components: u8, max_scans: Option<usize>) -> Vec<u8> {
    let mut script = vec![Scan {
        component: None,
        ss: 0,
        ah: 0,
        al: 0,
    }];
    for c in 0..components {
        for k in 1..=63 {
            script.push(Scan {
                component: Some(c),
                ss: k,
                ah: 0,
                al: MAX_AL,
            });
            for al in (0..MAX_AL).rev() {
                script.push(Scan {
                    component: Some(c),
                    ss: k,
                    ah: al + 1,
                    al,
                });
            }
        }
    }
    script.truncate(max_scans.unwrap_or(usize::MAX).max(1));
    write(w, h, components, &script)
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn write(w: u16, h: u16, components: u8, script: &[Scan]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    // One quantisation table of ones.
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1; 64]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&h.to_be_bytes());
    sof.extend_from_slice(&w.to_be_bytes());
    sof.push(components);
    for c in 0..components {
        sof.extend_from_slice(&[c + 1, 0x11, 0]);
    }
    segment(&mut out, 0xC2, &sof);
    // DC table 0: one symbol, category 0, code `0`. AC table 0: the 15 end-of-band run
    // symbols EOB0..EOB14 (`r << 4`), 4-bit codes 0000..1110.
    let mut dht = vec![0x00, 1];
    dht.extend_from_slice(&[0; 15]);
    dht.push(0);
    dht.extend_from_slice(&[0x10, 0, 0, 0, 15]);
    dht.extend_from_slice(&[0; 12]);
    dht.extend((0..15u8).map(|r| r << 4));
    segment(&mut out, 0xC4, &dht);
    let blocks = u32::from(w).div_ceil(8) * u32::from(h).div_ceil(8);
    for scan in script {
        let mut sos = Vec::new();
        match scan.component {
            None => {
                sos.push(components);
                for c in 0..components {
                    sos.extend_from_slice(&[c + 1, 0x00]);
                }
            }
            Some(c) => sos.extend_from_slice(&[1, c + 1, 0x00]),
        }
        sos.extend_from_slice(&[scan.ss, scan.ss, scan.ah << 4 | scan.al]);
        segment(&mut out, 0xDA, &sos);
        let mut bits = Bits::default();
        if scan.component.is_none() {
            // Every block's DC difference is category 0: one `0` bit each.
            for _ in 0..blocks * u32::from(components) {
                bits.put(0, 1);
            }
        } else {
            // End-of-band runs of at most 32,767 blocks: EOBr plus r extra bits.
            let mut left = blocks;
            while left > 0 {
                let run = left.min(32_767);
                let r = 31 - run.leading_zeros();
                bits.put(r, 4);
                bits.put(run - (1 << r), r);
                left -= run;
            }
        }
        out.extend_from_slice(&bits.finish());
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// Entropy-coded bits, most significant first, with `FF` stuffing and one-bit padding.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = self.acc << 1 | (value >> i & 1);
            self.n += 1;
            if self.n == 8 {
                self.byte();
            }
        }
    }

    fn byte(&mut self) {
        let b = self.acc as u8;
        self.out.push(b);
        if b == 0xFF {
            self.out.push(0);
        }
        self.acc = 0;
        self.n = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.acc = self.acc << pad | ((1 << pad) - 1);
            self.n = 8;
            self.byte();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Instant;

    use super::*;

    fn scans(b: &[u8]) -> usize {
        b.windows(2).filter(|p| *p == [0xFF, 0xDA]).count()
    }

    /// Decode times with zune-jpeg (the `image` crate; it refuses over 100 scans itself, so
    /// the worker's full-size path was safe and its reduced-scale libjpeg-turbo path was not)
    /// and libjpeg-turbo.
    fn decode_both(b: &[u8], w: usize, h: usize) -> (f64, f64) {
        let t = Instant::now();
        let img = image::load_from_memory_with_format(b, image::ImageFormat::Jpeg);
        let zune = t.elapsed().as_secs_f64();
        if scans(b) > 100 {
            let err = img.unwrap_err().to_string();
            assert!(err.contains("scans"), "{err}");
        } else {
            let img = img.unwrap();
            assert_eq!((img.width(), img.height()), (w as u32, h as u32));
            assert!(img
                .to_rgb8()
                .pixels()
                .all(|p| p.0.iter().all(|&c| c.abs_diff(128) <= 1)));
        }
        let t = Instant::now();
        let turbo = turbojpeg::decompress(b, turbojpeg::PixelFormat::RGB).unwrap();
        assert_eq!((turbo.width, turbo.height), (w, h));
        (zune, t.elapsed().as_secs_f64())
    }

    #[test]
    fn the_bombs_are_progressive_jpegs_real_decoders_read() {
        for (components, want) in [(3, 2647), (1, 883)] {
            let b = scan_bomb(256, 264, components, None);
            assert_eq!(scans(&b), want);
            let (zune, turbo) = decode_both(&b, 256, 264);
            println!("256x264 x{components}, {want} scans: zune-jpeg {zune:.2} s, libjpeg-turbo {turbo:.2} s");
        }
        // Cut short, the script is still a valid (incomplete) progression.
        let b = scan_bomb(64, 64, 3, Some(100));
        assert_eq!(scans(&b), 100);
        decode_both(&b, 64, 64);
    }

    /// How long the bombs take today, and a grey 40-megapixel JPEG of 100 scans (the most
    /// block visits `MAX_PIXELS` and `MAX_JPEG_SCANS` admit): `cargo nextest run --release -p
    /// test-support --run-ignored only -E 'test(decode_times)' --no-capture`.
    #[test]
    #[ignore = "a measurement: tens of seconds"]
    fn decode_times() {
        let cases = [
            ("6000x6600 colour bomb", 6000u16, 6600u16, 3u8, None),
            ("6000x6600 grey bomb", 6000, 6600, 1, None),
            ("8000x5000 grey, 100 scans", 8000, 5000, 1, Some(100)),
            (
                "4000x5000 colour 4:4:4, 100 scans",
                4000,
                5000,
                3,
                Some(100),
            ),
        ];
        for (what, w, h, c, max) in cases {
            let b = scan_bomb(w, h, c, max);
            let (zune, turbo) = decode_both(&b, w.into(), h.into());
            println!(
                "{what}: {} KB, {} scans: zune-jpeg {zune:.1} s, libjpeg-turbo {turbo:.1} s",
                b.len() / 1024,
                scans(&b)
            );
        }
    }
}

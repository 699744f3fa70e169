#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/), once; the files are
committed. Small real images of every accepted format and colour model, made from
../shared/testdata/grace_hopper.jpg with Pillow, plus truncated and doctored variants.

    python3 -m venv /tmp/seed-venv && /tmp/seed-venv/bin/pip install pillow==13.0.0
    /tmp/seed-venv/bin/python fuzz/seed-corpus.py
"""
import io
import pathlib
import struct
import zlib

from PIL import Image

repo = pathlib.Path(__file__).resolve().parent.parent
photo = Image.open(repo.parent / "shared/testdata/grace_hopper.jpg").convert("RGB")
small = photo.resize((40, 48))
seeds = {}


def save(name, img, fmt, **kw):
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    seeds[name] = out.getvalue()


save("photo.jpg", small, "JPEG", quality=70)
save("progressive.jpg", small, "JPEG", quality=60, progressive=True)
save("gray.jpg", small.convert("L"), "JPEG")
save("cmyk.jpg", small.convert("CMYK"), "JPEG")
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90
save("rotated.jpg", small, "JPEG", exif=exif.tobytes())
save("rgb.png", small, "PNG")
save("rgba.png", small.convert("RGBA"), "PNG")
save("gray.png", small.convert("L"), "PNG")
save("palette.png", small.convert("P"), "PNG")
save("gray16.png", small.convert("I;16"), "PNG")
save("interlaced.png", small, "PNG", interlace=1)
save("lossy.webp", small, "WEBP", quality=50)
save("lossless.webp", small.convert("RGBA"), "WEBP", lossless=True)
frames = [small.convert("P"), small.rotate(90).convert("P")]
out = io.BytesIO()
frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
seeds["animated.gif"] = out.getvalue()
save("rgb.bmp", small.resize((20, 20)), "BMP")
save("palette.bmp", small.resize((20, 20)).convert("P"), "BMP")

# Variants: cut in half, a trailer after the image, a PNG declaring a huge canvas.
for name in ["photo.jpg", "rgb.png", "lossy.webp", "animated.gif", "rgb.bmp"]:
    data = seeds[name]
    stem, ext = name.split(".")
    seeds[f"{stem}-truncated.{ext}"] = data[: len(data) // 2]
seeds["photo-trailer.jpg"] = seeds["photo.jpg"] + b"\0" * 64
png = bytearray(seeds["rgb.png"])
png[16:24] = struct.pack(">II", 50_000, 50_000)
png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
seeds["huge-canvas.png"] = bytes(png)

for target in ["upload_inspect", "decode_preprocess"]:
    folder = repo / "fuzz/corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
print(f"{len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes per target")

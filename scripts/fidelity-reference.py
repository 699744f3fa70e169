#!/usr/bin/env python3
"""Reference scores for the worker's preprocessing fidelity test (worker/tests/fidelity.rs).

Run once (and again only when the photos or the model change):

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install -r scripts/fidelity-requirements.txt
    /tmp/ref/bin/python scripts/fidelity-reference.py

It (1) writes the derived test photos in tests/fixtures/photos/ from
../shared/testdata/grace_hopper.jpg (a large JPEG that takes the 1/4-scale decode, one that
takes 1/2 and carries an EXIF "rotate 90" tag, a PNG), then (2) classifies every photo with the
torchvision reference pipeline in Pillow -- EXIF transpose, RGB, Resize(256) bilinear with
antialias (Pillow's resize), CenterCrop(224), ToTensor, Normalize -- and EfficientNet-Lite0 in
the onnxruntime Python package, and (3) writes the top-5 (class id, softmax score) of each to
tests/fixtures/photos/reference.json. Pins: scripts/fidelity-requirements.txt.
"""
import json
import pathlib

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
OUT = REPO / "tests" / "fixtures" / "photos"
MODEL = SHARED / "models" / "efficientnet-lite0.onnx"
MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
STD = np.array([0.5, 0.5, 0.5], dtype=np.float32)


def make_photos():
    src = Image.open(SHARED / "testdata" / "grace_hopper.jpg").convert("RGB")
    w, h = src.size
    # Shorter side 2100: 1/4-scale decode (525 px >= 2 x 256).
    big = src.resize((2100, round(2100 * h / w)), Image.Resampling.LANCZOS)
    big.save(OUT / "grace_hopper_2100.jpg", quality=82)
    # Shorter side 1100, stored rotated with EXIF orientation 6: upright after transpose,
    # and 1/2-scale decode (550 px).
    mid = src.resize((1100, round(1100 * h / w)), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x0112] = 6
    mid.transpose(Image.Transpose.ROTATE_90).save(
        OUT / "grace_hopper_1100_exif6.jpg", quality=85, exif=exif.tobytes()
    )
    # A PNG (full decode path), cropped off-centre so it is a different picture.
    src.crop((0, 40, w, h)).save(OUT / "grace_hopper_crop.png", optimize=True)


def reference_tensor(path):
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = img.size
    size = 256
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    crop = 224
    top = int(round((nh - crop) / 2.0))
    left = int(round((nw - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def main():
    make_photos()
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    photos = [SHARED / "testdata" / "grace_hopper.jpg"] + sorted(
        p for p in OUT.iterdir() if p.suffix in (".jpg", ".png")
    )
    out = {}
    for p in photos:
        logits = sess.run(None, {name: reference_tensor(p)})[0][0].astype(np.float64)
        e = np.exp(logits - logits.max())
        prob = e / e.sum()
        top = np.argsort(-prob)[:5]
        key = str(p.relative_to(REPO.parent)) if p.is_relative_to(SHARED) else p.name
        out[key] = [{"class_id": int(i), "score": round(float(prob[i]), 6)} for i in top]
        print(key, out[key][:2])
    (OUT / "reference.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Drives the service with Triton's own HTTP client (tritonclient[http], unchanged) and prints
what it saw as one JSON object; tests/tests/v2.rs starts the stack, runs this and checks the
answers. Nothing here asserts: the Rust test does, so a failure names the value it got.

Usage: tritonclient_check.py --url HOST:PORT --token T --model M --photo JPEG
           --tensor RAW_F32 --batch-dir DIR
  RAW_F32: the photo preprocessed by the registry's rules, [1, 3, S, S] f32 little-endian.
  DIR: eight distinct photos (*.jpg).
"""

import argparse
import base64
import json
import pathlib
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main():
    p = argparse.ArgumentParser()
    for name in ("--url", "--token", "--model", "--photo", "--tensor", "--batch-dir"):
        p.add_argument(name, required=True)
    a = p.parse_args()
    # tritonclient writes Inference-Header-Content-Length into the dict it is given, so each
    # call gets a dict of its own (a shared one would carry a binary call's length into the next).
    def fresh():
        return {"Authorization": f"Bearer {a.token}"}
    client = httpclient.InferenceServerClient(url=a.url)
    out = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(a.model),
        "server": client.get_server_metadata(),
        "metadata": client.get_model_metadata(a.model),
        "config": client.get_model_config(a.model),
    }
    fp32 = next(i for i in out["metadata"]["inputs"] if i["datatype"] == "FP32")
    side = fp32["shape"][-1]

    photo = pathlib.Path(a.photo).read_bytes()
    image = httpclient.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([photo], dtype=np.object_))

    # The classification extension: the best five as "score:index:label".
    res = client.infer(
        a.model,
        [image],
        outputs=[httpclient.InferRequestedOutput("probabilities", class_count=5)],
        headers=fresh(),
        request_id="photo-1",
    )
    out["classification"] = [x.decode() for x in res.as_numpy("probabilities").reshape(-1)]
    out["echoed_id"] = res.get_response().get("id")

    # No output named: every output, in binary.
    by_image = client.infer(a.model, [image], headers=fresh()).as_numpy("probabilities")

    # The same picture, preprocessed by the caller, sent as binary FP32.
    tensor = np.fromfile(a.tensor, dtype="<f4").reshape(1, 3, side, side)
    pre = httpclient.InferInput(fp32["name"], [1, 3, side, side], "FP32")
    pre.set_data_from_numpy(tensor)
    by_tensor = client.infer(a.model, [pre], headers=fresh()).as_numpy("probabilities")
    out["shapes"] = [list(by_image.shape), list(by_tensor.shape)]
    out["sums"] = [float(by_image.sum()), float(by_tensor.sum())]
    out["max_abs_diff"] = float(np.abs(by_image - by_tensor).max())
    out["argmax"] = [int(by_image.argmax()), int(by_tensor.argmax())]

    # JSON forms: FP32 as numbers, the image as a base64 string, JSON outputs.
    pre_json = httpclient.InferInput(fp32["name"], [1, 3, side, side], "FP32")
    pre_json.set_data_from_numpy(tensor, binary_data=False)
    as_json = client.infer(
        a.model,
        [pre_json],
        outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=False)],
        headers=fresh(),
    ).as_numpy("probabilities")
    out["json_max_abs_diff"] = float(np.abs(as_json - by_tensor).max())
    b64 = httpclient.InferInput("image", [1], "BYTES")
    b64.set_data_from_numpy(
        np.array([base64.b64encode(photo)], dtype=np.object_), binary_data=False
    )
    res = client.infer(
        a.model,
        [b64],
        outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=False, class_count=1)],
        headers=fresh(),
    )
    out["base64_top"] = [x.decode() if isinstance(x, bytes) else x for x in res.as_numpy("probabilities").reshape(-1)]

    # A batch of eight distinct photos: eight rows, eight jobs.
    photos = sorted(pathlib.Path(a.batch_dir).glob("*.jpg"))
    batch = httpclient.InferInput("image", [len(photos)], "BYTES")
    batch.set_data_from_numpy(np.array([f.read_bytes() for f in photos], dtype=np.object_))
    res = client.infer(
        a.model,
        [batch],
        outputs=[httpclient.InferRequestedOutput("probabilities", class_count=1)],
        headers=fresh(),
    )
    out["batch_top"] = [x.decode() for x in res.as_numpy("probabilities").reshape(-1)]

    # Every kind of invalid request, each answered with an error the client raises.
    def refused(name, call):
        try:
            call()
            out.setdefault("errors", {})[name] = {"status": None, "message": "accepted"}
        except InferenceServerException as e:
            out.setdefault("errors", {})[name] = {"status": e.status(), "message": e.message()}

    def with_input(inp, **kw):
        return lambda: client.infer(
            kw.get("model", a.model), [inp], headers=kw["headers"] if "headers" in kw else fresh()
        )

    wrong_name = httpclient.InferInput("pixels", [1, 3, side, side], "FP32")
    wrong_name.set_data_from_numpy(tensor)
    refused("wrong_input_name", with_input(wrong_name))
    wrong_type = httpclient.InferInput(fp32["name"], [1, 3, side, side], "FP64")
    wrong_type.set_data_from_numpy(tensor.astype("<f8"))
    refused("wrong_datatype", with_input(wrong_type))
    wrong_shape = httpclient.InferInput(fp32["name"], [1, 3, side // 2, side * 2], "FP32")
    wrong_shape.set_data_from_numpy(tensor.reshape(1, 3, side // 2, side * 2))
    refused("wrong_shape", with_input(wrong_shape))
    short = httpclient.InferInput(fp32["name"], [1, 3, side, side], "FP32")
    short.set_data_from_numpy(tensor)
    short._raw_data = short._raw_data[:-4]  # the declared shape, four bytes short
    short._parameters["binary_data_size"] = len(short._raw_data)
    refused("wrong_byte_size", with_input(short))
    not_image = httpclient.InferInput("image", [1], "BYTES")
    not_image.set_data_from_numpy(np.array([b"this is text, not a photo"], dtype=np.object_))
    refused("not_an_image", with_input(not_image))
    refused("unknown_model", with_input(image, model="no-such-model"))
    refused("no_token", with_input(image, headers={}))
    refused(
        "unknown_output",
        lambda: client.infer(a.model, [image], outputs=[httpclient.InferRequestedOutput("logits")], headers=fresh()),
    )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

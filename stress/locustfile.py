"""Load test for the image-classification API (Locust).

Each simulated user registers and logs in once (a refused sign-up or log-in stops that
user: `StopUser`, counted as a failure), then mostly uploads a photo to the asynchronous
`POST /predictions` and waits for its result with `GET /predictions/{id}?wait=WAIT_S`; some
use the synchronous `POST /predict`, read their history (`GET /predictions`) or the service
info (`GET /info`).

Every upload is new bytes by default: the photo gets a JPEG comment (a PNG `tEXt` chunk)
holding a random id, inside the image and ignored by decoders, so the API's result cache
never answers and every classification runs the model. `REPEAT_SHARE` (0..1, default 0)
sends that share of uploads as one fixed copy instead; answers that come from the cache (per
account: each user's first copy is classified) are reported apart, under names ending in
"(cache hit)".

`make locust` runs this headless against private stacks and writes the report (see
scripts/locust.sh). By hand, against a running stack (`make run`):

    .venv/bin/pip install -r stress/requirements.txt
    .venv/bin/locust -f stress/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 10 -r 10 -t 60s --csv stress/reports/manual

Env: IMAGE (the photo to upload, JPEG or PNG; default ../shared/testdata/grace_hopper.jpg
beside the checkout), MODEL (model name to ask for; default: the service's default), WAIT_S
(the `wait` of GET /predictions/{id}, default 10), PASSWORD, REPEAT_SHARE.
"""

import os
import random
import time
import uuid
from pathlib import Path

from imagetag import tagged
from locust import HttpUser, between, events, task
from locust.exception import StopUser

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGE = HERE.parent.parent / "shared" / "testdata" / "grace_hopper.jpg"
IMAGE_PATH = Path(os.environ.get("IMAGE", str(DEFAULT_IMAGE)))
MODEL = os.environ.get("MODEL", "")
WAIT_S = int(os.environ.get("WAIT_S", "10"))
PASSWORD = os.environ.get("PASSWORD", "locust-load-test-password")
REPEAT_SHARE = float(os.environ.get("REPEAT_SHARE", "0"))

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_image = {}


def base_image():
    """(file name, bytes, content type) of the photo, read once per process."""
    if not _image:
        if not IMAGE_PATH.is_file():
            raise SystemExit(f"locustfile: image {IMAGE_PATH} not found; set IMAGE=/path/to/photo.jpg")
        data = IMAGE_PATH.read_bytes()
        if data.startswith(b"\xff\xd8"):
            ctype = "image/jpeg"
        elif data.startswith(PNG_MAGIC):
            ctype = "image/png"
        else:
            raise SystemExit(f"locustfile: {IMAGE_PATH} is neither JPEG nor PNG")
        _image.update(name=IMAGE_PATH.name, data=data, ctype=ctype)
        # The fixed copy REPEAT_SHARE sends: tagged once, so it is not the bare photo that
        # other tools may have cached.
        _image["repeat"] = tagged(data, f"locust-repeat-{uuid.uuid4().hex}")
    return _image["name"], _image["data"], _image["ctype"]


def upload_bytes():
    """(bytes, repeat?) for the next upload: new bytes unless this one is a repeat."""
    _, data, _ = base_image()
    if REPEAT_SHARE > 0 and random.random() < REPEAT_SHARE:
        return _image["repeat"], True
    return tagged(data, uuid.uuid4().hex), False


def body(r):
    """The JSON body of a response, or {} when it is not JSON."""
    try:
        value = r.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@events.init.add_listener
def _check_image(environment, **_kwargs):
    base_image()  # fail at start, not in every user
    if not 0 <= REPEAT_SHARE <= 1:
        raise SystemExit("locustfile: REPEAT_SHARE must be between 0 and 1")


class ApiUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self):
        email = f"locust-{uuid.uuid4().hex[:12]}@example.com"
        with self._admitted(
            "POST /users",
            "/users",
            json={"name": "Locust user", "email": email, "password": PASSWORD},
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"register: {r.status_code} {r.text[:200]}")
                raise StopUser()
        with self._admitted(
            "POST /login", "/login", data={"username": email, "password": PASSWORD}
        ) as r:
            token = body(r).get("access_token")
            if not token:
                r.failure(f"login: {r.status_code} {r.text[:200]}")
                raise StopUser()
        self.client.headers["Authorization"] = f"Bearer {token}"

    def _admitted(self, name, path, tries=6, **kwargs):
        """POSTs `path` as a polite client does: a 429 (the API's bounded password-hashing
        queue, full when many users start at once) is waited out for its `Retry-After` and
        retried, reported as "NAME (429, retried)"; the last answer is returned to check,
        in a `with` block."""
        for _ in range(tries - 1):
            r = self.client.post(path, name=name, catch_response=True, **kwargs)
            if r.status_code != 429:
                return r
            with r:
                r.request_meta["name"] = f"{name} (429, retried)"
                r.success()
            time.sleep(min(float(r.headers.get("Retry-After", "1") or 1), 10.0))
        return self.client.post(path, name=name, catch_response=True, **kwargs)

    def _post_image(self, path):
        """POSTs an upload (and MODEL when set) to `path`; use it in a `with` block. A repeat
        is named apart; an answer from the cache is renamed "(cache hit)" by the caller."""
        data, repeat = upload_bytes()
        name, _, ctype = base_image()
        form = {"model": MODEL} if MODEL else {}
        label = f"POST {path}" + (" (repeat)" if repeat else "")
        return self.client.post(
            path,
            files={"file": (name, data, ctype)},
            data=form,
            name=label,
            catch_response=True,
        )

    @staticmethod
    def _cache_hit(r, path):
        r.request_meta["name"] = f"POST {path} (cache hit)"

    @task(6)
    def classify_async(self):
        with self._post_image("/predictions") as r:
            if r.status_code not in (200, 202):
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            job = body(r)
            if r.status_code == 200 and job.get("status") == "done":
                self._cache_hit(r, "/predictions")
                return
            job_id = job.get("job_id")
            if not job_id:
                r.failure(f"no job_id in {r.text[:200]}")
                return
        with self.client.get(
            f"/predictions/{job_id}",
            params={"wait": WAIT_S},
            name="GET /predictions/{id}?wait",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            job = body(r)
            status = job.get("status")
            if status == "failed":
                r.failure(f"job failed: {job.get('error')}")
            elif status != "done":
                r.failure(f"not done after wait={WAIT_S}s (status {status})")

    @task(2)
    def classify_sync(self):
        with self._post_image("/predict") as r:
            answer = body(r)
            if r.status_code != 200 or not answer.get("success"):
                r.failure(f"{r.status_code} {r.text[:200]}")
            elif answer.get("cached"):
                self._cache_hit(r, "/predict")

    @task(1)
    def history(self):
        self.client.get("/predictions", name="GET /predictions")

    @task(1)
    def info(self):
        self.client.get("/info", name="GET /info")

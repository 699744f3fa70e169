"""Load test for the image-classification API (Locust).

Each simulated user registers and logs in once, then mostly uploads a photo to the
asynchronous `POST /predictions` and waits for its result with
`GET /predictions/{id}?wait=10`; some use the synchronous `POST /predict`, read
their history (`GET /predictions`) or the service info (`GET /info`).

Run against a running stack (`make run`, or `docker compose up`):

    pip install locust
    locust -f stress/locustfile.py --host http://127.0.0.1:8000
    # headless, 50 users, 5 new users per second, 2 minutes:
    locust -f stress/locustfile.py --host http://127.0.0.1:8000 \
        --headless -u 50 -r 5 -t 2m --csv stress/reports/run

Env: IMAGE (the photo to upload; default ../shared/testdata/grace_hopper.jpg beside
the checkout), MODEL (model name to ask for; default: the service's default),
WAIT_S (the `wait` of GET /predictions/{id}, default 10), PASSWORD.
"""

import mimetypes
import os
import uuid
from pathlib import Path

from locust import HttpUser, between, events, task

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGE = HERE.parent.parent / "shared" / "testdata" / "grace_hopper.jpg"
IMAGE_PATH = Path(os.environ.get("IMAGE", str(DEFAULT_IMAGE)))
MODEL = os.environ.get("MODEL", "")
WAIT_S = int(os.environ.get("WAIT_S", "10"))
PASSWORD = os.environ.get("PASSWORD", "locust-load-test-password")

_image = {}


def image():
    """(file name, bytes, content type) of the upload, read once per process."""
    if not _image:
        if not IMAGE_PATH.is_file():
            raise SystemExit(f"locustfile: image {IMAGE_PATH} not found; set IMAGE=/path/to/photo.jpg")
        ctype = mimetypes.guess_type(IMAGE_PATH.name)[0] or "application/octet-stream"
        _image.update(name=IMAGE_PATH.name, data=IMAGE_PATH.read_bytes(), ctype=ctype)
    return _image["name"], _image["data"], _image["ctype"]


def body(r):
    """The JSON body of a response, or {} when it is not JSON."""
    try:
        value = r.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@events.init.add_listener
def _check_image(environment, **_kwargs):
    image()  # fail at start, not in every user


class ApiUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self):
        email = f"locust-{uuid.uuid4().hex[:12]}@example.com"
        with self.client.post(
            "/users",
            json={"name": "Locust user", "email": email, "password": PASSWORD},
            name="POST /users",
            catch_response=True,
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"register: {r.status_code} {r.text[:200]}")
                return
        with self.client.post(
            "/login",
            data={"username": email, "password": PASSWORD},
            name="POST /login",
            catch_response=True,
        ) as r:
            token = body(r).get("access_token")
            if not token:
                r.failure(f"login: {r.status_code} {r.text[:200]}")
                return
        self.client.headers["Authorization"] = f"Bearer {token}"

    def _post_image(self, path):
        """POSTs a test image (and MODEL when set) to `path`; use it in a `with` block."""
        name, data, ctype = image()
        form = {"model": MODEL} if MODEL else {}
        return self.client.post(
            path,
            files={"file": (name, data, ctype)},
            data=form,
            name=f"POST {path}",
            catch_response=True,
        )

    @task(6)
    def classify_async(self):
        with self._post_image("/predictions") as r:
            if r.status_code not in (200, 202):
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            job = body(r)
            if r.status_code == 200 and job.get("status") == "done":
                return  # answered from the cache
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
            if r.status_code != 200 or not body(r).get("success"):
                r.failure(f"{r.status_code} {r.text[:200]}")

    @task(1)
    def history(self):
        self.client.get("/predictions", name="GET /predictions")

    @task(1)
    def info(self):
        self.client.get("/info", name="GET /info")

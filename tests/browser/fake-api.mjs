// A stand-in for the real API, speaking the documented v1 contract, for working on the UI's looks
// while the real binaries are not at hand: `LENS_FAKE_API=1 ./run.sh`. The real browser tests do
// not use it. Usage: node fake-api.mjs PORT
import http from "node:http";
import crypto from "node:crypto";

const port = Number(process.argv[2] || 8000);
const users = new Map(); // email -> {id, name, email, password}
const tokens = new Map(); // token -> email
const jobs = new Map(); // id -> job (with bytes, owner, createdMs)
const labels = ["tench", "goldfish", "academic gown", "mortarboard", "military uniform", "suit", "bow tie"];

const PREDICTIONS = [
  { label: "academic gown", class_id: 400, score: 0.255 },
  { label: "mortarboard", class_id: 667, score: 0.206 },
  { label: "military uniform", class_id: 652, score: 0.125 },
  { label: "suit", class_id: 834, score: 0.061 },
  { label: "bow tie", class_id: 457, score: 0.0334 },
];

function send(res, status, body, headers = {}) {
  const data = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(data);
}
const fail = (res, status, code, message) => send(res, status, { error: { code, message } });

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

function owner(req) {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization || "");
  return m ? tokens.get(m[1]) : undefined;
}

function view(job) {
  const ageMs = Date.now() - job.createdMs;
  const status = ageMs > 2500 ? "done" : ageMs > 800 ? "processing" : "queued";
  const out = {
    job_id: job.id, status, model: "efficientnet-lite0", image_file_name: job.name,
    created_at: new Date(job.createdMs).toISOString(), cached: false,
  };
  if (status === "done") out.result = { model: "efficientnet-lite0", elapsed_ms: 38, predictions: PREDICTIONS };
  return out;
}

function fileFromMultipart(body, contentType) {
  const boundary = /boundary=(.+)$/.exec(contentType || "")?.[1];
  if (!boundary) return null;
  const text = body.toString("latin1");
  for (const part of text.split("--" + boundary)) {
    if (!/name="file"/.test(part)) continue;
    const start = part.indexOf("\r\n\r\n") + 4;
    return Buffer.from(part.slice(start, part.length - 2), "latin1");
  }
  return null;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const path = url.pathname;
  const body = await readBody(req);
  if (path === "/health") return send(res, 200, { status: "ok" });
  if (path === "/ready") return send(res, 200, { status: "ready", checks: {} });
  if (path === "/info") {
    return send(res, 200, {
      version: "fake", default_model: "efficientnet-lite0", queue_depth: 0, workers_live: 1,
      models: [{ name: "efficientnet-lite0", description: "EfficientNet-Lite0, ImageNet-1k weights (75% top-1)", input_size: 224, default: true, workers: 1, queue_depth: 0 }],
    });
  }
  if (path.startsWith("/models/") && path.endsWith("/labels")) return send(res, 200, { model: "efficientnet-lite0", labels });
  if (path === "/users" && req.method === "POST") {
    const u = JSON.parse(body.toString());
    if (users.has(u.email)) return fail(res, 409, "conflict", "email already registered");
    const user = { id: users.size + 1, name: u.name, email: u.email, password: u.password };
    users.set(u.email, user);
    return send(res, 201, { id: user.id, name: user.name, email: user.email, is_admin: false, created_at: new Date().toISOString() });
  }
  if (path === "/login" && req.method === "POST") {
    const f = new URLSearchParams(body.toString());
    const u = users.get(f.get("username"));
    if (!u || u.password !== f.get("password")) return fail(res, 401, "unauthorized", "bad credentials");
    const token = crypto.randomBytes(16).toString("hex");
    tokens.set(token, u.email);
    return send(res, 200, { access_token: token, token_type: "bearer", expires_in: 3600 });
  }
  const email = owner(req);
  if (!email) return fail(res, 401, "unauthorized", "missing token");
  if (path === "/users/me") {
    const u = users.get(email);
    return send(res, 200, { id: u.id, name: u.name, email: u.email, is_admin: false, created_at: new Date().toISOString() });
  }
  if (path === "/predictions" && req.method === "POST") {
    const file = fileFromMultipart(body, req.headers["content-type"]);
    if (!file || file.length === 0) return fail(res, 400, "empty_file", "empty file");
    if (!(file[0] === 0xff && file[1] === 0xd8)) return fail(res, 415, "unsupported_media_type", "not an image");
    const id = crypto.randomUUID();
    jobs.set(id, { id, owner: email, bytes: file, name: "x.jpg", createdMs: Date.now() });
    return send(res, 202, { job_id: id, status: "queued", status_url: "/predictions/" + id }, { location: "/predictions/" + id });
  }
  if (path === "/predictions") {
    const mine = [...jobs.values()].filter((j) => j.owner === email).reverse().map(view);
    return send(res, 200, { items: mine, page: 1, per_page: 12, total: mine.length });
  }
  const m = /^\/predictions\/([^/]+)(\/image|\/thumbnail)?$/.exec(path);
  if (m) {
    const job = jobs.get(m[1]);
    if (!job || job.owner !== email) return fail(res, 404, "not_found", "no such job");
    if (m[2]) return send(res, 200, job.bytes, { "content-type": "image/jpeg" });
    const wait = Number(url.searchParams.get("wait") || 0);
    const until = Date.now() + wait * 1000;
    while (view(job).status !== "done" && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    return send(res, 200, view(job));
  }
  if (path === "/feedback" && req.method === "POST") return send(res, 201, { id: 1, ...JSON.parse(body.toString()) });
  return fail(res, 404, "not_found", "no such route");
});
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));

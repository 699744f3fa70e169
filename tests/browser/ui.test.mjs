// Browser tests of the web UI: the real api, worker and ui binaries and a private Redis on free
// ports (started by `xtask stack`), driven in headless Chromium through playwright-core. Run
// with ./run.sh.
//
// Env: BIN_DIR (default target/debug, relative to the repo), LENS_FAKE_API=1 (use fake-api.mjs
// instead of api + worker + Redis: only for working on the looks, not a test of the product).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const binDir = path.resolve(repo, process.env.BIN_DIR || "target/debug");
const shared = path.resolve(repo, "../shared");
const modelsDir = path.join(shared, "models");
const grace = path.join(shared, "testdata/grace_hopper.jpg");
const shotsDir = path.join(repo, "tests/screenshots");
const ortLib = path.join(repo, ".ort/libonnxruntime.so");
const fake = process.env.LENS_FAKE_API === "1";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lens-browser-"));
let browser;
let apiUrl;
let uiUrl;

// ---- processes ----------------------------------------------------------------------------
// The stack (private Redis, api, one worker, ui on free ports) is `xtask stack --control`:
// it prints one JSON line when ready and answers `stop NAME` / `start-worker` on stdin.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let stack; // {child, exited, waiters}

function logTail(file, lines = 40) {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * The JPEG at `file` with a comment segment (COM) carrying `text` right after its start marker:
 * other image bytes, the same picture. (Bytes after the end marker would not do: the API keeps
 * only the image's own bytes, so such a copy is the same upload.)
 */
function jpegWithComment(file, text) {
  const src = fs.readFileSync(file);
  const body = Buffer.from(text);
  const len = body.length + 2;
  const com = Buffer.concat([Buffer.from([0xff, 0xfe, len >> 8, len & 0xff]), body]);
  return Buffer.concat([src.subarray(0, 2), com, src.subarray(2)]);
}

/** Starts `xtask stack` and resolves with its ready line. */
function startStack(args, timeoutMs) {
  const xtask = path.join(repo, "target/debug/xtask");
  if (!fs.existsSync(xtask)) throw new Error(`${xtask} is missing: cargo build -p xtask`);
  const log = path.join(tmp, "xtask.log");
  const child = spawn(xtask, ["stack", "--control", "--dir", tmp, "--bin-dir", binDir, ...args], {
    cwd: repo,
    env: { PATH: process.env.PATH, HOME: process.env.HOME || tmp, RUST_LOG: "info" },
    stdio: ["pipe", "pipe", fs.openSync(log, "a")],
  });
  stack = { child, exited: null, waiters: [], log };
  child.on("exit", (code, signal) => {
    stack.exited = { code, signal };
    for (const w of stack.waiters.splice(0)) w.reject(new Error(`xtask exited (${code ?? signal}):\n${logTail(log)}`));
  });
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    const w = stack.waiters.shift();
    if (w) w.resolve(JSON.parse(line));
  });
  const ready = nextLine();
  const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
  return ready.finally(() => clearTimeout(timer));
}

function nextLine() {
  return new Promise((resolve, reject) => stack.waiters.push({ resolve, reject }));
}

/** Sends one command to `xtask stack --control` and returns its JSON answer. */
async function control(command) {
  const answer = nextLine();
  stack.child.stdin.write(`${command}\n`);
  const a = await answer;
  if (a.event === "error") throw new Error(`${command}: ${a.message}`);
  return a;
}

/** The UI against fake-api.mjs (LENS_FAKE_API=1): the looks only, not a test of the product. */
async function startFake() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const apiPort = srv.address().port;
  await new Promise((r) => srv.close(r));
  const fakeApi = spawn(process.execPath, [path.join(here, "fake-api.mjs"), String(apiPort)], { stdio: "ignore" });
  const portFile = path.join(tmp, "ui.port");
  const ui = spawn(path.join(binDir, "ui"), ["--port-file", portFile], {
    env: { PATH: process.env.PATH, UI_BIND: "127.0.0.1:0", API_URL: `http://127.0.0.1:${apiPort}` },
    stdio: "ignore",
  });
  process.on("exit", () => { fakeApi.kill(); ui.kill(); });
  while (!fs.existsSync(portFile)) await sleep(50);
  return { api_url: `http://127.0.0.1:${apiPort}`, ui_url: `http://127.0.0.1:${fs.readFileSync(portFile, "utf8").trim()}` };
}

async function stopStack() {
  if (!stack || stack.exited) return;
  stack.child.stdin.end(); // EOF: xtask stops everything (SIGTERM, then SIGKILL after 30 s)
  const deadline = Date.now() + 60000;
  while (!stack.exited && Date.now() < deadline) await sleep(100);
  if (!stack.exited) stack.child.kill("SIGKILL");
}

process.on("exit", () => { if (stack && !stack.exited) stack.child.kill("SIGTERM"); });
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => process.exit(130));
}

before(async () => {
  fs.mkdirSync(shotsDir, { recursive: true });
  const ready = fake
    ? await startFake()
    : await startStack([
      "--ui", "--workers", "1", "--models", "efficientnet-lite0", "--default-model", "efficientnet-lite0",
      "--models-dir", modelsDir, "--env", `ORT_DYLIB_PATH=${ortLib}`,
      "--env", `JWT_SECRET=${crypto.randomBytes(32).toString("hex")}`,
    ], 180000);
  apiUrl = ready.api_url;
  uiUrl = ready.ui_url;

  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    ],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stopStack().catch(() => {});
  if (process.env.KEEP_LOGS !== "1") fs.rmSync(tmp, { recursive: true, force: true });
  else console.log(`logs kept in ${tmp}`);
});

// ---- helpers ------------------------------------------------------------------------------

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

async function newPage() {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  return page;
}

/** Full-page screenshots at desktop and phone widths. */
async function shoot(page, name) {
  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(shotsDir, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
}

const password = "correct-horse-battery-" + crypto.randomBytes(4).toString("hex");
const email = `grace.${crypto.randomBytes(4).toString("hex")}@example.com`;

async function logIn(page) {
  await page.goto(`${uiUrl}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(`${uiUrl}/`);
}

function assertNoRawError(html) {
  assert.doesNotMatch(html, /"error"\s*:\s*\{/, "no raw JSON error on the page");
}

// ---- the tests --------------------------------------------------------------------------------

test("a visitor reads the landing page, signs up (logged in at once), pastes a photo, gets an honest answer, gives feedback that sticks and finds it in history", { timeout: 300000 }, async () => {
  const page = await newPage();

  // The landing page: what Lens does and a worked example with the running model's real top 5.
  await page.goto(`${uiUrl}/`);
  await page.getByRole("heading", { name: "See what is in your photos" }).waitFor();
  const example = page.locator(".landing-example ol.bars li");
  if (!fake) {
    // Computed by the UI at first start: allow it the time the worker needs.
    for (let i = 0; i < 60 && (await example.count()) === 0; i++) {
      await page.waitForTimeout(1000);
      await page.reload();
    }
    assert.equal(await example.count(), 5, "the example shows a real top 5");
    assert.match((await example.allInnerTexts()).join(" ").toLowerCase(), /academic gown/);
  }
  await shoot(page, "landing");

  // History needs a login; from there, sign up: every field error at once, next to its field.
  await page.goto(`${uiUrl}/history`);
  await page.waitForURL(/\/login\?next=/);
  await shoot(page, "login");
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.waitForURL(/\/signup\?next=/);
  await page.getByLabel("Name").fill("Grace Hopper");
  await page.getByLabel("Email").fill("not-an-email");
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  const errors = await page.locator(".field-error").allInnerTexts();
  assert.equal(errors.length, 2, `both errors at once: ${errors}`);
  assert.ok(await page.locator("#email-error").isVisible() && await page.locator("#password-error").isVisible());
  await shoot(page, "signup-errors");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  // Logged in at once, and on to where the person was going.
  await page.waitForURL(`${uiUrl}/history`);
  assert.match(await page.locator(".nav-user").innerText(), /Grace Hopper/);

  // Classify: only models a live worker serves are offered (the stack runs one worker with
  // EfficientNet-Lite0; the registry also has ResNet-50, which no worker serves).
  await page.getByRole("link", { name: "Classify", exact: true }).click();
  await page.getByRole("heading", { name: "Classify images" }).waitFor();
  const models = await page.getByLabel("Model").locator("option").allInnerTexts();
  assert.deepEqual(models, ["EfficientNet-Lite0"], `models offered: ${models}`);
  assert.doesNotMatch(await page.locator("#classify-form").innerText(), /converted from/, "no developer text");

  // Paste the photo from the clipboard.
  const b64 = fs.readFileSync(grace).toString("base64");
  await page.evaluate((data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "grace_hopper.jpg", { type: "image/jpeg" }));
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true }));
  }, b64);
  const preview = page.getByAltText("Preview of grace_hopper.jpg");
  await preview.waitFor();
  assert.match(await page.locator("#file-summary").innerText(), /1 photo chosen: grace_hopper\.jpg/);
  await shoot(page, "classify");

  // Send it: an ambiguous photo (its best guess is far below 50 %) is presented as "not sure".
  await page.getByRole("button", { name: "Classify" }).click();
  await page.waitForURL(/\/results\/[0-9a-f-]+$/, { timeout: 90000 });
  const resultUrl = page.url();
  const jobId = resultUrl.split("/").pop();
  const bars = page.locator("ol.bars li");
  await bars.first().waitFor({ timeout: 90000 });
  const rows = await bars.allInnerTexts();
  assert.equal(rows.length, 5, `top-5 rows: ${rows}`);
  for (const r of rows) assert.match(r, /\d+(\.\d+)?%/, "every row shows a percentage");
  await page.getByText("Not sure", { exact: true }).waitFor();
  assert.match(await page.locator("#result-title").innerText(), /It could be “Academic gown”/);
  assert.equal(await page.getByRole("heading", { level: 1 }).innerText(), "grace_hopper.jpg");
  assert.match(await page.title(), /^grace_hopper\.jpg — not sure/);
  const image = page.getByAltText("grace_hopper.jpg");
  assert.ok(await image.evaluate((img) => img.complete && img.naturalWidth > 100), "the image is shown beside the result");
  assert.match(await page.locator("#correct_label").getAttribute("placeholder"), /e\.g\. “mortarboard”/, "a real label as the example");
  await shoot(page, "result");

  // Feedback: wrong, with the right label; afterwards the page shows it and it can be changed.
  await page.getByLabel("No, it is wrong").check();
  await page.getByLabel(/The right label/).fill("mortarboard");
  await page.getByLabel(/Comment/).fill("She is wearing a mortarboard too.");
  await page.getByRole("button", { name: "Send feedback" }).click();
  await page.getByText("Thank you! Your feedback was saved.").waitFor();
  const given = page.locator("[data-feedback-given]");
  assert.match(await given.innerText(), /You said it is “mortarboard”/);
  assert.match(await given.innerText(), /She is wearing a mortarboard too/);
  assert.equal(await page.getByRole("button", { name: "Send feedback" }).count(), 0, "not offered twice");
  await page.getByText("Change your feedback").click();
  assert.ok(await page.getByLabel("No, it is wrong").isChecked(), "the form holds what was said");
  assert.equal(await page.getByLabel(/The right label/).inputValue(), "mortarboard");
  await shoot(page, "result-feedback");

  // History marks it; "marked wrong" and a label search find it; another label does not.
  await page.getByRole("link", { name: "History", exact: true }).click();
  await page.waitForURL(`${uiUrl}/history`);
  const card = page.locator(`a[href="/results/${jobId}"]`);
  await card.waitFor();
  for (let i = 0; i < 20 && !/academic gown/.test((await card.innerText()).toLowerCase()); i++) {
    await page.waitForTimeout(500);
    await page.reload();
  }
  assert.match(await card.innerText(), /Marked wrong: mortarboard/);
  assert.match(await card.innerText(), /grace_hopper\.jpg/);
  const thumb = card.locator("img");
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await thumb.elementHandle());
  assert.ok(await thumb.evaluate((img) => img.naturalWidth >= 2 * 120), "the thumbnail has pixels for a 2x screen");
  await shoot(page, "history");
  await page.getByLabel("Feedback").selectOption("wrong");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/feedback=wrong/);
  assert.equal(await page.locator(`a[href="/results/${jobId}"]`).count(), 1);
  await page.getByLabel("Search labels").fill("gown");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/label=gown/);
  assert.equal(await page.locator(`a[href="/results/${jobId}"]`).count(), 1, "a label search finds it");
  await page.getByLabel("Search labels").fill("zebra");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/label=zebra/);
  await page.getByText("Nothing in your history matches this search.").waitFor();
  await shoot(page, "history-search-empty");

  // A page that does not exist.
  const missing = await page.goto(`${uiUrl}/no-such-page`);
  assert.equal(missing.status(), 404);
  await page.getByRole("link", { name: "Go to the start page" }).waitFor();
  await shoot(page, "not-found");

  // Log out: history needs a login again.
  await page.goto(`${uiUrl}/history`);
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/login\?logged_out=1/);
  await page.getByText("You have been logged out.").waitFor();
  await page.context().close();
});

test("a text file renamed .jpg is refused with a message on the page", { timeout: 60000 }, async () => {
  const page = await newPage();
  await logIn(page);
  const notes = path.join(tmp, "notes.jpg");
  fs.writeFileSync(notes, "These are my shopping notes, not a picture.\n");
  await page.locator("#files").setInputFiles(notes);
  await page.getByRole("button", { name: "Classify" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /“notes\.jpg” is not an image we can read/);
  assert.ok(await page.getByText("Choose photos").isVisible(), "the form is there to try again");
  assertNoRawError(await page.content());
  await shoot(page, "classify-error");
  await page.context().close();
});

test("a file larger than the API accepts is refused with a message on the page", { timeout: 60000 }, async () => {
  const page = await newPage();
  await logIn(page);
  const big = path.join(tmp, "huge-photo.jpg");
  // A JPEG header followed by 11 MiB of filler: over the API's 10 MiB default upload limit.
  fs.writeFileSync(big, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(11 * 1024 * 1024, 7)]));
  await page.locator("#files").setInputFiles(big);
  await page.getByRole("button", { name: "Classify" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /“huge-photo\.jpg” is too large/);
  assertNoRawError(await page.content());
  await page.context().close();
});

test("an expired session sends the person to log in again, with a message", { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.context().addCookies([{ name: "session", value: "not-a-valid-token", url: uiUrl }]);
  await page.goto(`${uiUrl}/history`);
  await page.waitForURL(/\/login\?expired=1/);
  await page.getByText("Your session has expired. Please log in again.").waitFor();
  await page.context().close();
});

test("logging in works with the keyboard alone", { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.goto(`${uiUrl}/login`);
  // The email field has focus on arrival (autofocus applies once the page is laid out, so
  // wait for it rather than type into nothing); Tab moves on, Enter submits.
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === "email");
  await page.keyboard.type(email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${uiUrl}/`);
  // The skip link is the first stop and is visible when focused.
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim());
  assert.equal(focused, "Skip to content");
  await page.context().close();
});

test("several images sent together get a card each on one page", { timeout: 120000 }, async () => {
  const page = await newPage();
  await logIn(page);
  const second = path.join(tmp, "grace-second.jpg");
  fs.writeFileSync(second, jpegWithComment(grace, "second copy"));
  await page.locator("#files").setInputFiles([grace, second]);
  await page.getByText("Ready to send (2 images)").waitFor();
  await page.getByRole("button", { name: "Classify" }).click();
  await page.waitForURL(/\/batch\?ids=/);
  const cards = page.locator("#batch > li");
  assert.equal(await cards.count(), 2);
  await page.waitForFunction(() => document.querySelectorAll('#batch [data-finished="false"]').length === 0, null, { timeout: 90000 });
  const texts = (await cards.allInnerTexts()).map((t) => t.toLowerCase());
  for (const t of texts) assert.match(t, /academic gown/, `cards: ${texts}`);
  await shoot(page, "batch");
  await page.context().close();
});

test("the result page updates by itself while the job waits for a worker", { timeout: 180000, skip: fake && "fake API" }, async () => {
  const page = await newPage();
  await logIn(page);
  // No worker: the job has to wait in the queue.
  await control("stop worker-1");
  // Different image bytes from the first upload, so the API cannot answer from its cache.
  const variant = path.join(tmp, "grace-variant.jpg");
  fs.writeFileSync(variant, jpegWithComment(grace, "variant"));
  await page.locator("#files").setInputFiles(variant);
  await page.getByRole("button", { name: "Classify" }).click();
  await page.waitForURL(/\/results\/[0-9a-f-]+$/);
  await page.getByText("Waiting in the queue").waitFor();
  await page.evaluate(() => { window.__notReloaded = true; });
  await shoot(page, "result-waiting");

  // The same page with JavaScript off relies on its <meta http-equiv=refresh>.
  const noJs = await browser.newContext({
    viewport: DESKTOP,
    javaScriptEnabled: false,
    storageState: await page.context().storageState(),
  });
  const plain = await noJs.newPage();
  await plain.goto(page.url());
  await plain.getByText("Waiting in the queue").waitFor();

  await control("start-worker");
  await page.locator("ol.bars li").first().waitFor({ timeout: 120000 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "updated without reloading the page");
  assert.match((await page.locator("ol.bars").innerText()).toLowerCase(), /academic gown/);
  await plain.locator("ol.bars li").first().waitFor({ timeout: 30000 });
  assert.match((await plain.locator("ol.bars").innerText()).toLowerCase(), /academic gown/);
  await noJs.close();
  await page.context().close();
});

test("with the API down the page says the service is unavailable", { timeout: 60000, skip: fake && "fake API" }, async () => {
  const page = await newPage();
  await logIn(page);
  await control("stop api");
  const resp = await page.goto(`${uiUrl}/`);
  assert.equal(resp.status(), 503);
  await page.getByRole("heading", { name: "The service is unavailable" }).waitFor();
  assert.match(await page.locator("main").innerText(), /try again/i);
  await page.screenshot({ path: path.join(shotsDir, "api-down-desktop.png"), fullPage: true });
  await page.context().close();
});

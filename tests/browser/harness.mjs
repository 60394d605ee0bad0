// Test harness: builds (or takes) the assistantd binary, starts it on a
// temporary data directory and a free port, and launches Debian's chromium
// through playwright-core. No browser is ever downloaded.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../..");
export const artifacts = join(here, "artifacts");
export const screenshots = join(here, "screenshots");
export const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const API_KEY = "sk-browser-test-0123456789abcdef";

export const chromiumArgs = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

// browserMissing says why the browser tests cannot run here, or "".
export function browserMissing() {
  return existsSync(chromiumPath) ? "" : `${chromiumPath} not found (apt-get install chromium)`;
}

// binary returns the server binary: $ASSISTANTD_BIN, or a fresh build of
// the repository (with the front-end libraries installed first, so htmx is
// embedded).
export function binary() {
  if (process.env.ASSISTANTD_BIN) return resolve(process.env.ASSISTANTD_BIN);
  if (!existsSync(join(repo, "static/vendor/htmx.min.js"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: join(repo, "static"), stdio: "inherit" });
  }
  const out = join(mkdtempSync(join(tmpdir(), "assistantd-bin-")), "assistantd");
  execFileSync("go", ["build", "-o", out, "."], { cwd: repo, stdio: "inherit" });
  return out;
}

// startFakeUpstream runs the scripted OpenAI-compatible upstream of
// tests/upstream ($FAKE_UPSTREAM_BIN, or a fresh build) and resolves with
// its base URL and a stop function.
export async function startFakeUpstream() {
  let bin = process.env.FAKE_UPSTREAM_BIN;
  if (!bin) {
    bin = join(mkdtempSync(join(tmpdir(), "fake-upstream-")), "fake-upstream");
    execFileSync("go", ["build", "-o", bin, "./tests/upstream/cmd/fake-upstream"], { cwd: repo, stdio: "inherit" });
  }
  const proc = spawn(bin, ["--addr", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout });
  const base = await new Promise((resolveURL, reject) => {
    proc.on("exit", (code) => reject(new Error(`fake upstream exited with ${code}`)));
    lines.on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolveURL(m[1]);
    });
  });
  return {
    url: base + "/v1",
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
    },
  };
}

// startServer runs the binary on a temp data dir and 127.0.0.1:0 against
// the given upstream, plus extraArgs, and resolves once it prints its
// address (and, on first start, the setup link).
export async function startServer(bin, upstreamURL, extraArgs = []) {
  const data = mkdtempSync(join(tmpdir(), "assistantd-data-"));
  const proc = spawn(bin, ["--data", data, "--addr", "127.0.0.1:0", "--api-key", API_KEY,
    "--upstream-url", upstreamURL, "--upstream-retries", "0", "--log-level", "warn", ...extraArgs], { stdio: ["ignore", "pipe", "pipe"] });
  const stderr = [];
  proc.stderr.on("data", (b) => stderr.push(b));
  const lines = createInterface({ input: proc.stdout });
  const info = await new Promise((resolveInfo, reject) => {
    let base = "";
    proc.on("exit", (code) => reject(new Error(`server exited with ${code}: ${Buffer.concat(stderr)}`)));
    lines.on("line", (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) base = m[1];
      const s = line.match(/(http:\/\/\S+\/setup\?token=\S+)/);
      if (s) resolveInfo({ base, setupURL: s[1] });
    });
  });
  return {
    ...info,
    data,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
      rmSync(data, { recursive: true, force: true });
    },
    stderr: () => Buffer.concat(stderr).toString(),
  };
}

let seedBin = "";

// seedUsage adds usage (requests, each with input and output tokens) of
// model to a project of the running server's store, through the store's
// own RecordUsage (tests/browser/seedusage).
export function seedUsage(server, { project = "proj_default", model, requests = 1, input = 0, output = 0 }) {
  if (!seedBin) {
    seedBin = join(mkdtempSync(join(tmpdir(), "seedusage-")), "seedusage");
    execFileSync("go", ["build", "-o", seedBin, "./tests/browser/seedusage"], { cwd: repo, stdio: "inherit" });
  }
  execFileSync(seedBin, ["--data", server.data, "--project", project, "--model", model,
    "--requests", String(requests), "--input", String(input), "--output", String(output)], { stdio: "inherit" });
}

// api calls the server's /v1 with the test key.
export function api(base) {
  return async (method, path, body) => {
    const res = await fetch(base + "/v1" + path, {
      method,
      headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json", "OpenAI-Beta": "assistants=v2" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

// setUpFirstAdmin makes admin ({email, password}) the first user through
// the server's one-time setup page, leaving page signed in on the
// assistants list.
export async function setUpFirstAdmin(page, server, admin) {
  await page.goto(server.setupURL);
  await page.fill("#email", admin.email);
  await page.fill("#password", admin.password);
  await page.fill("#confirm", admin.password);
  await Promise.all([page.waitForURL(/\/assistants$/), page.click('[data-testid="setup-submit"]')]);
}

// shoot saves a full-page screenshot as a test artifact. The README's
// committed screenshots (readme: true) are refreshed only when
// UPDATE_SCREENSHOTS=1, so an ordinary test run leaves the work tree clean.
export async function shoot(page, name, { readme = false } = {}) {
  mkdirSync(artifacts, { recursive: true });
  const file = join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (readme && process.env.UPDATE_SCREENSHOTS === "1") {
    mkdirSync(screenshots, { recursive: true });
    copyFileSync(file, join(screenshots, `${name}.png`));
  }
}

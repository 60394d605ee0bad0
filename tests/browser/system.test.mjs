// The admin System page in a real browser: after a run against the
// scripted upstream, its charts show the run's upstream request (latency,
// error rate, the request count) and the runs' queue at rest, drawn as
// inline SVG lines.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) {
  throw new Error(`browser tests cannot run in CI: ${missing}`);
}

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

describe("the System page", { skip: missing || false }, () => {
  let server, upstream, browser, page, call;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on("pageerror", (err) => { throw err; });
    await setUpFirstAdmin(page, server, ADMIN);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
  });

  test("charts show the figures of a run", async () => {
    const a = await call("POST", "/assistants", { model: "fake-model", instructions: "Answer." });
    let run = await call("POST", "/threads/runs", {
      assistant_id: a.id, thread: { messages: [{ role: "user", content: "hello [[chunks 3]]" }] },
    });
    for (const deadline = Date.now() + 30_000; !["completed", "failed", "incomplete"].includes(run.status);) {
      assert.ok(Date.now() < deadline, `run still ${run.status}`);
      await new Promise((r) => setTimeout(r, 50)); // polling interval, bounded by the deadline
      run = await call("GET", `/threads/${run.thread_id}/runs/${run.id}`);
    }
    assert.equal(run.status, "completed");

    await page.click('[data-testid="nav-system"]');
    await page.waitForURL(/\/settings\/system$/);
    const chart = (id) => page.locator(`[data-testid="chart-${id}"]`);
    // The upstream request of the run: a latency in ms or s, no errors.
    const latency = await chart("latency").locator('[data-testid="latest"]').innerText();
    assert.match(latency, /^\d+(\.\d+)? (ms|s)$/, `latency shows ${latency}`);
    assert.match(await chart("latency").locator(".hint").innerText(), /^[1-9]\d* upstream requests in the hour\.$/);
    assert.equal(await chart("errors").locator('[data-testid="latest"]').innerText(), "0%");
    assert.equal(await chart("queued").locator('[data-testid="latest"]').innerText(), "0");
    // Each chart is an SVG with a line whose points lie in its box, the
    // last at the right end (now).
    for (const id of ["latency", "errors", "queued", "active", "kernels", "backlog"]) {
      const points = await chart(id).locator('svg [data-testid="line"]').first().getAttribute("points");
      const xs = points.trim().split(/\s+/).map((p) => Number(p.split(",")[0]));
      assert.ok(xs.every((x) => x >= 0 && x <= 300), `${id}: points ${points}`);
      assert.equal(xs[xs.length - 1], 300, `${id}: the line ends before now: ${points}`);
      const box = await chart(id).locator("svg").boundingBox();
      assert.ok(box.width > 100 && box.height > 20, `${id}: chart drawn ${box.width}×${box.height}`);
    }
    await shoot(page, "system");
  });
});

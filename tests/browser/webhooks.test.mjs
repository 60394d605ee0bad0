// The function editor's webhook settings in a real browser: save a
// webhook (the secret shown once), send a test call to a receiver that
// checks the signature, see the status, latency and response; a refused
// address is reported in place with the input kept.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) {
  throw new Error(`browser tests cannot run in CI: ${missing}`);
}

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

// signed reports whether a delivery carries a valid Standard Webhooks
// signature made with secret.
function signed(secret, headers, body) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const want = "v1," + createHmac("sha256", key)
    .update(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`).digest("base64");
  return (headers["webhook-signature"] || "").split(" ").includes(want);
}

describe("webhook settings in the function editor", { skip: missing || false }, () => {
  let server, upstream, browser, page, call, receiver, receiverURL;
  const deliveries = [];

  before(async () => {
    const { chromium } = await import("playwright-core");
    receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        deliveries.push({ path: req.url, headers: req.headers, body });
        if (req.url === "/broken") {
          res.writeHead(500, { "Content-Type": "text/plain" }).end("receiver exploded");
          return;
        }
        const payload = JSON.parse(body);
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ output: `weather for ${payload.function.name}: 21C` }));
      });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
    receiverURL = `http://127.0.0.1:${receiver.address().port}`;
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url, ["--webhook-allow-networks", "127.0.0.0/8"]);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    page.on("pageerror", (err) => { throw err; });
    await setUpFirstAdmin(page, server, ADMIN);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
    receiver?.closeAllConnections();
    await new Promise((r) => (receiver ? receiver.close(r) : r()));
  });

  test("save a webhook, see the secret once, send a test call", async () => {
    const a = await call("POST", "/assistants", {
      model: "fake-model", name: "Hooked",
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }],
    });
    await page.goto(`${server.base}/assistants/${a.id}`);
    const hook = page.locator('[data-testid="webhook"][data-function="get_weather"]');
    await hook.waitFor();
    assert.match(await hook.locator('[data-testid="webhook-status"]').textContent(), /none/);
    assert.equal(await hook.locator('[data-testid="webhook-test"]').count(), 0, "no test call before a webhook is saved");

    // A refused address: the error in place, the input kept, nothing stored.
    await hook.locator('[data-testid="webhook-url"]').fill("http://169.254.169.254/latest/meta-data/");
    await hook.locator('[data-testid="webhook-save"]').click();
    await page.waitForSelector('[data-testid="webhook"] [data-testid="error-webhook-url"]');
    assert.match(await page.textContent('[data-testid="error-webhook-url"]'), /--webhook-allow-networks/);
    assert.equal(await page.inputValue('[data-testid="webhook-url"]'), "http://169.254.169.254/latest/meta-data/");
    assert.deepEqual((await call("GET", `/assistants/${a.id}/webhooks`)).data, []);

    // Save: a secret is generated and shown this once.
    await page.fill('[data-testid="webhook-url"]', `${receiverURL}/weather`);
    await page.fill('[data-testid="webhook-timeout"]', "3000");
    await page.fill('[data-testid="webhook-retries"]', "0");
    await page.click('[data-testid="webhook-save"]');
    await page.waitForSelector('[data-testid="webhook-new-secret"]');
    const secret = (await page.textContent('[data-testid="webhook-new-secret"] code')).trim();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const stored = (await call("GET", `/assistants/${a.id}/webhooks`)).data;
    assert.deepEqual(stored.map((w) => [w.url, w.timeout_ms, w.max_retries, w.on_failure, w.secret]),
      [[`${receiverURL}/weather`, 3000, 0, "error_output", undefined]]);
    await shoot(page, "webhook-settings");

    // After a reload only the hint is left.
    await page.reload();
    await page.waitForSelector('[data-testid="webhook-status"]:has-text("configured")');
    assert.equal(await page.locator('[data-testid="webhook-new-secret"]').count(), 0);
    assert.ok(!(await page.content()).includes(secret), "the full secret is not shown again");
    assert.equal(await page.getAttribute('[data-testid="webhook-secret"]', "placeholder"), `kept: ${stored[0].secret_hint}`);

    // Send test call: status, latency and the response, signed with the secret.
    await page.click('[data-testid="webhook-test"]');
    await page.waitForSelector('[data-testid="webhook-test-result"]');
    assert.equal(await page.textContent('[data-testid="webhook-attempt-status"]'), "HTTP 200");
    assert.match(await page.textContent('[data-testid="webhook-attempt-latency"]'), /^\d+ ms$/);
    assert.equal(await page.textContent('[data-testid="webhook-test-output"]'), "weather for get_weather: 21C");
    const d = deliveries.at(-1);
    assert.equal(d.path, "/weather");
    assert.ok(signed(secret, d.headers, d.body), "the test call is signed with the secret shown");
    const payload = JSON.parse(d.body);
    assert.equal(payload.type, "function_call");
    assert.equal(payload.assistant_id, a.id);
    assert.equal(payload.function.name, "get_weather");
    await shoot(page, "webhook-test-call");

    // Saving again keeps the secret; a failing receiver shows its status and body.
    await page.fill('[data-testid="webhook-url"]', `${receiverURL}/broken`);
    await page.click('[data-testid="webhook-save"]');
    await page.waitForSelector('[data-testid="webhook-saved"]');
    await page.click('[data-testid="webhook-test"]');
    await page.waitForSelector('[data-testid="webhook-test-error"]');
    assert.equal(await page.textContent('[data-testid="webhook-attempt-status"]'), "HTTP 500");
    assert.match(await page.textContent('[data-testid="webhook-attempt-response"]'), /receiver exploded/);
    assert.match(await page.textContent('[data-testid="webhook-test-error"]'), /HTTP 500/);
    assert.ok(signed(secret, deliveries.at(-1).headers, deliveries.at(-1).body), "the secret was kept");

    // A run: the call is delivered, and the thread page lists the attempt.
    await page.fill('[data-testid="webhook-url"]', `${receiverURL}/weather`);
    await page.click('[data-testid="webhook-save"]');
    await page.waitForSelector('[data-testid="webhook-saved"]');
    const thread = await call("POST", "/threads", {
      messages: [{ role: "user", content: 'weather please [[call get_weather {"city":"Paris"}]]' }],
    });
    let run = await call("POST", `/threads/${thread.id}/runs`, { assistant_id: a.id });
    const deadline = Date.now() + 20_000;
    while (!["completed", "failed", "requires_action", "cancelled", "expired", "incomplete"].includes(run.status)) {
      assert.ok(Date.now() < deadline, `run still ${run.status}`);
      await new Promise((r) => setTimeout(r, 50));
      run = await call("GET", `/threads/${thread.id}/runs/${run.id}`);
    }
    assert.equal(run.status, "completed");
    await page.goto(`${server.base}/threads/${thread.id}`);
    // The timeline opens the latest run; open its tool step.
    const timeline = page.locator('[data-testid="timeline"]');
    await timeline.locator('[data-testid="run-step"][data-type="tool_calls"] > summary').click();
    const delivery = timeline.locator('[data-testid="delivery"]');
    assert.equal(await delivery.count(), 1);
    assert.equal(await delivery.locator('[data-testid="delivery-status"]').textContent(), "HTTP 200");
    assert.match(await timeline.locator('[data-testid="tool-output"]').textContent(), /weather for get_weather: 21C/);
    await shoot(page, "webhook-run-deliveries");

    // Remove.
    await page.goto(`${server.base}/assistants/${a.id}`);
    await page.click('[data-testid="webhook-remove"]');
    await page.waitForSelector('[data-testid="webhook-status"]:has-text("none")');
    assert.deepEqual((await call("GET", `/assistants/${a.id}/webhooks`)).data, []);
  });

  test("without JavaScript: save a webhook and send a test call", async () => {
    const a = await call("POST", "/assistants", {
      model: "fake-model", name: "Hooked without JS",
      tools: [
        { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } },
        { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } },
      ],
    });
    const context = await browser.newContext({ javaScriptEnabled: false });
    const nojs = await context.newPage();
    try {
      await nojs.goto(server.base + "/login");
      await nojs.fill("#email", ADMIN.email);
      await nojs.fill("#password", ADMIN.password);
      await Promise.all([nojs.waitForURL(/\/assistants/), nojs.click('[data-testid="login-submit"]')]);
      await nojs.goto(`${server.base}/assistants/${a.id}`);
      const weather = nojs.locator('[data-testid="webhook"][data-function="get_weather"]');
      await weather.locator('[data-testid="webhook-url"]').fill(`${receiverURL}/weather`);
      await Promise.all([nojs.waitForNavigation(), weather.locator('[data-testid="webhook-save"]').click()]);
      const saved = nojs.locator('[data-testid="webhook"][data-function="get_weather"]');
      const secret = (await saved.locator('[data-testid="webhook-new-secret"] code').textContent()).trim();
      assert.match(secret, /^whsec_/);
      // Only get_weather got a webhook; get_time's section is untouched.
      const stored = (await call("GET", `/assistants/${a.id}/webhooks`)).data;
      assert.deepEqual(stored.map((w) => [w.function_name, w.url]), [["get_weather", `${receiverURL}/weather`]]);
      assert.match(await nojs.textContent('[data-testid="webhook"][data-function="get_time"] [data-testid="webhook-status"]'), /none/);

      await Promise.all([nojs.waitForNavigation(), saved.locator('[data-testid="webhook-test"]').click()]);
      assert.equal(await nojs.textContent('[data-testid="webhook-attempt-status"]'), "HTTP 200");
      assert.ok(signed(secret, deliveries.at(-1).headers, deliveries.at(-1).body));
    } finally {
      await context.close();
    }
  });
});

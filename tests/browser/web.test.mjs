// Browser tests of the web app: real chromium, real server, real HTTP.
// Run with `npm test` (see package.json). They wait for selectors and
// responses, never for fixed times.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) {
  throw new Error(`browser tests cannot run in CI: ${missing}`);
}
if (missing) {
  console.log(`Skipping the browser tests: ${missing}.`);
}

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };
const VIEWER = { email: "viewer@example.com", password: "viewer-password-1" };

describe("web app", { skip: missing || false }, () => {
  let server, upstream, browser, admin, call;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    admin = await newPage();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
  });

  async function newPage() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    page.on("pageerror", (err) => { throw err; });
    return page;
  }

  async function signIn(page, user) {
    await page.goto(server.base + "/login");
    await page.fill("#email", user.email);
    await page.fill("#password", user.password);
    await Promise.all([page.waitForURL(/\/assistants/), page.click('[data-testid="login-submit"]')]);
    assert.equal(await page.textContent('[data-testid="current-user"]'), user.email);
  }

  test("first-run admin setup, sign-out and sign-in", async () => {
    const page = admin;
    await page.goto(server.base + "/assistants");
    await page.waitForSelector('[data-testid="login-form"]');
    await shoot(page, "login");

    await page.goto(server.setupURL);
    await page.waitForSelector('[data-testid="setup-form"]');
    await page.fill("#email", ADMIN.email);
    await page.fill("#password", ADMIN.password);
    await page.fill("#confirm", "a different one");
    await page.click('[data-testid="setup-submit"]');
    await page.waitForSelector('[data-testid="setup-errors"]');
    assert.match(await page.textContent('[data-testid="setup-errors"]'), /do not match/);
    await shoot(page, "setup");
    await page.fill("#password", ADMIN.password);
    await page.fill("#confirm", ADMIN.password);
    await Promise.all([page.waitForURL(/\/assistants$/), page.click('[data-testid="setup-submit"]')]);
    assert.equal(await page.textContent('[data-testid="current-role"]'), "admin");

    // The link works once only.
    const again = await page.goto(server.setupURL);
    assert.equal(again.status(), 404);

    await page.goto(server.base + "/assistants");
    await Promise.all([page.waitForURL(/\/login/), page.click('[data-testid="sign-out"]')]);
    await page.fill("#email", ADMIN.email);
    await page.fill("#password", "wrong password!");
    await page.click('[data-testid="login-submit"]');
    await page.waitForSelector('[data-testid="login-error"]');
    await signIn(page, ADMIN);
  });

  test("create an assistant with a function through the editor", async () => {
    const page = admin;
    await page.goto(server.base + "/assistants/new");
    await page.fill("#name", "Weather helper");
    await page.fill("#instructions", "Answer weather questions using the tool.");

    // htmx swaps in a new function fieldset without a page load.
    await page.click('[data-testid="add-function"]');
    const fn = page.locator('[data-testid="function"]').first();
    await fn.waitFor();
    // A new function starts non-strict, as in OpenAI's editor; this one
    // is made strict to see the strict rules checked.
    assert.equal(await fn.locator('[data-testid="function-strict"]').isChecked(), false, "a new function starts strict");
    await fn.locator('[data-testid="function-strict"]').check();

    // Live server-side validation: a bad name and a schema breaking the
    // strict rules show errors under their fields as they are typed.
    await fn.locator('[data-testid="function-name"]').fill("get weather");
    await fn.locator('[data-testid="function-parameters"]').fill('{"type":"object","properties":{"city":{"type":"string"}}}');
    await page.waitForSelector('[data-testid="function-name-errors"] li');
    assert.match(await fn.locator('[data-testid="function-name-errors"]').textContent(), /letters, digits, underscores/);
    await page.waitForSelector('[data-testid="function-errors"] li:has-text("add \\"city\\" to \\"required\\"")');
    const errs = await fn.locator('[data-testid="function-errors"]').textContent();
    assert.match(errs, /"additionalProperties": false/);

    // An invalid JSON Schema is caught by the schema library.
    await fn.locator('[data-testid="function-parameters"]').fill('{"type":"object","properties":{"city":{"type":"text"}}}');
    await page.waitForSelector('[data-testid="function-errors"] li:has-text("JSON Schema")');
    await shoot(page, "function-editor", { readme: true });

    // Saving with errors keeps the form and says what is wrong.
    await page.click('[data-testid="save-assistant"]');
    await page.waitForSelector('[data-testid="error-tools"]');

    // Fix it: the Examples picker fills in a valid, strict function.
    const fixed = page.locator('[data-testid="function"]').first();
    await fixed.locator('[data-testid="example-picker"]').selectOption("weather");
    await fixed.locator('[data-testid="insert-example"]').click();
    await page.waitForSelector('[data-testid="function-valid"]');
    assert.equal(await page.inputValue('[data-testid="function-name"]'), "get_weather");

    // Format pretty-prints the parameters.
    await page.fill('[data-testid="function-parameters"]', '{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"],"additionalProperties":false}');
    await page.click('[data-testid="format"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="function-parameters"]').value.includes('\n  "properties"'));

    await Promise.all([page.waitForURL(/\/assistants\/asst_/), page.click('[data-testid="save-assistant"]')]);
    assert.match(await page.textContent('[data-testid="flash"]'), /created/);
    const id = await page.textContent('[data-testid="assistant-id"]');
    const stored = await call("GET", `/assistants/${id}`);
    assert.equal(stored.name, "Weather helper");
    assert.equal(stored.tools[0].function.name, "get_weather");
    assert.equal(stored.tools[0].function.strict, true);
    assert.deepEqual(stored.tools[0].function.parameters.required, ["location", "unit"]);

    // Duplicate, then find both in the list by search.
    await page.goto(server.base + "/assistants");
    await Promise.all([page.waitForURL(/\/assistants\/asst_/), page.click('[data-testid="assistant-duplicate"]')]);
    await page.goto(server.base + "/assistants?q=weather");
    assert.equal(await page.locator('[data-testid="assistant-row"]').count(), 2);
    await call("POST", "/assistants", { model: "gpt-4o-mini", name: "Billing triage", description: "Routes invoices", tools: [{ type: "code_interpreter" }] });
    await page.goto(server.base + "/assistants");
    await page.waitForSelector('[data-testid="assistant-row"]');
    await shoot(page, "assistants", { readme: true });
  });

  test("browse and search a thread created through the API", async () => {
    const page = admin;
    const thread = await call("POST", "/threads", {
      metadata: { customer: "acme", channel: "email" },
      messages: [
        { role: "user", content: "Why was my **invoice** for March charged twice?" },
        { role: "assistant", content: "I checked your account. The duplicate charge was refunded:\n\n```python\nrefund = charges[-1].amount\nprint(f\"refunded {refund}\")\n```\n\n| month | charged |\n|---|---|\n| March | 2 × $20 |\n\nSee [the billing FAQ](https://example.com/faq)." },
      ],
    });
    await call("POST", "/threads", { metadata: { customer: "globex" }, messages: [{ role: "user", content: "How do I reset my password?" }] });

    await page.goto(server.base + "/threads");
    assert.equal(await page.locator('[data-testid="thread-row"]').count(), 2);
    await page.fill('[data-testid="thread-search"]', "invoice");
    await Promise.all([page.waitForURL(/q=invoice/), page.click('[data-testid="thread-filter-submit"]')]);
    const rows = page.locator('[data-testid="thread-row"]');
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute("data-id"), thread.id);
    assert.equal(await page.textContent('[data-testid="thread-snippet"] mark'), "invoice");
    await shoot(page, "threads");

    await page.goto(server.base + "/threads?meta_key=customer&meta_value=globex");
    assert.equal(await page.locator('[data-testid="thread-row"]').count(), 1);
    assert.notEqual(await page.locator('[data-testid="thread-row"]').first().getAttribute("data-id"), thread.id);

    await page.goto(server.base + "/threads?q=invoice");
    await Promise.all([page.waitForURL(/\/threads\/thread_/), page.click('[data-testid="thread-link"]')]);
    assert.equal(await page.locator('[data-testid="message"]').count(), 2);
    // The person's text as typed; the assistant's Markdown rendered.
    assert.equal((await page.textContent('[data-role="user"] [data-testid="message-body"]')).trim(), "Why was my **invoice** for March charged twice?");
    assert.equal((await page.textContent('[data-testid="thread-title"]')).trim(), "Why was my **invoice** for March charged twice?");
    assert.ok(await page.locator('[data-testid="message-body"] pre.chroma').count() > 0, "code block highlighted");
    assert.ok(await page.locator('[data-testid="message-body"] table').count() > 0, "table rendered");
    await shoot(page, "thread-markdown");

    const md = await page.request.get(server.base + `/threads/${thread.id}/export.md`);
    assert.match(await md.text(), /## user/);
    const js = await page.request.get(server.base + `/threads/${thread.id}/export.json`);
    assert.equal((await js.json()).messages.length, 2);
  });

  // waitForRun polls the API with a deadline until the run reaches one of
  // the wanted statuses.
  async function waitForRun(threadID, runID, wanted) {
    const deadline = Date.now() + 30000;
    for (;;) {
      const run = await call("GET", `/threads/${threadID}/runs/${runID}`);
      if (wanted.includes(run.status)) return run;
      assert.ok(Date.now() < deadline, `run still ${run.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  test("a run's tool calls, usage and the final answer on the thread page", async () => {
    const page = admin;
    const asst = (await call("GET", "/assistants")).data.find((a) => a.name === "Weather helper");
    const thread = await call("POST", "/threads", {
      metadata: { customer: "acme" },
      messages: [{ role: "user", content: 'What is the weather in Paris? [[call get_weather {"location":"Paris, France","unit":"celsius"}]]' }],
    });
    let run = await call("POST", `/threads/${thread.id}/runs`, { assistant_id: asst.id });
    run = await waitForRun(thread.id, run.id, ["requires_action", "failed"]);
    assert.equal(run.status, "requires_action", JSON.stringify(run.last_error));
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    await call("POST", `/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, {
      tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: JSON.stringify({ temperature: 21, sky: "clear" }) })),
    });
    await waitForRun(thread.id, run.id, ["completed"]);

    await page.goto(server.base + `/threads/${thread.id}`);
    assert.equal(await page.textContent('[data-testid="run-status"]'), "completed");
    // The latest run is open in the timeline.
    assert.equal(await page.$eval('[data-testid="run"]', (d) => d.open), true);
    await page.click('[data-testid="run-step"]:has([data-testid="tool-call"]) > summary');
    assert.match(await page.textContent('[data-testid="tool-arguments"]'), /"location": "Paris, France"/);
    assert.match(await page.textContent('[data-testid="tool-output"]'), /"temperature": 21/);
    assert.match(await page.textContent('[data-testid="message"][data-role="assistant"]'), /Tool results/);
    await shoot(page, "thread", { readme: true });
  });

  test("composer: add a message and run, answer the function call by hand", async () => {
    const page = admin;
    const thread = await call("POST", "/threads", { metadata: { source: "composer test" } });
    await page.goto(server.base + `/threads/${thread.id}`);
    await page.fill('[data-testid="composer-content"]', "Just a note");
    await page.click('[data-testid="composer-add"]');
    // Sent without a page load; the message appears in place.
    await page.waitForSelector('[data-testid="message"]');
    assert.equal(await page.locator('[data-testid="message"]').count(), 1);
    assert.equal(await page.inputValue('[data-testid="composer-content"]'), "");

    await page.fill('[data-testid="composer-content"]', 'Weather in Oslo? [[call get_weather {"location":"Oslo, Norway","unit":"celsius"}]]');
    await page.selectOption('[data-testid="composer-assistant"]', { label: "Weather helper" });
    await page.click('[data-testid="composer-run"]');
    // The page follows the run live; the pending call appears.
    const output = page.locator('[data-testid="pending-output"]');
    await output.waitFor();
    assert.match(await page.textContent('[data-testid="pending-call"]'), /Oslo, Norway/);

    // The server refuses a submission that misses an output.
    const status = await page.evaluate(async () => {
      const form = document.querySelector('[data-testid="outputs-form"]');
      const res = await fetch(form.action, { method: "POST", redirect: "manual", body: new URLSearchParams({ csrf_token: form.csrf_token.value }) });
      return res.type;
    });
    assert.equal(status, "opaqueredirect");
    await page.reload();
    await page.waitForSelector("text=Every call needs an output");

    await shoot(page, "thread-requires-action");
    await page.fill('[data-testid="pending-output"]', '{"temperature": 4}');
    await page.click('[data-testid="submit-outputs"]');
    await page.waitForSelector('[data-testid="message"][data-role="assistant"]');
    await page.waitForSelector('[data-testid="run-status"]:has-text("completed")');
    assert.match(await page.textContent('[data-testid="message"][data-role="assistant"]'), /temperature/);
  });

  test("cancel a run from the thread page", async () => {
    const page = admin;
    const thread = await call("POST", "/threads", {});
    await page.goto(server.base + `/threads/${thread.id}`);
    await page.fill('[data-testid="composer-content"]', "Tell me a long story [[slow 300ms]] [[chunks 100]]");
    await page.selectOption('[data-testid="composer-assistant"]', { label: "Weather helper" });
    await page.click('[data-testid="composer-run"]');
    await page.click('[data-testid="run-cancel"]');
    await page.waitForSelector('[data-testid="run-status"]:has-text("cancelled")');
    assert.equal(await page.locator('[data-testid="run-cancel"]').count(), 0);
  });

  test("a failed run shows its status and real error on the thread page", async () => {
    const page = admin;
    const asst = (await call("GET", "/assistants")).data.find((a) => a.name === "Weather helper");
    const thread = await call("POST", "/threads", { messages: [{ role: "user", content: "Hello [[status 500 1]]" }] });
    const run = await call("POST", `/threads/${thread.id}/runs`, { assistant_id: asst.id });
    const ended = await waitForRun(thread.id, run.id, ["failed", "completed", "expired", "incomplete"]);
    assert.equal(ended.status, "failed");
    await page.goto(server.base + `/threads/${thread.id}`);
    assert.equal(await page.textContent('[data-testid="run-status"]'), "failed");
    assert.match(await page.textContent('[data-testid="run-error"]'), new RegExp(ended.last_error.code));
    await shoot(page, "thread-failed-run");
  });

  test("the editor works without JavaScript", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await signIn(page, ADMIN);
      await page.goto(server.base + "/assistants/new");
      await page.fill("#name", "No-JS helper");
      await Promise.all([page.waitForNavigation(), page.click('[data-testid="add-function"]')]);
      await page.selectOption('[data-testid="example-picker"]', "lookup");
      await Promise.all([page.waitForNavigation(), page.click('[data-testid="insert-example"]')]);
      assert.equal(await page.inputValue('[data-testid="function-name"]'), "get_order");
      assert.equal(await page.locator('[data-testid="function-valid"]').count(), 1);
      await Promise.all([page.waitForURL(/\/assistants\/asst_/), page.click('[data-testid="save-assistant"]')]);
      const id = await page.textContent('[data-testid="assistant-id"]');
      assert.equal((await call("GET", `/assistants/${id}`)).tools[0].function.name, "get_order");
    } finally {
      await context.close();
    }
  });

  test("narrow screens: no sideways scrolling", async () => {
    const page = admin;
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      for (const [path, name] of [["/assistants/new", "editor-narrow"], ["/threads", "threads-narrow"]]) {
        await page.goto(server.base + path);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${path} scrolls sideways by ${overflow}px`);
        await shoot(page, name);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  test("dark colour scheme", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "dark" });
    const page = await context.newPage();
    await page.goto(server.base + "/login");
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(20, 20, 24)");
    await shoot(page, "login-dark");
    await context.close();
  });

  test("a message with script, an onerror image and a javascript: link renders inert", async () => {
    const page = admin;
    const thread = await call("POST", "/threads", {
      messages: [{ role: "user", content:
        'Hello <script>window.__xss = "script"</script>\n\n<img src="x" onerror="window.__xss = \'img\'">\n\n' +
        '[click me](javascript:window.__xss="link") and ![pic](javascript:alert(1))\n\n' +
        '<a href="javascript:window.__xss=\'a\'">raw link</a> <svg onload="window.__xss=\'svg\'"></svg>' }],
    });
    await page.goto(server.base + `/threads/${thread.id}`);
    const body = page.locator('[data-testid="message-body"]');
    await body.waitFor();
    assert.equal(await body.locator("script").count(), 0);
    assert.equal(await body.locator("[onerror], [onload]").count(), 0);
    assert.equal(await body.locator('a[href^="javascript"], img[src^="javascript"]').count(), 0);
    assert.equal(await body.locator("svg").count(), 0);
    const link = body.locator("text=click me");
    if (await link.count()) await link.click();
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.match(await body.textContent(), /click me/);
    await shoot(page, "thread-xss");
  });

  test("files: upload several at once with per-file status, download", async () => {
    const page = admin;
    await page.goto(server.base + "/files");
    await page.setInputFiles("#upload-files", [
      { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("some notes") },
      { name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) },
      { name: "data.csv", mimeType: "text/csv", buffer: Buffer.from("a,b\n1,2\n") },
    ]);
    await page.click('[data-testid="upload-submit"]');
    await page.waitForSelector('[data-testid="upload-result"]');
    assert.equal(await page.locator('[data-testid="upload-ok"]').count(), 2);
    assert.match(await page.textContent('[data-testid="flash"]'), /empty\.txt \(the file is empty\)/);
    assert.equal(await page.locator('[data-testid="file-row"]').count(), 2);
    // Post/redirect/get: a reload stores nothing again.
    await page.reload();
    assert.equal(await page.locator('[data-testid="file-row"]').count(), 2, "the reload uploaded again");
    await shoot(page, "files");
    const href = await page.locator('[data-testid="file-download"]').first().getAttribute("href");
    const res = await page.request.get(server.base + href);
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-disposition"], /attachment/);
  });

  test("files: a large upload shows its progress", async () => {
    const page = admin;
    await page.goto(server.base + "/files");
    // Record every value the progress bar shows (the answer replaces it).
    await page.evaluate(() => {
      window.uploadProgress = [];
      new MutationObserver(() => {
        const bar = document.querySelector("[data-upload-progress]");
        if (bar && !bar.hidden) window.uploadProgress.push(Number(bar.getAttribute("value")));
      }).observe(document.body, { attributes: true, subtree: true, attributeFilter: ["value", "hidden"] });
    });
    await page.setInputFiles("#upload-files", [
      { name: "big.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(24 << 20, 7) },
    ]);
    await page.click('[data-testid="upload-submit"]');
    await page.waitForSelector('[data-testid="upload-ok"]');
    const seen = await page.evaluate(() => window.uploadProgress);
    assert.ok(seen.length > 0, "the progress bar never showed");
    assert.equal(Math.max(...seen), 100, `progress values seen: ${seen.join(", ")}`);
  });

  test("API keys: created key shown once, works on /v1, revoked", async () => {
    const page = admin;
    await page.goto(server.base + "/settings/keys");
    await page.fill("#key-name", "browser test");
    await page.click('[data-testid="key-create"]');
    const secret = (await page.textContent('[data-testid="new-key-secret"]')).trim();
    const ok = await fetch(server.base + "/v1/assistants", { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(ok.status, 200);
    await page.goto(server.base + "/settings/keys");
    assert.equal(await page.locator('[data-testid="new-key"]').count(), 0, "the secret is not shown again");
    assert.notEqual(await page.textContent('[data-testid="key-last-used"]'), "never");
    await shoot(page, "keys");
    await Promise.all([page.waitForURL(/\/settings\/keys/), page.click('[data-testid="key-revoke"]')]);
    await page.waitForSelector("text=Key revoked.");
    const refused = await fetch(server.base + "/v1/assistants", { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(refused.status, 401);
  });

  test("a viewer can read but not change anything", async () => {
    await admin.goto(server.base + "/settings/users");
    await admin.fill("#new-email", VIEWER.email);
    await admin.fill("#new-password", VIEWER.password);
    await admin.selectOption("#new-role", "viewer");
    await admin.click('[data-testid="user-submit"]');
    await admin.waitForSelector(`text=User ${VIEWER.email} created.`);
    await shoot(admin, "users");

    const before = (await call("GET", "/assistants")).data;
    const target = before.find((a) => a.tools.some((t) => t.type === "function")).id;
    const viewer = await newPage();
    await signIn(viewer, VIEWER);
    assert.equal(await viewer.textContent('[data-testid="current-role"]'), "viewer");
    assert.equal(await viewer.locator('[data-testid="new-assistant"]').count(), 0);
    assert.equal(await viewer.locator('[data-testid="assistant-delete"]').count(), 0);
    await viewer.goto(server.base + `/assistants/${target}`);
    assert.equal(await viewer.locator('[data-testid="save-assistant"]').count(), 0);
    assert.equal(await viewer.locator('[data-testid="function-name"]').first().isDisabled(), true);
    await shoot(viewer, "assistant-read-only");

    const denied = await viewer.goto(server.base + "/assistants/new");
    assert.equal(denied.status(), 403);
    await shoot(viewer, "error-403");

    // Direct POSTs from the viewer's own session, with a valid CSRF token,
    // are refused by the server.
    await viewer.goto(server.base + "/assistants");
    const statuses = await viewer.evaluate(async (id) => {
      const token = document.querySelector('input[name="csrf_token"]').value;
      const post = async (path, fields) => {
        const res = await fetch(path, { method: "POST", body: new URLSearchParams({ csrf_token: token, ...fields }), redirect: "manual" });
        return res.status;
      };
      return [
        await post(`/assistants/${id}/delete`, {}),
        await post("/assistants/new", { name: "by viewer", model: "gpt-4o", action: "save" }),
        await post(`/assistants/${id}`, { name: "renamed by viewer", model: "gpt-4o", action: "save" }),
        await post(`/assistants/${id}/duplicate`, {}),
        await post("/settings/keys", { name: "viewer key" }),
        await post("/settings/users", { email: "x@example.com", password: "0123456789ab", role: "admin" }),
      ];
    }, target);
    assert.deepEqual(statuses, [403, 403, 403, 403, 403, 403]);
    const afterList = (await call("GET", "/assistants")).data;
    assert.deepEqual(afterList.map((a) => [a.id, a.name]), before.map((a) => [a.id, a.name]));
    await viewer.context().close();
  });

  test("a forged cross-site POST is refused", async () => {
    const before = (await call("GET", "/assistants")).data.length;
    // Another origin (a different port of the same host: same-site, so the
    // browser even sends the session cookie) serves a self-submitting form.
    const evil = createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(`<form id="f" method="post" action="${server.base}/assistants/new">
        <input name="name" value="Forged"><input name="model" value="gpt-4o"><input name="action" value="save">
        </form><script>document.getElementById("f").submit()</script>`);
    });
    await new Promise((r) => evil.listen(0, "127.0.0.1", r));
    try {
      const forged = admin.waitForResponse((r) => r.url() === `${server.base}/assistants/new` && r.request().method() === "POST");
      await admin.goto(`http://127.0.0.1:${evil.address().port}/`);
      assert.equal((await forged).status(), 403);
      await admin.waitForSelector('[data-testid="error-page"]');
      await shoot(admin, "forged-post-refused");
    } finally {
      evil.close();
    }
    assert.equal((await call("GET", "/assistants")).data.length, before);
  });
});

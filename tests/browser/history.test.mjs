// An assistant's version history in a real browser: versions made through
// the API and the editor, a diff between two chosen versions (instructions
// line by line, settings and tools by field), and restore as a new version.
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

describe("assistant history", { skip: missing || false }, () => {
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

  test("history, diff of two versions, restore", async () => {
    const a = await call("POST", "/assistants", {
      model: "fake-model", name: "Tutor", instructions: "Greet the student.\nExplain <script>steps</script>.\nQuiz them.",
      temperature: 0.2,
    });
    await call("POST", `/assistants/${a.id}`, {
      instructions: "Greet the student.\nQuiz them.\nSay goodbye.",
      tools: [{ type: "code_interpreter" }],
    });
    // A third version through the editor, as the signed-in user.
    await page.goto(`${server.base}/assistants/${a.id}`);
    await page.fill("#temperature", "0.7");
    await Promise.all([page.waitForURL(new RegExp(`/assistants/${a.id}$`)), page.click('[data-testid="save-assistant"]')]);

    await page.click('[data-testid="assistant-history"]');
    await page.waitForURL(new RegExp(`/assistants/${a.id}/history`));
    const rows = page.locator('[data-testid="version-row"]');
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.version)), ["3", "2", "1"]);
    const who = await page.locator('[data-testid="version-who"]').allTextContents();
    assert.equal(who[0].trim(), ADMIN.email);
    assert.match(who[1], /configured key/);

    // Compare v1 with v2.
    await page.check('[data-testid="version-row"][data-version="1"] [data-testid="pick-a"]');
    await page.check('[data-testid="version-row"][data-version="2"] [data-testid="pick-b"]');
    await Promise.all([page.waitForURL((u) => u.searchParams.get("a") === "1" && u.searchParams.get("b") === "2"), page.click('[data-testid="compare-versions"]')]);
    const lines = await page.locator('[data-testid="instructions-diff"] span').evaluateAll((spans) =>
      spans.map((s) => `${s.dataset.kind}:${s.textContent.replace(/^[−+ ] /, "").trim()}`));
    assert.deepEqual(lines, [
      "eq:Greet the student.", "del:Explain <script>steps</script>.", "eq:Quiz them.", "ins:Say goodbye.",
    ]);
    const fields = await page.locator('[data-testid="field-change"]').evaluateAll((trs) => trs.map((tr) => tr.dataset.field));
    assert.deepEqual(fields, ["code_interpreter"]);
    await shoot(page, "assistant-history");

    // v2 → v3 changed only the temperature.
    await page.goto(`${server.base}/assistants/${a.id}/history?a=2&b=3`);
    assert.equal(await page.locator('[data-testid="instructions-same"]').count(), 1);
    const temp = page.locator('[data-testid="settings-diff"] [data-field="temperature"] pre');
    assert.deepEqual((await temp.allTextContents()).map((t) => t.trim()), ["0.2", "0.7"]);

    // Restore v1 as v4.
    await page.goto(`${server.base}/assistants/${a.id}/history?a=1&b=3`);
    await Promise.all([page.waitForURL(new RegExp(`/assistants/${a.id}/history$`)), page.click('[data-testid="restore-1"]')]);
    assert.match(await page.textContent(".flash"), /Version 1 restored/);
    assert.equal(await page.getAttribute('[data-testid="version-row"]:has([data-testid="current-version"])', "data-version"), "4");
    const now = await call("GET", `/assistants/${a.id}`);
    assert.equal(now.instructions, a.instructions);
    assert.equal(now.temperature, 0.2);
    assert.deepEqual(now.tools, []);
    const v4 = await call("GET", `/assistants/${a.id}/versions/4`);
    assert.equal(v4.created_by.name, ADMIN.email);
    assert.equal(v4.assistant.instructions, a.instructions);
  });
});

// Browser test of the playground driving an assistant through the
// Responses API: the settings pane's API choice, a response streaming into
// the thread pane and the timeline, a function call the response ends with
// answered by hand, the conversation kept across turns. Real chromium, the
// real server, the scripted upstream; streaming is observed in the page (a
// MutationObserver counts how often the answer grows), nothing waits for a
// fixed time.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

describe("playground through the Responses API", { skip: missing || false }, () => {
  let server, upstream, browser, page, call, assistant;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
    page.on("pageerror", (err) => { throw err; });
    await setUpFirstAdmin(page, server, ADMIN);
    assistant = await call("POST", "/assistants", {
      model: "gpt-4o-mini", name: "Weather helper", instructions: "Answer briefly.",
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
  });

  // watchGrowth counts, in the page, how often the streaming answer's
  // text changes.
  async function watchGrowth() {
    await page.evaluate(() => {
      window.__growth = 0;
      const seen = new Set();
      const count = () => {
        const el = document.querySelector('[data-testid="message-stream"]');
        if (el && el.textContent && !seen.has(el.textContent.length)) {
          seen.add(el.textContent.length);
          window.__growth++;
        }
      };
      count();
      new MutationObserver(count).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  }

  async function waitBadge(status) {
    await page.waitForFunction((s) => document.querySelector('[data-testid="run-badge"]')?.textContent === s, status, { timeout: 30000 });
  }

  // submitAndReload clicks a button that starts a response: the page
  // loads again to follow it.
  async function submitAndReload(selector) {
    await Promise.all([page.waitForEvent("load"), page.click(selector)]);
  }

  test("a streamed response, then a function call answered by hand, on one conversation", async () => {
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    // The choice is in the settings pane; picking it reopens the page.
    await Promise.all([page.waitForURL(/api=responses/), page.selectOption('[data-testid="pick-api"]', "responses")]);
    assert.match(await page.textContent('[data-testid="api-hint"]'), /Responses API|response/);
    assert.match(await page.textContent('[data-testid="thread-pane"]'), /A new conversation starts/);

    // Turn 1: a streamed answer.
    await page.fill('[data-testid="composer-content"]', "[[slow 60ms]] [[chunks 40]] stream please");
    await Promise.all([page.waitForURL(/conversation=conv_/), page.click('[data-testid="composer-run"]')]);
    const convID = new URL(page.url()).searchParams.get("conversation");
    assert.equal(await page.textContent('[data-testid="conversation-id"]'), convID);
    await watchGrowth();
    await page.waitForFunction(() => window.__growth >= 3, null, { timeout: 30000 });
    await page.waitForSelector('[data-testid="run-step"][data-type="message_creation"]');
    await waitBadge("completed");
    await page.waitForFunction(() => document.querySelector("[data-composer-controls]")?.disabled === false);
    let bodies = await page.locator('[data-role="assistant"] [data-testid="message-body"]').allTextContents();
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0].trim().split(/\s+/).length, 40);
    const first = (await page.textContent('[data-testid="response-id"]')).trim();
    assert.match(first, /^resp_/);

    // Turn 2: the response ends with a function call; its card waits for
    // an output.
    await page.fill('[data-testid="composer-content"]', '[[slow 60ms]] [[call get_weather {"city":"Oslo"}]] weather in Oslo?');
    await submitAndReload('[data-testid="composer-run"]');
    await page.waitForSelector('[data-testid="pending-call"]', { timeout: 30000 });
    await waitBadge("completed");
    assert.equal((await page.textContent('[data-testid="pending-title"]')).trim(), "Waiting for 1 function output");
    const submit = page.locator('[data-testid="submit-outputs"]');
    assert.equal(await submit.isDisabled(), true);
    const words = Array.from({ length: 30 }, (_, i) => `sunny${i}`).join(" ");
    await page.fill('[data-testid="pending-output"]', words);
    assert.equal(await submit.isDisabled(), false);

    // Turn 3: the output goes with the next response, which streams.
    await submitAndReload('[data-testid="submit-outputs"]');
    await watchGrowth();
    await page.waitForFunction(() => window.__growth >= 3, null, { timeout: 30000 });
    await waitBadge("completed");
    await shoot(page, "playground-responses");
    await page.waitForFunction(() => document.querySelectorAll('[data-role="assistant"] [data-testid="message-body"]').length === 2);
    bodies = await page.locator('[data-role="assistant"] [data-testid="message-body"]').allTextContents();
    assert.match(bodies[1], /Tool results: sunny0 .* sunny29/);
    assert.equal(await page.locator('[data-testid="pending-call"]').count(), 0);
    // The conversation: both questions, the call with its output inline.
    assert.equal(await page.locator('[data-role="user"]').count(), 2);
    assert.match(await page.textContent('[data-testid="inline-call"]'), /get_weather/);
    assert.match(await page.textContent('[data-testid="inline-call"] [data-testid="tool-output"]'), /sunny29/);
    // Three responses in the timeline, newest first.
    assert.equal(await page.locator('[data-testid="timeline"] [data-testid="run"]').count(), 3);

    // The same conversation through the API.
    const items = await call("GET", `/conversations/${convID}/items?order=asc&limit=100`);
    assert.deepEqual(items.data.map((it) => it.type),
      ["message", "message", "message", "function_call", "function_call_output", "message"]);
    const out = items.data.find((it) => it.type === "function_call_output");
    assert.equal(out.output, words);
    assert.equal(items.data.find((it) => it.type === "function_call").call_id, out.call_id);
    const resp = await call("GET", `/responses/${first}`);
    assert.equal(resp.conversation.id, convID);
    assert.equal(resp.status, "completed");

    // A response's thread page names the response and opens its
    // conversation in the playground, not a run on that thread.
    const inspect = await page.locator('[data-testid="timeline"] [data-testid="inspect"]').first().getAttribute("href");
    const threadID = inspect.match(/\/threads\/(thread_\w+)\//)[1];
    await page.goto(server.base + `/threads/${threadID}`);
    assert.match(await page.textContent('[data-testid="thread-response"]'), /resp_/);
    await Promise.all([page.waitForURL(/api=responses/), page.click('[data-testid="open-playground"]')]);
    assert.equal(new URL(page.url()).searchParams.get("conversation"), convID);
    assert.equal(await page.locator('[data-testid="timeline"] [data-testid="run"]').count(), 3);
  });
});

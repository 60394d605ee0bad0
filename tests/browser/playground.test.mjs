// Browser tests of the playground and the live thread view: real chromium,
// the real server, the scripted upstream. Streaming is observed in the
// page (a MutationObserver counts how often the answer grows); nothing
// waits for a fixed time.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };
const VIEWER = { email: "viewer@example.com", password: "viewer-password-1" };
const UPSTREAM_KEY = "sk-upstream-secret-do-not-show-4242";
const SLOW = "[[slow 40ms]] [[chunks 40]]";

describe("playground", { skip: missing || false }, () => {
  let server, upstream, browser, admin, call, assistant;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url, ["--upstream-key", UPSTREAM_KEY]);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    admin = await newPage();
    await setUpFirstAdmin(admin, server, ADMIN);
    assistant = await call("POST", "/assistants", {
      model: "gpt-4o-mini", name: "Weather helper", instructions: "Answer briefly.", temperature: 0.7,
      tools: [
        { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } },
        { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } },
      ],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
  });

  async function newPage(opts = {}) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, ...opts });
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
  }

  // watchGrowth counts, in the page, how often the streaming answer's
  // text changes, and marks the document so a page load would show.
  async function watchGrowth(page) {
    await page.evaluate(() => {
      window.__marker = "same page";
      window.__growth = 0;
      const seen = new Set();
      new MutationObserver(() => {
        const el = document.querySelector('[data-testid="message-stream"]');
        if (el && el.textContent && !seen.has(el.textContent.length)) {
          seen.add(el.textContent.length);
          window.__growth++;
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  }

  async function waitBadge(page, status) {
    await page.waitForFunction((s) => document.querySelector('[data-testid="run-badge"]')?.textContent === s, status, { timeout: 30000 });
  }

  // newThread starts a playground thread with a first message (Add only)
  // and returns its id.
  async function newThread(page, text = "Hello there") {
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    await page.fill('[data-testid="composer-content"]', text);
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-add"]')]);
    await page.waitForSelector('[data-testid="thread-id"]');
    return new URL(page.url()).searchParams.get("thread");
  }

  async function runFromComposer(page, text) {
    await page.fill('[data-testid="composer-content"]', text);
    await page.click('[data-testid="composer-run"]');
  }

  test("a run streams into the playground token by token and the timeline fills in", async () => {
    const page = admin;
    const threadID = await newThread(page);
    assert.match(page.url(), new RegExp(`thread=${threadID}`));
    await watchGrowth(page);
    await runFromComposer(page, `${SLOW} stream please`);
    // The composer is off while the run is active.
    await page.waitForFunction(() => document.querySelector("[data-composer-controls]")?.disabled === true);
    await page.waitForSelector('[data-testid="message-stream"]');
    await page.waitForFunction(() => window.__growth >= 3);
    await page.waitForSelector('[data-testid="run-step"][data-type="message_creation"]');
    await shoot(page, "playground", { readme: true });
    await waitBadge(page, "completed");
    assert.equal(await page.evaluate(() => window.__marker), "same page", "the page was reloaded");
    assert.ok(await page.evaluate(() => window.__growth) >= 10, "the answer grew fewer than 10 times");
    await page.waitForFunction(() => document.querySelector("[data-composer-controls]")?.disabled === false);
    const bodies = await page.locator('[data-role="assistant"] [data-testid="message-body"]').allTextContents();
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0].trim().split(/\s+/).length, 40);
    assert.match(await page.textContent('[data-testid="run-usage"]'), /total \d+/);
  });

  test("a run started through the API while the thread page is open appears and streams", async () => {
    const page = admin;
    const thread = await call("POST", "/threads", { messages: [{ role: "user", content: `${SLOW} from the API` }] });
    await page.goto(server.base + `/threads/${thread.id}`);
    await watchGrowth(page);
    await call("POST", `/threads/${thread.id}/runs`, { assistant_id: assistant.id });
    await page.waitForFunction(() => window.__growth >= 3, null, { timeout: 30000 });
    await waitBadge(page, "completed");
    assert.equal(await page.evaluate(() => window.__marker), "same page");
    assert.equal(await page.locator('[data-role="assistant"]').count(), 1);
  });

  test("a reload mid-run resumes and the answer appears exactly once", async () => {
    const page = admin;
    await newThread(page);
    await runFromComposer(page, `${SLOW} reload me`);
    await page.waitForFunction(() => (document.querySelector('[data-testid="message-stream"]')?.textContent || "").length > 10);
    await page.reload();
    await watchGrowth(page);
    await waitBadge(page, "completed");
    const text = await page.locator('[data-role="assistant"] [data-testid="message-body"]').allTextContents();
    assert.equal(text.length, 1);
    assert.equal(text[0].trim().split(/\s+/).length, 40, "words lost or duplicated across the reload");
  });

  test("two parallel function calls answered by hand, in one submission", async () => {
    const page = admin;
    const threadID = await newThread(page);
    await runFromComposer(page, '[[call get_weather {"city":"Oslo"}]] [[call get_time {}]] what now?');
    await waitBadge(page, "requires_action");
    assert.equal(await page.locator('[data-testid="pending-call"]').count(), 2);
    assert.equal((await page.textContent('[data-testid="pending-title"]')).trim(), "Waiting for 2 function outputs");
    const submit = page.locator('[data-testid="submit-outputs"]');
    assert.equal(await submit.isDisabled(), true);
    const boxes = page.locator('[data-testid="pending-output"]');
    await boxes.nth(0).fill('{"temp": 3}');
    assert.equal(await submit.isDisabled(), true, "Submit enabled with a call unanswered");
    await boxes.nth(1).fill('{"time": "12:00"}');
    assert.equal(await submit.isDisabled(), false);
    await submit.click();
    await waitBadge(page, "completed");
    assert.match(await page.textContent('[data-role="assistant"] [data-testid="message-body"]'), /Tool results/);
    assert.equal(await page.locator('[data-testid="inline-tools"]').count(), 1);
    assert.ok(await page.locator('[data-testid="tool-output"]').count() >= 2);
    // Exports carry runs, steps, tool calls and their outputs.
    const exp = await (await page.request.get(server.base + `/threads/${threadID}/export.json`)).json();
    assert.equal(exp.runs.length, 1);
    const calls = exp.run_steps.flatMap((s) => s.step_details.tool_calls || []);
    assert.deepEqual(calls.map((c) => c.function.output).sort(), ['{"temp": 3}', '{"time": "12:00"}']);
    const md = await (await page.request.get(server.base + `/threads/${threadID}/export.md`)).text();
    assert.match(md, /## Run run_\w+ · completed/);
    assert.match(md, /function `get_time`/);
    assert.match(md, /"temp": 3/);
    // The tool calls are in the conversation, between the question and the answer.
    const conv = md.slice(0, md.indexOf("\n# Runs\n"));
    const [q, calls2, answer] = ["what now?", "## tool calls", "Tool results"].map((s) => conv.indexOf(s));
    assert.ok(q >= 0 && calls2 > q && answer > calls2, `the conversation's order: question ${q}, tool calls ${calls2}, answer ${answer}`);
    assert.match(conv.slice(calls2, answer), /"temp": 3/);
  });

  test("cancel mid-stream keeps the partial text", async () => {
    const page = admin;
    await newThread(page);
    await runFromComposer(page, "[[slow 200ms]] [[chunks 60]] cancel me");
    await page.waitForFunction(() => (document.querySelector('[data-testid="message-stream"]')?.textContent || "").length > 12);
    await page.click('[data-testid="run-cancel"]');
    await waitBadge(page, "cancelled");
    const text = await page.textContent('[data-role="assistant"] [data-testid="message-body"]');
    assert.match(text, /^\s*w0 w1 w2 w3/, "the partial answer was dropped");
    await page.waitForFunction(() => document.querySelector("[data-composer-controls]")?.disabled === false);
  });

  test("a failed run shows its last_error, and Retry runs again", async () => {
    const page = admin;
    await newThread(page);
    await runFromComposer(page, "[[status 500 1]] fail once");
    await waitBadge(page, "failed");
    assert.match(await page.textContent('[data-testid="run-error"]'), /server_error|500/);
    await page.click('[data-testid="run-retry"]');
    await waitBadge(page, "completed");
    assert.equal(await page.locator('[data-testid="run"]').count(), 2);
  });

  test("the upstream inspector shows the request with the key redacted", async () => {
    const page = admin;
    await newThread(page);
    await runFromComposer(page, "inspect me");
    await waitBadge(page, "completed");
    assert.ok(await page.locator('[data-testid="exchange"]').count() >= 1, "no upstream exchange recorded");
    const [inspector] = await Promise.all([page.context().waitForEvent("page"), page.click('[data-testid="inspect"] >> nth=0')]);
    await inspector.waitForSelector('[data-testid="exchange-request-body"]');
    const html = await inspector.content();
    assert.ok(!html.includes(UPSTREAM_KEY), "the upstream key is shown");
    assert.match(await inspector.textContent('[data-testid="exchange-request"]'), /Authorization\s*\[redacted\]/);
    assert.match(await inspector.textContent('[data-testid="exchange-request-body"]'), /inspect me/);
    assert.match(await inspector.textContent('[data-testid="exchange-response-body"]'), /You said/);
    await shoot(inspector, "inspector");
    await inspector.close();
  });

  // The pane's overrides as the page shows them.
  async function pane(page) {
    return page.evaluate(() => ({
      temperature: document.querySelector('[data-testid="ov-temperature"]').value,
      instructions: document.querySelector('[data-testid="ov-instructions"]').value,
      toolsOverride: [...document.querySelectorAll('input[name="tool"]')].some((el) => !el.checked),
      tools: [...document.querySelectorAll('input[name="tool"]:checked')].map((el) => el.value),
      toolChoice: document.querySelector('[data-testid="ov-tool-choice"]').value,
    }));
  }
  const query = (page) => page.evaluate(() => Object.fromEntries(
    [...new URL(location.href).searchParams.keys()].map((k) => [k, new URL(location.href).searchParams.getAll(k).join(",")])));

  test("overrides stay in the address: Add and run on a new thread, the next run, a reload and a copied link", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    const entries = await page.evaluate(() => history.length);
    await page.fill('[data-testid="ov-temperature"]', "0.2");
    await page.fill('[data-testid="ov-instructions"]', "Reply like a pirate & be brief.");
    await page.uncheck('input[type="checkbox"][name="tool"][value="get_time"]');
    // The address follows the pane, with no navigation and no new entry.
    assert.deepEqual(await query(page), {
      assistant: assistant.id, instructions: "Reply like a pirate & be brief.", temperature: "0.2",
      tool: "get_weather", tools_override: "1",
    });
    assert.equal(await page.evaluate(() => history.length), entries, "editing the pane added history entries");
    assert.match(await page.getAttribute('[data-testid="new-thread"]', "href"), /temperature=0\.2/);

    await page.fill('[data-testid="composer-content"]', "first");
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-run"]')]);
    const threadID = (await query(page)).thread;
    const want = { temperature: "0.2", instructions: "Reply like a pirate & be brief.", toolsOverride: true, tools: ["get_weather"], toolChoice: "" };
    assert.deepEqual(await pane(page), want, "the overrides were lost after Add and run on a new thread");
    await waitBadge(page, "completed");
    await runFromComposer(page, "second");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="run"]').length === 2 &&
      document.querySelector('[data-testid="run-badge"]')?.textContent === "completed", null, { timeout: 30000 });
    const runs = await call("GET", `/threads/${threadID}/runs`);
    assert.equal(runs.data.length, 2);
    for (const run of runs.data) {
      assert.equal(run.temperature, 0.2);
      assert.equal(run.instructions, "Reply like a pirate & be brief.");
      assert.deepEqual(run.tools.map((t) => t.function.name), ["get_weather"]);
    }

    await page.reload();
    assert.deepEqual(await pane(page), want, "a reload lost the overrides");
    // A copied link, in a fresh tab (no restored form, no tab storage).
    const tab = await page.context().newPage();
    await tab.goto(page.url());
    assert.deepEqual(await pane(tab), want, "a copied link lost the overrides");
    await tab.close();
  });

  test("instructions too long for an address: kept in the tab, and the pane says a link will not carry them", async () => {
    const page = admin;
    const long = "Answer as a careful pirate. ".repeat(100); // 2800 bytes: over the address limit
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    await page.fill('[data-testid="ov-temperature"]', "0.4");
    await page.fill('[data-testid="ov-instructions"]', long);
    let q = await query(page);
    assert.equal(q.instructions, undefined, "the long instructions went into the address");
    assert.equal(q.instructions_omitted, "1");
    assert.match(await page.textContent('[data-testid="ov-instructions-note"]'), /too long for the page's address/);
    await page.fill('[data-testid="composer-content"]', "long one");
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-run"]')]);
    const threadID = (await query(page)).thread;
    assert.equal((await pane(page)).instructions, long, "the tab did not keep the long instructions");
    assert.match(await page.textContent('[data-testid="ov-instructions-note"]'), /Restored from this tab\..*copied link will not carry them/);
    assert.equal((await pane(page)).temperature, "0.4");
    await waitBadge(page, "completed");
    const runs = await call("GET", `/threads/${threadID}/runs`);
    assert.equal(runs.data[0].instructions, long);
    // Another tab has no copy: it says so instead of running silently without them.
    const tab = await page.context().newPage();
    await tab.goto(page.url());
    assert.equal((await pane(tab)).instructions, "");
    assert.match(await tab.textContent('[data-testid="ov-instructions-note"]'), /too long to carry in an address/);
    await tab.close();
  });

  test("switching assistant keeps the overrides that apply and names the ones dropped", async () => {
    const page = admin;
    const other = await call("POST", "/assistants", {
      model: "gpt-4o-mini", name: "Clock only", tools: [{ type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } }],
    });
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    await page.fill('[data-testid="ov-temperature"]', "0.6");
    await page.uncheck('input[type="checkbox"][name="tool"][value="get_time"]');
    await page.selectOption('[data-testid="ov-tool-choice"]', "function:get_weather");
    await Promise.all([page.waitForURL(new RegExp(`assistant=${other.id}`)), page.selectOption('[data-testid="pick-assistant"]', other.id)]);
    const notes = await page.textContent('[data-testid="ov-notes"]');
    await shoot(page, "playground-switched-assistant");
    assert.match(notes, /get_weather/);
    assert.deepEqual(await pane(page), { temperature: "0.6", instructions: "", toolsOverride: true, tools: [], toolChoice: "" });
    // The address now says what the pane shows.
    const q = await query(page);
    assert.equal(q.tool, undefined);
    assert.equal(q.tool_choice, undefined);
    assert.equal(q.temperature, "0.6");
  });

  test("bad values in the address: kept in the pane with a message; a run is refused in place", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${assistant.id}&temperature=abc&tool_choice=bogus`);
    assert.equal(await page.inputValue('[data-testid="ov-temperature"]'), "abc");
    assert.equal(await page.inputValue('[data-testid="ov-tool-choice"]'), "bogus");
    assert.match(await page.textContent('[data-testid="ov-error-temperature"]'), /not a number/);
    assert.match(await page.textContent('[data-testid="ov-error-tool_choice"]'), /bogus/);
    await shoot(page, "playground-bad-overrides");
    await page.fill('[data-testid="composer-content"]', "refuse me");
    await page.click('[data-testid="composer-run"]');
    await page.waitForFunction(() => /temperature/.test(document.querySelector('[data-testid="composer-error"]')?.textContent || ""));
    assert.doesNotMatch(await page.textContent('[data-testid="composer-error"]'), /not a number/, "the field's problem is under the composer");
    assert.match(await page.textContent('[data-testid="ov-error-temperature"]'), /not a number/);
    assert.equal(await page.inputValue('[data-testid="composer-content"]'), "refuse me");
    assert.equal(await page.inputValue('[data-testid="ov-temperature"]'), "abc");
  });

  test("an override typed out of range is refused beside its field, not under the composer", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    await page.fill('[data-testid="ov-temperature"]', "5");
    await page.fill('[data-testid="composer-content"]', "too hot");
    await page.click('[data-testid="composer-run"]');
    const slot = page.locator('[data-testid="ov-error-temperature"]');
    await slot.waitFor({ state: "visible" });
    assert.match(await slot.textContent(), /2/);
    assert.equal(await page.getAttribute('[data-testid="ov-temperature"]', "aria-invalid"), "true");
    // The slot sits with the field, in the settings pane.
    assert.equal(await slot.evaluate((el) => !!el.closest('[data-testid="settings"]')), true);
    assert.doesNotMatch(await page.textContent('[data-testid="composer-error"]'), /at most|maximum|less than/);
    await shoot(page, "playground-field-error");
    // Editing the field clears its mark.
    await page.fill('[data-testid="ov-temperature"]', "1");
    assert.equal(await slot.isHidden(), true);
  });

  test("the tool checkboxes act: an unticked tool is not in the run", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    const box = page.locator('[data-testid="ov-tool-get_weather"]');
    assert.equal(await box.isEnabled(), true);
    await box.uncheck();
    await page.fill('[data-testid="composer-content"]', "no weather please");
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-run"]')]);
    await waitBadge(page, "completed");
    const threadID = new URL(page.url()).searchParams.get("thread");
    const runs = await call("GET", `/threads/${threadID}/runs`);
    assert.deepEqual(runs.data[0].tools.map((t) => t.function.name), ["get_time"], "the unticked tool was sent with the run");
    assert.equal(await page.locator('[data-testid="ov-tool-get_weather"]').isChecked(), false);
    // Ticking it again is the assistant's own list: the address drops the override.
    await page.locator('[data-testid="ov-tool-get_weather"]').check();
    assert.equal(new URL(page.url()).searchParams.has("tools_override"), false);
  });

  test("a viewer can watch a run but not start one", async () => {
    await admin.goto(server.base + "/settings/users");
    await admin.fill("#new-email", VIEWER.email);
    await admin.fill("#new-password", VIEWER.password);
    await admin.selectOption("#new-role", "viewer");
    await admin.click('[data-testid="user-submit"]');
    await admin.waitForSelector(`text=User ${VIEWER.email} created.`);
    const viewer = await newPage();
    await signIn(viewer, VIEWER);
    const thread = await call("POST", "/threads", { messages: [{ role: "user", content: `${SLOW} for the viewer` }] });
    await viewer.goto(server.base + `/playground?thread=${thread.id}`);
    assert.equal(await viewer.locator('[data-testid="composer"]').count(), 0);
    await watchGrowth(viewer);
    await call("POST", `/threads/${thread.id}/runs`, { assistant_id: assistant.id });
    await viewer.waitForFunction(() => window.__growth >= 3, null, { timeout: 30000 });
    await waitBadge(viewer, "completed");
    assert.equal(await viewer.locator('[data-testid="run-cancel"], [data-testid="run-retry"]').count(), 0);
    const res = await viewer.request.post(server.base + "/playground", { form: { content: "hi", action: "run" } });
    assert.equal(res.status(), 403);
    await viewer.context().close();
  });

  test("390 px and dark mode: the thread page fits, screenshots", async () => {
    const phone = await newPage({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
    await signIn(phone, ADMIN);
    const threads = await call("GET", "/threads?limit=1").catch(() => null);
    await phone.goto(server.base + "/threads");
    await phone.click('[data-testid="thread-link"] >> nth=0');
    await phone.waitForSelector('[data-testid="timeline"]');
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the thread page scrolls sideways by ${overflow}px at 390 px`);
    await shoot(phone, "thread-390-dark");
    // The theme toggle (in the folded menu) overrides the system's dark.
    await phone.click('[data-testid="menu-toggle"]');
    await phone.click('[data-testid="theme-toggle"]');
    assert.equal(await phone.evaluate(() => document.documentElement.getAttribute("data-theme")), "light");
    await phone.reload();
    assert.equal(await phone.evaluate(() => document.documentElement.getAttribute("data-theme")), "light");
    await phone.click('[data-testid="menu-toggle"]');
    await phone.click('[data-testid="theme-toggle"]');
    await phone.goto(server.base + "/playground");
    const overflow2 = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow2 <= 0, `the playground scrolls sideways by ${overflow2}px at 390 px`);
    await shoot(phone, "playground-390-new-dark");
    void threads;
    await phone.context().close();
  });
});

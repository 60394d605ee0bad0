// Browser tests of the playground as a working surface: three panes that
// scroll on their own with the composer fixed under the thread, the
// composer's keys and attachments, tool calls that open to show what
// they received and returned, and phones (390 px): the thread first, the
// other panes a tap away, the menu folded, no page wider than the screen.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, seedUsage, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

describe("playground layout", { skip: missing || false }, () => {
  let server, upstream, browser, call, assistant, coder, admin;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    admin = await newPage();
    await setUpFirstAdmin(admin, server, ADMIN);
    assistant = await call("POST", "/assistants", {
      model: "gpt-4o-mini", name: "Weather helper",
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
    });
    coder = await call("POST", "/assistants", { model: "gpt-4o-mini", name: "Coder", tools: [{ type: "code_interpreter" }] });
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

  async function signIn(page) {
    await page.goto(server.base + "/login");
    await page.fill("#email", ADMIN.email);
    await page.fill("#password", ADMIN.password);
    await Promise.all([page.waitForURL(/\/assistants/), page.click('[data-testid="login-submit"]')]);
  }

  async function waitBadge(page, status) {
    await page.waitForFunction((s) => document.querySelector('[data-testid="run-badge"]')?.textContent === s, status, { timeout: 30000 });
  }

  // longThread makes a thread with many messages, so every pane has more
  // than fits.
  async function longThread() {
    const messages = [];
    for (let i = 0; i < 30; i++) messages.push({ role: i % 2 ? "assistant" : "user", content: `message ${i}\n${"words ".repeat(40)}` });
    return call("POST", "/threads", { messages });
  }

  test("three panes scroll on their own and the composer stays in view", async () => {
    const page = admin;
    const thread = await longThread();
    await page.goto(server.base + `/playground?thread=${thread.id}&assistant=${assistant.id}`);
    const m = await page.evaluate(() => {
      const q = (s) => document.querySelector(s);
      const box = (s) => q(s).getBoundingClientRect();
      return {
        pageScrolls: document.documentElement.scrollHeight - window.innerHeight,
        threadOverflow: q('[data-testid="thread-scroll"]').scrollHeight - q('[data-testid="thread-scroll"]').clientHeight,
        composerBottom: box('[data-testid="composer"]').bottom,
        height: window.innerHeight,
        panes: ['[data-testid="settings"]', '[data-testid="thread-pane"]', '[data-testid="timeline-pane"]'].map((s) => Math.round(box(s).left)),
        atBottom: (() => { const el = q('[data-testid="thread-scroll"]'); return el.scrollHeight - el.scrollTop - el.clientHeight < 2; })(),
      };
    });
    assert.ok(m.pageScrolls <= 0, `the page itself scrolls by ${m.pageScrolls}px`);
    assert.ok(m.threadOverflow > 200, "the thread does not overflow its pane (the test needs it to)");
    assert.ok(m.composerBottom <= m.height, `the composer ends at ${m.composerBottom}px, below the window (${m.height})`);
    assert.ok(m.panes[0] < m.panes[1] && m.panes[1] < m.panes[2], `panes side by side: ${m.panes}`);
    assert.ok(m.atBottom, "the thread does not open at its latest message");
    // Scrolling one pane leaves the others where they are.
    const scrolled = await page.evaluate(() => {
      const t = document.querySelector('[data-testid="thread-scroll"]');
      const s = document.querySelector('[data-testid="settings"]');
      t.scrollTop = 0;
      s.scrollTop = 50;
      return { thread: t.scrollTop, settings: s.scrollTop, page: window.scrollY };
    });
    assert.equal(scrolled.thread, 0);
    assert.equal(scrolled.page, 0);
    await shoot(page, "playground-wide");
    await page.emulateMedia({ colorScheme: "dark" });
    await shoot(page, "playground-wide-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  test("Enter adds, Shift+Enter breaks the line, Ctrl+Enter adds and runs", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    const box = page.locator('[data-testid="composer-content"]');
    await box.click();
    await page.keyboard.type("first line");
    await page.keyboard.press("Shift+Enter");
    await page.keyboard.type("    second line");
    assert.equal(await box.inputValue(), "first line\n    second line");
    await Promise.all([page.waitForURL(/thread=thread_/), page.keyboard.press("Enter")]);
    const threadID = new URL(page.url()).searchParams.get("thread");
    let msgs = await call("GET", `/threads/${threadID}/messages?order=asc`);
    assert.equal(msgs.data.length, 1);
    assert.equal(msgs.data[0].content[0].text.value, "first line\n    second line");
    assert.equal((await call("GET", `/threads/${threadID}/runs`)).data.length, 0, "Enter started a run");
    // Shown as typed: the line break and the indentation kept.
    assert.equal(await page.textContent('[data-role="user"] [data-testid="message-body"]'), "first line\n    second line");
    const lines = await page.locator('[data-role="user"] [data-testid="message-body"]').evaluate((el) => el.getClientRects().length && Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)));
    assert.ok(lines >= 2, `the two lines show as ${lines}`);
    await page.locator('[data-testid="composer-content"]').fill("now run");
    await page.locator('[data-testid="composer-content"]').press("Control+Enter");
    await waitBadge(page, "completed");
    msgs = await call("GET", `/threads/${threadID}/messages?order=asc`);
    assert.deepEqual(msgs.data.map((x) => x.role), ["user", "user", "assistant"]);
    assert.equal(await page.inputValue('[data-testid="composer-content"]'), "", "the composer kept the sent text");
  });

  test("the composer attaches files to code_interpreter with upload progress", async () => {
    const page = admin;
    const thread = await call("POST", "/threads", {});
    await page.goto(server.base + `/playground?thread=${thread.id}&assistant=${coder.id}`);
    await page.evaluate(() => {
      window.progress = [];
      new MutationObserver(() => {
        const bar = document.querySelector('[data-testid="composer-progress"]');
        if (bar && !bar.hidden) window.progress.push(Number(bar.getAttribute("value")));
      }).observe(document.body, { attributes: true, subtree: true, attributeFilter: ["value", "hidden"] });
    });
    await page.click('[data-testid="composer-attach"] summary');
    await page.setInputFiles('[data-testid="composer-files"]', [
      { name: "sales.csv", mimeType: "text/csv", buffer: Buffer.from("month,amount\njan,3\n" + "feb,4\n".repeat(400000)) },
    ]);
    await page.fill('[data-testid="composer-content"]', "What is in the file?");
    await page.click('[data-testid="composer-add"]');
    await page.locator('[data-testid="attachment"]').waitFor();
    const seen = await page.evaluate(() => window.progress);
    assert.ok(seen.length > 0 && Math.max(...seen) === 100, `progress seen: ${seen}`);
    const threadID = thread.id;
    const msgs = await call("GET", `/threads/${threadID}/messages`);
    const att = msgs.data[0].attachments;
    assert.equal(att.length, 1);
    assert.deepEqual(att[0].tools, [{ type: "code_interpreter" }]);
    const file = await call("GET", `/files/${att[0].file_id}`);
    assert.equal(file.filename, "sales.csv");
    const shown = page.locator('[data-testid="attachment"]');
    assert.match(await shown.textContent(), /sales\.csv[\s\S]*code_interpreter/);
    // The marker stays inside the message's card.
    const inside = await shown.evaluate((li) => {
      const card = li.closest('[data-testid="message"]').getBoundingClientRect();
      const r = li.getBoundingClientRect();
      return r.left >= card.left && r.right <= card.right && getComputedStyle(li).listStyleType === "none";
    });
    assert.ok(inside, "the attachment sits outside its card");
  });

  test("tool calls open to show code and its output, and arguments and output; no raw call block stays", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${coder.id}`);
    await page.fill('[data-testid="composer-content"]', '[[call code_interpreter {"code":"print(6*7)"}]] compute');
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-run"]')]);
    await waitBadge(page, "completed");
    const call1 = page.locator('[data-testid="inline-call"]').first();
    // Collapsed, the row says what it holds and that it opens.
    assert.match(await call1.locator('[data-testid="call-glimpse"]').textContent(), /print\(6\*7\)/);
    const marker = await call1.locator("summary").evaluate((el) => getComputedStyle(el, "::before").content);
    assert.match(marker, /▸/);
    await call1.locator("summary").click();
    assert.equal(await call1.locator('[data-testid="code-input"]').textContent(), "print(6*7)");
    await call1.locator('[data-testid="code-logs"]').waitFor();
    assert.match(await call1.locator('[data-testid="code-logs"]').textContent(), /42/);
    await shoot(page, "playground-code-call");

    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    await page.fill('[data-testid="composer-content"]', '[[call get_weather {"city":"Oslo"}]] weather?');
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-run"]')]);
    await waitBadge(page, "requires_action");
    await page.fill('[data-testid="pending-output"]', '{"temp": 3}');
    assert.equal((await page.textContent('[data-testid="pending-title"]')).trim(), "Waiting for 1 function output");
    await page.click('[data-testid="submit-outputs"]');
    await waitBadge(page, "completed");
    const fn = page.locator('[data-testid="inline-call"]').first();
    assert.match(await fn.locator('[data-testid="call-glimpse"]').textContent(), /Oslo.*→.*temp/);
    await fn.locator("summary").click();
    assert.match(await fn.locator('[data-testid="tool-arguments"]').textContent(), /Oslo/);
    assert.match(await fn.locator('[data-testid="tool-output"]').textContent(), /"temp": 3/);
    // The timeline's tool_calls step shows the call once, not a raw block under its Output.
    await page.locator('[data-testid="run-step"][data-type="tool_calls"] summary').first().click();
    assert.equal(await page.locator('[data-testid="streaming-args"]').count(), 0, "the streamed-arguments block stayed");
  });

  // uploadFile stores a file through the API.
  async function uploadFile(name, text) {
    const f = new FormData();
    f.append("purpose", "assistants");
    f.append("file", new Blob([text]), name);
    const res = await fetch(server.base + "/v1/files", { method: "POST", headers: { Authorization: "Bearer sk-browser-test-0123456789abcdef" }, body: f });
    return res.json();
  }

  test("pickers, not ids: models from the upstream, vector stores and files chosen from lists, upload in place, use a store with an assistant", async () => {
    const page = admin;
    const manual = await uploadFile("pump-manual.txt", "Replace the gasket every spring. ".repeat(50));
    const pumps = await call("POST", "/vector_stores", { name: "Pump manuals", file_ids: [manual.id] });
    await call("POST", "/vector_stores", { name: "Holiday policies" });
    // A new assistant's model is one the upstream serves.
    await page.goto(server.base + "/assistants/new");
    assert.equal(await page.inputValue("#model"), "fake-model");

    const helper = await call("POST", "/assistants", { model: "fake-model", name: "Picker target" });
    await page.goto(server.base + `/assistants/${helper.id}`);
    const options = page.locator('[data-testid="vs-option"]');
    assert.ok(await options.count() >= 2);
    await page.fill('[data-testid="vs-filter"]', "pump");
    assert.equal(await page.locator('[data-testid="vs-option"]:visible').count(), 1, "the filter does not narrow the list");
    const pumpOption = page.locator('[data-testid="vs-option"]', { hasText: "Pump manuals" });
    assert.match(await pumpOption.textContent(), /completed|in_progress/);
    await pumpOption.locator("input").check();
    // Upload a code file in place: it joins the list, ticked.
    await page.setInputFiles('[data-testid="code-file-upload"]', [{ name: "numbers.csv", mimeType: "text/csv", buffer: Buffer.from("n\n1\n2\n") }]);
    const fresh = page.locator('[data-testid="code-file-picker"] label', { hasText: "numbers.csv" });
    await fresh.waitFor();
    assert.equal(await fresh.locator("input").isChecked(), true);
    await page.check('[data-testid="tool-code-interpreter"]');
    await page.check('[data-testid="tool-file-search"]');
    await shoot(page, "assistant-pickers");
    await Promise.all([page.waitForURL(new RegExp(`/assistants/${helper.id}$`)), page.click('[data-testid="save-assistant"]')]);
    const saved = await call("GET", `/assistants/${helper.id}`);
    assert.deepEqual(saved.tool_resources.file_search.vector_store_ids, [pumps.id]);
    const codeFiles = saved.tool_resources.code_interpreter.file_ids;
    assert.equal(codeFiles.length, 1);
    assert.equal((await call("GET", `/files/${codeFiles[0]}`)).filename, "numbers.csv");

    // A store's page: use it with an assistant.
    await page.goto(server.base + `/vector_stores/${pumps.id}`);
    await page.selectOption('[data-testid="vs-use-assistant"]', coder.id);
    await Promise.all([page.waitForURL(new RegExp(`/vector_stores/${pumps.id}$`)), page.click('[data-testid="vs-use-submit"]')]);
    const used = await call("GET", `/assistants/${coder.id}`);
    assert.deepEqual(used.tool_resources.file_search.vector_store_ids, [pumps.id]);
    assert.ok(used.tools.some((t) => t.type === "file_search"), "file_search was not turned on");
    assert.match(await page.textContent('[data-testid="vs-use"]'), /Coder/);
    // Files: "Used by" names the store.
    await page.goto(server.base + "/files");
    const row = page.locator('[data-testid="file-row"]', { hasText: "pump-manual.txt" });
    assert.equal((await row.locator('[data-testid="file-used-by-store"]').textContent()).trim(), "Pump manuals");
  });

  test("compare: one thread against two configurations, both streaming, with tokens and time; keep the better one", async () => {
    const page = admin;
    await page.goto(server.base + `/playground?assistant=${assistant.id}`);
    await page.fill('[data-testid="composer-content"]', "The question so far");
    await Promise.all([page.waitForURL(/thread=thread_/), page.click('[data-testid="composer-add"]')]);
    const source = new URL(page.url()).searchParams.get("thread");
    // Unsaved edits in the pane become side B (the link follows the pane).
    await page.fill('[data-testid="ov-model"]', "fake-model-2");
    assert.match(await page.getAttribute('[data-testid="open-compare"]', "href"), /model=fake-model-2/);
    await Promise.all([page.waitForURL(/\/playground\/compare\?/), page.click('[data-testid="open-compare"]')]);
    assert.equal(await page.inputValue('[data-testid="compare-model-b"]'), "fake-model-2");
    assert.equal(await page.inputValue('[data-testid="compare-model-a"]'), "");
    await page.fill('[data-testid="compare-content"]', "[[slow 40ms]] [[chunks 30]] compare me");
    await Promise.all([page.waitForURL(/\/playground\/compare\?a=thread_\w+&b=thread_/), page.click('[data-testid="compare-run"]')]);
    // Both columns stream: each answer grows in the page.
    await page.evaluate(() => {
      window.__grew = { a: new Set(), b: new Set() };
      new MutationObserver(() => {
        for (const k of ["a", "b"]) {
          const el = document.querySelector(`[data-testid="compare-${k}"] [data-testid="message-stream"]`);
          if (el && el.textContent) window.__grew[k].add(el.textContent.length);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.waitForFunction(() => window.__grew.a.size >= 3 && window.__grew.b.size >= 3, null, { timeout: 30000 });
    for (const k of ["a", "b"]) {
      await page.waitForFunction((k) => document.querySelector(`[data-testid="compare-${k}"] [data-testid="run-badge"]`)?.textContent === "completed", k, { timeout: 30000 });
    }
    const stats = await page.locator('[data-testid="run-stats"]').allTextContents();
    assert.equal(stats.length, 2);
    for (const s of stats) assert.match(s, /[1-9]\d* tokens · \d+s/);
    const q = new URL(page.url()).searchParams;
    const [forkA, forkB] = [q.get("a"), q.get("b")];
    const runsA = await call("GET", `/threads/${forkA}/runs`);
    const runsB = await call("GET", `/threads/${forkB}/runs`);
    assert.equal(runsA.data[0].model, "gpt-4o-mini");
    assert.equal(runsB.data[0].model, "fake-model-2");
    const msgsB = await call("GET", `/threads/${forkB}/messages?order=asc`);
    assert.equal(msgsB.data[0].content[0].text.value, "The question so far", "the fork lacks the source thread's messages");
    assert.equal((await call("GET", `/threads/${source}/messages`)).data.length, 1, "the source thread changed");
    await shoot(page, "compare");
    // Keep B: the playground continues on it, A is gone.
    await Promise.all([page.waitForURL(new RegExp(`/playground\\?.*thread=${forkB}`)), page.click('[data-testid="keep-b"]')]);
    const gone = await fetch(server.base + `/v1/threads/${forkA}`, { headers: { Authorization: "Bearer sk-browser-test-0123456789abcdef", "OpenAI-Beta": "assistants=v2" } });
    assert.equal(gone.status, 404);
  });

  test("390 px: the thread first, settings and timeline a tap away, the menu folded, no page wider than the screen", async () => {
    const phone = await newPage({ viewport: { width: 390, height: 844 }, colorScheme: "dark", hasTouch: true, isMobile: true });
    await signIn(phone);
    const thread = await longThread();
    await phone.goto(server.base + `/playground?thread=${thread.id}&assistant=${assistant.id}`);
    const visible = (id) => phone.locator(`[data-testid="${id}"]`).isVisible();
    assert.equal(await visible("thread-pane"), true);
    assert.equal(await visible("settings"), false);
    assert.equal(await visible("timeline-pane"), false);
    assert.equal(await visible("composer-content"), true);
    const composer = await phone.locator('[data-testid="composer"]').boundingBox();
    assert.ok(composer.y + composer.height <= 844, "the composer is below the screen");
    // The menu is folded behind its button.
    assert.equal(await visible("nav-threads"), false);
    await phone.click('[data-testid="menu-toggle"]');
    assert.equal(await visible("nav-threads"), true);
    await phone.click('[data-testid="menu-toggle"]');
    await shoot(phone, "playground-390-dark");
    await phone.click('[data-testid="tab-settings"]');
    assert.equal(await visible("settings"), true);
    assert.equal(await visible("thread-pane"), false);
    await shoot(phone, "playground-390-settings");
    await phone.click('[data-testid="tab-timeline"]');
    assert.equal(await visible("timeline-pane"), true);
    await phone.click('[data-testid="tab-thread"]');
    assert.equal(await visible("thread-pane"), true);

    // Every page fits the screen's width.
    const file = await fetch(server.base + "/v1/files", { method: "POST", headers: { Authorization: `Bearer sk-browser-test-0123456789abcdef` },
      body: (() => { const f = new FormData(); f.append("purpose", "assistants"); f.append("file", new Blob(["a long line ".repeat(50)]), "a-file-with-a-rather-long-name-for-a-phone-screen.txt"); return f; })() }).then((r) => r.json());
    const vs = await call("POST", "/vector_stores", { name: "Manuals with a long name for a small screen", file_ids: [file.id] });
    // The usage page with a chart and a table, and a service account.
    seedUsage(server, { model: "a-fine-tuned-model-with-a-rather-long-name-2026-01-01", requests: 12, input: 123456789, output: 98765432 });
    seedUsage(server, { model: "gpt-4o-mini", requests: 3, input: 40, output: 10 });
    await phone.goto(server.base + "/settings/service_accounts");
    await phone.fill("#sa-name", "a service account with a long name for a phone");
    await phone.click('[data-testid="sa-create"]');
    await phone.waitForSelector('[data-testid="new-sa-secret"]');
    // The project settings page with a limited model and an upstream of its own.
    await phone.goto(server.base + "/settings/project");
    await phone.fill('[data-testid="limit-model-input"]', "a-fine-tuned-model-with-a-rather-long-name-2026-01-01");
    await phone.fill('[data-testid="limit-new-requests"]', "600");
    await Promise.all([phone.waitForURL(/\/settings\/project$/), phone.click('[data-testid="limit-add"]')]);
    await phone.fill('[data-testid="upstream-url"]', "https://a-provider-with-a-long-host-name.example.com/openai/deployments/v1");
    await phone.fill('[data-testid="upstream-key"]', "sk-a-project-upstream-key-0123456789");
    await Promise.all([phone.waitForURL(/\/settings\/project$/), phone.click('[data-testid="upstream-save"]')]);
    await phone.waitForSelector('[data-testid="upstream-remove"]');
    const pages = ["/assistants", "/assistants/new", `/assistants/${assistant.id}`, `/assistants/${assistant.id}/history`, "/playground", `/playground?thread=${thread.id}`,
      "/threads", `/threads/${thread.id}`, "/files", "/vector_stores", `/vector_stores/${vs.id}`, "/settings/keys", "/settings/users", "/settings/account",
      "/settings/system", "/playground?api=responses", "/usage", "/settings/members", "/settings/service_accounts", "/settings/projects", "/settings/project"];
    for (const path of pages) {
      await phone.goto(server.base + path);
      const over = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (over > 0) await shoot(phone, "overflow" + path.replace(/[^a-z0-9]+/gi, "-"));
      assert.ok(over <= 0, `${path} is ${over}px wider than the 390 px screen`);
    }
    // Tables turn into stacked rows with their actions on screen.
    for (const [path, action] of [["/files", "file-delete"], ["/assistants", "assistant-duplicate"], ["/settings/keys", "key-revoke"]]) {
      await phone.goto(server.base + path);
      const btn = phone.locator(`[data-testid="${action}"]`).first();
      if (!(await btn.count())) continue;
      const b = await btn.boundingBox();
      assert.ok(b && b.x >= 0 && b.x + b.width <= 390, `${path}: ${action} is off screen (${JSON.stringify(b)})`);
      const head = await phone.locator("table.stack thead").first().boundingBox();
      assert.ok(!head || head.height <= 1, `${path}: the table's header row still shows`);
    }
    await phone.goto(server.base + "/files");
    await shoot(phone, "files-390-dark");
    await phone.goto(server.base + "/settings/system");
    await shoot(phone, "system-390-dark");
    await phone.goto(server.base + "/usage");
    await shoot(phone, "usage-390-dark");
    await phone.goto(server.base + "/settings/project");
    await shoot(phone, "project-settings-390-dark");
    await phone.context().close();
  });
});

// The project settings page in a real browser: an owner of the Default
// project (not an admin of the server) allows one of the upstream's models
// on the page, and the API then refuses an assistant and a run with
// another model with 400 naming it; the page's rate limit and upstream
// forms answer in place.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  API_KEY, api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };
const OWNER = { email: "olga@example.com", password: "owner-password-1" };

describe("project settings", { skip: missing || false }, () => {
  let server, upstream, browser, admin, owner, call;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    admin = await newPage();
    await setUpFirstAdmin(admin, server, ADMIN);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
  });

  async function newPage(opts = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
    const page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    page.on("pageerror", (err) => { throw err; });
    return page;
  }

  // post sends a /v1 request with the server's key (of the Default
  // project) and resolves with the status and the body.
  async function post(path, body) {
    const res = await fetch(server.base + "/v1" + path, {
      method: "POST",
      headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json", "OpenAI-Beta": "assistants=v2" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  test("an owner makes an allow list and the API refuses other models", async () => {
    // The admin makes Olga an account and an owner of the Default project.
    await admin.goto(server.base + "/settings/users");
    await admin.fill("#new-email", OWNER.email);
    await admin.fill("#new-password", OWNER.password);
    await admin.selectOption("#new-role", "viewer");
    await admin.click('[data-testid="user-submit"]');
    await admin.waitForSelector(`text=User ${OWNER.email} created.`);
    await admin.goto(server.base + "/settings/members");
    await admin.fill('[data-testid="member-email-input"]', OWNER.email);
    await admin.selectOption('[data-testid="member-role"]', "owner");
    await Promise.all([admin.waitForURL(/\/settings\/members$/), admin.click('[data-testid="member-add"]')]);
    await admin.waitForSelector(`text=${OWNER.email} is now owner.`);

    // Before: every model.
    assert.equal((await post("/assistants", { model: "fake-model-2" })).status, 200);

    owner = await newPage();
    await owner.goto(server.base + "/login");
    await owner.fill("#email", OWNER.email);
    await owner.fill("#password", OWNER.password);
    await Promise.all([owner.waitForURL(/\/assistants/), owner.click('[data-testid="login-submit"]')]);
    assert.equal(await owner.textContent('[data-testid="current-role"]'), "owner");
    await owner.click('[data-testid="nav-project-settings"]');
    await owner.waitForURL(/\/settings\/project$/);
    assert.equal(await owner.isChecked('[data-testid="mode-all"]'), true);
    // The upstream's models are offered to tick.
    const offered = await owner.locator('[data-testid="known-models"] input[name="model"]').evaluateAll((xs) => xs.map((x) => x.value));
    assert.deepEqual(offered, ["fake-model", "fake-model-2"]);
    await owner.check('[data-testid="mode-allow_list"]');
    await owner.check('[data-testid="known-models"] input[value="fake-model"]');
    await Promise.all([owner.waitForURL(/\/settings\/project$/), owner.click('[data-testid="models-save"]')]);
    await owner.waitForSelector("text=Saved the project's models.");
    assert.equal(await owner.isChecked('[data-testid="mode-allow_list"]'), true);
    assert.equal(await owner.isChecked('[data-testid="known-models"] input[value="fake-model"]'), true);
    assert.equal(await owner.isChecked('[data-testid="known-models"] input[value="fake-model-2"]'), false);

    // An assistant with another model is refused, naming it.
    let res = await post("/assistants", { model: "fake-model-2", name: "not allowed" });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.param, "model");
    assert.match(res.body.error.message, /'fake-model-2'/);
    // The allowed model works; a run asking for another one is refused.
    const asst = await call("POST", "/assistants", { model: "fake-model", name: "allowed" });
    const thread = await call("POST", "/threads", { messages: [{ role: "user", content: "hello" }] });
    res = await post(`/threads/${thread.id}/runs`, { assistant_id: asst.id, model: "fake-model-2" });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.match(res.body.error.message, /'fake-model-2'/);
    res = await post("/threads/runs", { assistant_id: asst.id, model: "gpt-4o" });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.match(res.body.error.message, /'gpt-4o'/);

    // Code interpreter switched off: an assistant asking for it is refused.
    await owner.uncheck('[data-testid="tool-code-interpreter"]');
    await Promise.all([owner.waitForURL(/\/settings\/project$/), owner.click('[data-testid="tools-save"]')]);
    await owner.waitForSelector("text=Saved the project's tools.");
    assert.equal(await owner.isChecked('[data-testid="tool-code-interpreter"]'), false);
    assert.equal(await owner.isChecked('[data-testid="tool-file-search"]'), true);
    res = await post("/assistants", { model: "fake-model", tools: [{ type: "file_search" }, { type: "code_interpreter" }] });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "tool_not_allowed");
    assert.equal(res.body.error.param, "tools[1].type");
    await shoot(owner, "project-settings");
  });

  test("rate limits and the upstream are answered in place", async () => {
    await owner.goto(server.base + "/settings/project");
    assert.equal(await owner.locator('[data-testid="limits-empty"]').count(), 1);
    await owner.fill('[data-testid="limit-model-input"]', "fake-model");
    await owner.fill('[data-testid="limit-new-requests"]', "60");
    await owner.fill('[data-testid="limit-new-tokens"]', "5000");
    await Promise.all([owner.waitForURL(/\/settings\/project$/), owner.click('[data-testid="limit-add"]')]);
    await owner.waitForSelector("text=Saved the project's rate limits on fake-model.");
    assert.deepEqual(await owner.locator('[data-testid="limit-model"]').allInnerTexts(), ["fake-model"]);
    // Edit the row in place.
    await owner.fill('[data-testid="limit-requests-input"]', "30");
    await Promise.all([owner.waitForURL(/\/settings\/project$/), owner.click('[data-testid="limit-save"]')]);
    assert.equal(await owner.inputValue('[data-testid="limit-requests-input"]'), "30");
    assert.equal(await owner.inputValue('[data-testid="limit-tokens-input"]'), "5000");

    // A base URL that is not http(s) is refused in place with the input kept
    // (the browser's own URL check is bypassed to reach the server's).
    await owner.locator('[data-testid="upstream-form"]').evaluate((f) => { f.noValidate = true; });
    await owner.fill('[data-testid="upstream-url"]', "ftp://llm.example.com/v1");
    await owner.fill('[data-testid="upstream-key"]', "sk-typed-but-refused");
    await owner.click('[data-testid="upstream-save"]');
    await owner.waitForSelector('[data-testid="upstream-errors"]');
    assert.match(await owner.innerText('[data-testid="upstream-errors"]'), /http\(s\) URL/);
    assert.equal(await owner.inputValue('[data-testid="upstream-url"]'), "ftp://llm.example.com/v1");
    assert.equal(await owner.inputValue('[data-testid="upstream-key"]'), "", "the refused key is sent back");

    // Removing the row leaves no limit.
    await owner.goto(server.base + "/settings/project");
    await Promise.all([owner.waitForURL(/\/settings\/project$/), owner.click('[data-testid="limit-remove"]')]);
    assert.equal(await owner.locator('[data-testid="limits-empty"]').count(), 1);
    await owner.emulateMedia({ colorScheme: "dark" });
    await shoot(owner, "project-settings-dark");
    await owner.emulateMedia({ colorScheme: "light" });
  });
});

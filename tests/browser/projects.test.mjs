// Projects in a real browser: an admin makes a second project, switches to
// it with the header's switcher and gives it keys and a service account;
// a viewer of the Default project sees none of that project (its switcher,
// keys, service accounts, members, usage, assistants, threads, search) and
// cannot enter it; the usage
// page charts each project's own usage as stacked bars.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  binary, browserMissing, chromiumArgs, chromiumPath, seedUsage, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };
const VIEWER = { email: "vera@example.com", password: "viewer-password-1" };

describe("projects", { skip: missing || false }, () => {
  let server, upstream, browser, admin, projectB, bSecret;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
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

  async function signIn(page, who) {
    await page.goto(server.base + "/login");
    await page.fill("#email", who.email);
    await page.fill("#password", who.password);
    await Promise.all([page.waitForURL(/\/assistants/), page.click('[data-testid="login-submit"]')]);
  }

  const options = (page) => page.locator('[data-testid="project-select"] option').allInnerTexts();
  const selected = (page) => page.locator('[data-testid="project-select"] option:checked').innerText();

  // Picking a project in the switcher switches at once (its button is
  // only for browsers without script).
  async function switchTo(page, name) {
    assert.equal(await page.locator('[data-testid="project-switch"]').isVisible(), false, "the switcher's button shows");
    await Promise.all([page.waitForNavigation(), page.selectOption('[data-testid="project-select"]', { label: name })]);
    await page.waitForSelector(`text=You are now working in ${name}.`);
  }

  test("an admin creates a project and switches to it", async () => {
    await admin.click('[data-testid="nav-projects"]');
    await admin.waitForURL(/\/settings\/projects$/);
    await admin.fill("#project-name", "Team B");
    await Promise.all([admin.waitForURL(/\/settings\/projects$/), admin.click('[data-testid="project-create"]')]);
    await admin.waitForSelector("text=Project Team B created.");
    const row = admin.locator('[data-testid="project-row"]').nth(1);
    projectB = await row.getAttribute("data-project-id");
    assert.match(projectB, /^proj_/);
    assert.deepEqual(await options(admin), ["Default project", "Team B"]);
    assert.equal(await selected(admin), "Default project");
    // The Default project cannot be archived: no button for it.
    assert.equal(await admin.locator('[data-testid="project-row"]').first().locator('[data-testid="project-archive"]').count(), 0);
    await shoot(admin, "projects");

    // From a thread list, switching returns to the thread list of Team B.
    await admin.goto(server.base + "/threads");
    await switchTo(admin, "Team B");
    assert.match(admin.url(), /\/threads$/);
    assert.equal(await selected(admin), "Team B");
    assert.equal(await admin.textContent('[data-testid="current-role"]'), "admin");

    // Team B gets a read-only key with an expiry and a service account.
    await admin.click('[data-testid="nav-keys"]');
    await admin.fill("#key-name", "b-deploy-key");
    await admin.fill("#key-expires", "2099-12-31");
    await admin.check('[data-testid="key-read-only"]');
    await admin.click('[data-testid="key-create"]');
    await admin.waitForSelector('[data-testid="new-key-secret"]');
    const keyRow = admin.locator('[data-testid="key-row"]').first();
    assert.equal(await keyRow.locator('[data-testid="key-name"]').innerText(), "b-deploy-key");
    assert.equal(await keyRow.locator('[data-testid="key-expires-at"]').innerText(), "2100-01-01 00:00 UTC");
    assert.equal(await keyRow.locator('[data-testid="key-access"]').innerText(), "read-only");
    await admin.click('[data-testid="nav-service-accounts"]');
    await admin.fill("#sa-name", "b-robot");
    await admin.click('[data-testid="sa-create"]');
    bSecret = (await admin.textContent('[data-testid="new-sa-secret"]')).trim();
    assert.match(bSecret, /^sk-/);
    await admin.goto(server.base + "/settings/service_accounts");
    assert.equal(await admin.locator('[data-testid="new-sa-secret"]').count(), 0, "the key is shown again");
    assert.deepEqual(await admin.locator('[data-testid="sa-name"]').allInnerTexts(), ["b-robot"]);
    // The service account's key speaks for Team B.
    const res = await fetch(server.base + "/v1/assistants", { headers: { Authorization: `Bearer ${bSecret}`, "OpenAI-Project": projectB } });
    assert.equal(res.status, 200);
  });

  test("a viewer of the Default project sees nothing of Team B", async () => {
    // Back in the Default project, the admin adds a viewer there.
    await switchTo(admin, "Default project");
    await admin.goto(server.base + "/settings/users");
    await admin.fill("#new-email", VIEWER.email);
    await admin.fill("#new-password", VIEWER.password);
    await admin.selectOption("#new-role", "viewer");
    await admin.click('[data-testid="user-submit"]');
    await admin.waitForSelector(`text=User ${VIEWER.email} created.`);
    seedUsage(server, { project: projectB, model: "b-secret-model", requests: 3, input: 100, output: 50 });

    const viewer = await newPage();
    await signIn(viewer, VIEWER);
    assert.deepEqual(await options(viewer), ["Default project"]);
    assert.equal(await viewer.textContent('[data-testid="current-role"]'), "viewer");
    assert.equal(await viewer.locator('[data-testid="nav-projects"]').count(), 0);
    for (const [path, secret] of [["/settings/keys", "b-deploy-key"], ["/settings/service_accounts", "b-robot"], ["/settings/members", "Team B"], ["/usage", "b-secret-model"]]) {
      await viewer.goto(server.base + path);
      const text = await viewer.locator("main").innerText();
      assert.ok(!text.includes(secret), `${path} shows ${secret} of Team B`);
    }
    // Team B's objects, made through its service account's key, are
    // nowhere in the Default project: not in lists, not in search, and
    // their own pages are not found.
    const api = async (path, body) => {
      const res = await fetch(server.base + "/v1" + path, {
        method: "POST", body: JSON.stringify(body),
        headers: { Authorization: `Bearer ${bSecret}`, "Content-Type": "application/json", "OpenAI-Beta": "assistants=v2" },
      });
      const text = await res.text();
      assert.equal(res.status, 200, `POST ${path}: ${text}`);
      return JSON.parse(text);
    };
    const bAsst = await api("/assistants", { model: "gpt-4o", name: "b-secret-assistant" });
    const bThread = await api("/threads", { messages: [{ role: "user", content: "b-secret-message about gaskets" }] });
    for (const path of ["/assistants", "/threads", "/threads?q=gaskets", "/assistants?q=assistant"]) {
      await viewer.goto(server.base + path);
      const text = await viewer.locator("main").innerText();
      assert.ok(!text.includes("b-secret"), `${path} shows Team B's objects: ${text}`);
    }
    for (const path of [`/assistants/${bAsst.id}`, `/threads/${bThread.id}`]) {
      const res = await viewer.goto(server.base + path);
      assert.equal(res.status(), 404, `${path} of Team B answers ${res.status()}`);
      assert.ok(!(await viewer.locator("main").innerText()).includes("b-secret"), `${path} shows Team B's object`);
    }
    // The admin, in Team B, sees them.
    await switchTo(admin, "Team B");
    await admin.goto(server.base + "/assistants");
    assert.ok((await admin.locator("main").innerText()).includes("b-secret-assistant"), "Team B's assistant is missing in Team B");
    await switchTo(admin, "Default project");

    await viewer.goto(server.base + "/settings/members");
    const members = await viewer.locator('[data-testid="member-email"]').allInnerTexts();
    assert.equal(members.length, 2, `the Default project's members: ${members}`);
    assert.match(members[0], new RegExp(`^${ADMIN.email}\\s+server admin$`));
    assert.match(members[1], new RegExp(`^${VIEWER.email}\\s+you$`));
    assert.equal(await viewer.locator('[data-testid="member-form"]').count(), 0);
    // Asking the server for Team B, with a valid form and token, is refused
    // as if it did not exist, and the viewer stays where they were.
    const status = await viewer.evaluate(async (id) => {
      const token = document.querySelector('input[name="csrf_token"]').value;
      const res = await fetch("/projects/switch", { method: "POST", body: new URLSearchParams({ csrf_token: token, project_id: id, next: "/usage" }), redirect: "manual" });
      return res.status;
    }, projectB);
    assert.equal(status, 404);
    await viewer.goto(server.base + "/usage");
    assert.equal(await selected(viewer), "Default project");
    await viewer.context().close();
  });

  test("the usage page charts each project's own usage", async () => {
    seedUsage(server, { model: "gpt-4o", requests: 2, input: 300, output: 100 });
    seedUsage(server, { model: "gpt-4o-mini", requests: 1, input: 40, output: 10 });
    await admin.click('[data-testid="nav-usage"]');
    await admin.waitForURL(/\/usage$/);
    const chart = admin.locator('[data-testid="usage-chart-tokens"]');
    assert.equal(await chart.locator('[data-testid="usage-total"]').innerText(), "850");
    const bars = await chart.locator('[data-testid="usage-bar"]').evaluateAll((rs) => rs.map((r) => {
      const b = r.getBoundingClientRect();
      return { model: r.dataset.model, value: Number(r.dataset.value), height: b.height, bottom: b.bottom, width: b.width };
    }));
    assert.deepEqual(bars.map((b) => [b.model, b.value]), [["gpt-4o", 800], ["gpt-4o-mini", 50]]);
    // Drawn to scale and stacked: the segments share a column, one on the
    // other, their heights in proportion to their tokens.
    assert.ok(bars[0].height > 0 && bars[0].width > 0, "the bar is not drawn");
    const ratio = bars[0].height / bars[1].height;
    assert.ok(Math.abs(ratio - 16) < 16 * 0.05, `heights ${bars[0].height} and ${bars[1].height} are not 800:50`);
    assert.ok(Math.abs(bars[1].bottom - (bars[0].bottom - bars[0].height)) < 1, "the second model's segment does not sit on the first's");
    const rows = await admin.locator('[data-testid="usage-row"]').evaluateAll((rs) => rs.map((r) =>
      [...r.querySelectorAll("td")].map((td) => td.textContent.trim())));
    assert.deepEqual(rows.map((r) => r.slice(1)), [["gpt-4o", "2", "600", "200"], ["gpt-4o-mini", "1", "40", "10"]]);
    assert.ok(!(await admin.locator("main").innerText()).includes("b-secret-model"), "Team B's usage shows in the Default project");
    await shoot(admin, "usage", { readme: true });
    await admin.emulateMedia({ colorScheme: "dark" });
    await shoot(admin, "usage-dark");
    await admin.emulateMedia({ colorScheme: "light" });

    // Team B's page has its own.
    await switchTo(admin, "Team B");
    assert.match(admin.url(), /\/usage$/);
    const b = admin.locator('[data-testid="usage-chart-requests"]');
    assert.equal(await b.locator('[data-testid="usage-total"]').innerText(), "3");
    assert.deepEqual(await b.locator('[data-testid="usage-bar"]').evaluateAll((rs) => rs.map((r) => r.dataset.model)), ["b-secret-model"]);
  });
});

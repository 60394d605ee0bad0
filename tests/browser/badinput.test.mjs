// Walks every form of the web app with bad input (overlong text, NUL
// bytes, markup, malformed JSON, impossible numbers and dates) and checks
// that no answer is a 5xx and that a refused form keeps what was typed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };
// Forms whose purpose is to destroy or leave, not to take input.
const SKIP = /\/(delete|revoke|logout|duplicate)$/;

// badValue is what a careless or hostile user types into a field.
function badValue(type, name) {
  const long = "x".repeat(70000) + "\u0000<script>alert(1)</script>";
  switch (type) {
    case "email": return "not-an-email\u0000" + "y".repeat(400);
    case "password": return "p".repeat(5000);
    case "number": return "1e999";
    case "date": return "";
    case "url": return "javascript:alert(1)";
    case "search": return "\u0000 AND \"unterminated";
  }
  if (/json|schema|parameters|metadata|output/i.test(name)) return "{not json" + long;
  return long;
}

describe("every form with bad input", { skip: missing || false }, () => {
  let server, upstream, browser, context, page, call, assistant, thread;
  const pages = () => [
    "/assistants/new", `/assistants/${assistant.id}`, "/assistants", "/threads", `/threads/${thread.id}`,
    `/playground?thread=${thread.id}`, "/playground", "/files", "/settings/keys", "/settings/users", "/settings/account",
    "/settings/service_accounts", "/settings/members", "/settings/projects", "/settings/project",
  ];

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
    call = api(server.base);
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    context = await browser.newContext();
    page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    await setUpFirstAdmin(page, server, ADMIN);
    assistant = await call("POST", "/assistants", { model: "gpt-4o-mini", name: "Form target",
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }] });
    thread = await call("POST", "/threads", { messages: [{ role: "user", content: "hello" }] });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.stop();
  });

  // open navigates to path; a navigation the last form started may still
  // be landing, in which case the first attempt is interrupted.
  // Each form gets a fresh tab, so a navigation the last form started
  // cannot interrupt the next one.
  async function open(path) {
    // The old tab is closed without waiting: closing a tab that is still
    // landing a form's answer can hang in Chromium, and nothing below
    // needs it gone.
    if (page) page.close().catch(() => {});
    page = await context.newPage();
    page.setDefaultTimeout(10000);
    page.on("dialog", (d) => d.accept());
    if (process.env.DEBUG_FORMS) console.log("open", path);
    return page.goto(server.base + path);
  }

  test("no 5xx, and refused input is kept", { timeout: 300_000 }, async () => {
    const failures = [];
    let walked = 0;
    for (const path of pages()) {
      await open(path);
      const count = await page.locator("main form").count();
      for (let i = 0; i < count; i++) {
        await open(path);
        const form = page.locator("main form").nth(i);
        const action = (await form.getAttribute("action")) || path;
        const method = ((await form.getAttribute("method")) || "get").toLowerCase();
        if (SKIP.test(action)) continue;
        // Fill every field the user can type into, in the form or tied
        // to it with form="…".
        const typed = await form.evaluate((f, src) => {
          const badValue = new Function("return " + src)();
          const out = {};
          const fields = [...f.elements].filter((el) => (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" &&
            ["text", "email", "password", "number", "search", "url", "date", ""].includes(el.type))) && !el.disabled && !el.hidden && el.name);
          for (const el of fields) {
            el.removeAttribute("maxlength");
            el.removeAttribute("required");
            el.removeAttribute("pattern");
            el.removeAttribute("min");
            el.removeAttribute("max");
            const v = badValue(el.type, el.name);
            if (el.type === "number") el.type = "text"; // a browser would refuse; a script would not
            el.value = v;
            // Passwords are never sent back; number fields cannot show
            // what is not a number.
            if (el.type !== "password" && !/password|confirm|current/.test(el.name) && v !== "1e999") out[el.name] = el.value;
          }
          f.noValidate = true;
          return out;
        }, badValue.toString());
        if (Object.keys(typed).length === 0) continue;
        if (method === "get") {
          // Filters and searches: the same bad values in the query string.
          walked++;
          const url = new URL(action, server.base);
          for (const [k, v] of Object.entries(typed)) url.searchParams.set(k, v.slice(0, 4000));
          const res = await page.request.get(url.toString());
          if (res.status() >= 500) failures.push(`${path} form ${i} (GET ${action}): ${res.status()}`);
          continue;
        }
        // The form's main button: its primary one, else its first.
        const hasSubmit = await form.evaluate((f) => [...f.querySelectorAll("button")].some((b) => b.type === "submit" && !b.disabled));
        if (!hasSubmit) continue;
        walked++;
        const statuses = [];
        const onResponse = (r) => { if (r.url().startsWith(server.base) && !r.url().includes("/static/")) statuses.push([r.status(), r.url()]); };
        page.on("response", onResponse);
        const done = page.waitForResponse((r) => r.request().method() === method.toUpperCase() && !r.url().includes("/events"), { timeout: 20000 });
        await form.evaluate((f) => {
          const buttons = [...f.querySelectorAll("button")].filter((b) => b.type === "submit" && !b.disabled && !b.closest(".default-submit"));
          f.requestSubmit(buttons.find((b) => b.classList.contains("primary")) || buttons[0]);
        });
        const res = await done;
        await page.waitForLoadState("domcontentloaded");
        page.off("response", onResponse);
        for (const [status, url] of statuses) {
          if (status >= 500) failures.push(`${path} form ${i} (${action}): ${status} from ${url}`);
        }
        // A refused form shows the page (or the message) again with what was typed.
        if (res.status() >= 400 && res.status() < 500 && method === "post") {
          for (const [name, value] of Object.entries(typed)) {
            const field = page.locator(`[name="${name}"]`).first();
            if ((await field.count()) === 0) continue;
            // HTML turns NUL into U+FFFD; anything else must come back as typed.
            const now = (await field.inputValue()).replace(/\uFFFD/g, "\u0000");
            if (now !== value.replace(/\r\n/g, "\n")) {
              failures.push(`${path} form ${i} (${action}): field ${name} lost what was typed (${res.status()})`);
            }
          }
        }
      }
    }
    assert.ok(walked >= 8, `only ${walked} forms were walked`);
    assert.deepEqual(failures, []);
  });
});

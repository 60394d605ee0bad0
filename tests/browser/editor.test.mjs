// Browser test of the assistant editor's vector store picker: "Upload
// new" in place, into the chosen store or a new one, with upload
// progress, without leaving the page or losing unsaved edits.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  api, binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) throw new Error(`browser tests cannot run in CI: ${missing}`);

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

describe("assistant editor", { skip: missing || false }, () => {
  let server, upstream, browser, call, page;

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

  // storeFiles lists a store's files through the API.
  async function storeFiles(id) {
    return (await call("GET", `/vector_stores/${id}/files?limit=100`)).data;
  }

  test("vector store picker: upload new into a new store, then into a chosen one, in place, edits kept", async () => {
    const helper = await call("POST", "/assistants", { model: "fake-model", name: "Librarian", instructions: "saved words" });
    const pumps = await call("POST", "/vector_stores", { name: "Pump manuals" });
    await page.goto(server.base + `/assistants/${helper.id}`);
    const address = page.url();
    // Unsaved edits, which the uploads must leave alone.
    await page.fill("#instructions", "unsaved words");
    await page.fill("#name", "Librarian (edited)");
    // Record the progress bar's values as uploads report them.
    await page.evaluate(() => {
      window.progressSeen = [];
      const bar = document.querySelector('[data-testid="vs-file-upload"]').closest("[data-picker-upload]").querySelector("progress");
      new MutationObserver(() => { if (!bar.hidden) window.progressSeen.push(Number(bar.getAttribute("value"))); })
        .observe(bar, { attributes: true });
    });
    assert.equal(await page.isVisible('[data-testid="vs-file-upload"] >> xpath=..'), true, "the upload box is hidden");

    // None chosen: a new store, named in the box, holds the files.
    assert.equal(await page.isChecked('[data-testid="vs-picker"] input[value=""]'), true);
    await page.fill('[data-testid="vs-new-name"]', "Field notes");
    const big = Buffer.from("The field notes say the river floods each April. ".repeat(60000)); // about 3 MB
    await page.setInputFiles('[data-testid="vs-file-upload"]', [
      { name: "notes.txt", mimeType: "text/plain", buffer: big },
      { name: "more.md", mimeType: "text/markdown", buffer: Buffer.from("# More\nThe bridge opens in May.\n") },
    ]);
    const fresh = page.locator('[data-testid="vs-option"]', { hasText: "Field notes" });
    await fresh.locator('[data-testid="vs-added"]').waitFor({ timeout: 30000 });
    assert.match(await fresh.locator('[data-testid="vs-added"]').textContent(), /2 new files/);
    assert.equal(await fresh.locator("input").isChecked(), true, "the new store is not chosen");
    assert.match(await page.textContent('[data-testid="vs-upload-status"]'), /2 files added to Field notes/);
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.length > 0 && Math.max(...seen) > 0, `no upload progress shown: ${JSON.stringify(seen)}`);
    assert.equal(await page.isHidden('[data-testid="vs-file-upload"] >> xpath=../progress'), true, "the progress bar stays after the upload");
    const stores = (await call("GET", "/vector_stores?limit=100")).data;
    const created = stores.find((s) => s.name === "Field notes");
    assert.ok(created, "no store named Field notes");
    assert.deepEqual((await storeFiles(created.id)).length, 2);

    // An existing store chosen: the file goes into it.
    await page.locator('[data-testid="vs-option"]', { hasText: "Pump manuals" }).locator("input").check();
    await page.setInputFiles('[data-testid="vs-file-upload"]', [{ name: "gasket.txt", mimeType: "text/plain", buffer: Buffer.from("Replace the gasket every spring.") }]);
    const pumpOption = page.locator('[data-testid="vs-option"]', { hasText: "Pump manuals" });
    await pumpOption.locator('[data-testid="vs-added"]').waitFor({ timeout: 30000 });
    assert.match(await pumpOption.locator('[data-testid="vs-added"]').textContent(), /1 new file\b/);
    assert.equal((await storeFiles(pumps.id)).length, 1);
    assert.equal((await storeFiles(created.id)).length, 2, "the upload went to the new store too");

    // Nothing left the page; the edits are still there and save with the
    // store chosen.
    assert.equal(page.url(), address);
    assert.equal(await page.inputValue("#instructions"), "unsaved words");
    assert.equal(await page.inputValue("#name"), "Librarian (edited)");
    await shoot(page, "editor-vs-upload");
    await page.check('[data-testid="tool-file-search"]');
    await Promise.all([page.waitForURL(new RegExp(`/assistants/${helper.id}$`)), page.click('[data-testid="save-assistant"]')]);
    const saved = await call("GET", `/assistants/${helper.id}`);
    assert.equal(saved.instructions, "unsaved words");
    assert.deepEqual(saved.tool_resources.file_search.vector_store_ids, [pumps.id]);
  });

  test("vector store picker: a refused upload says why in place", async () => {
    await page.goto(server.base + "/assistants/new");
    await page.fill("#instructions", "draft");
    await page.fill('[data-testid="vs-new-name"]', "Empty one");
    await page.setInputFiles('[data-testid="vs-file-upload"]', [{ name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) }]);
    await page.waitForFunction(() => document.querySelector('[data-testid="vs-upload-error"]').textContent !== "", null, { timeout: 30000 });
    assert.match(await page.textContent('[data-testid="vs-upload-error"]'), /empty/);
    assert.equal(await page.inputValue("#instructions"), "draft");
    assert.equal(await page.locator('[data-testid="vs-option"]', { hasText: "Empty one" }).count(), 1, "the store made for the refused upload is not listed");
    await page.emulateMedia({ colorScheme: "dark" });
    await shoot(page, "editor-vs-upload-refused-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });
});

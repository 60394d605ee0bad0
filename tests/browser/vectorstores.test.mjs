// Browser test of the vector stores pages: create a store, add files and
// watch each file's status change as it is ingested (the list refreshes
// itself), search with scores, delete.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  binary, browserMissing, chromiumArgs, chromiumPath, shoot, startFakeUpstream, startServer, setUpFirstAdmin,
} from "./harness.mjs";

const missing = browserMissing();
if (missing && process.env.CI) {
  throw new Error(`browser tests cannot run in CI: ${missing}`);
}

const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

describe("vector stores pages", { skip: missing || false }, () => {
  let server, upstream, browser, page;

  before(async () => {
    const { chromium } = await import("playwright-core");
    upstream = await startFakeUpstream();
    server = await startServer(binary(), upstream.url);
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
  });

  test("create a store, add files with per-file status, search, delete", async () => {
    await page.click('[data-testid="nav-vector-stores"]');
    await page.waitForSelector('[data-testid="vs-empty"]');
    await page.fill('[data-testid="vs-name"]', "Pump manuals");
    await Promise.all([page.waitForURL(/\/vector_stores\/vs_/), page.click('[data-testid="vs-create"]')]);

    await page.setInputFiles("#vs-files", [
      { name: "pump.txt", mimeType: "text/plain", buffer: Buffer.from("Replace the pump gasket every spring. ".repeat(200)) },
      { name: "photo.png", mimeType: "image/png", buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
    ]);
    const storeURL = page.url();
    await Promise.all([page.waitForURL(/\/vector_stores\/vs_\w+\?added=file-/), page.click('[data-testid="vs-upload"]')]);
    // Post/redirect/get: the page after the upload is a GET of the store.
    assert.ok(page.url().startsWith(storeURL + "?"), `after the upload the browser is at ${page.url()}`);
    assert.equal(await page.locator('[data-testid="upload-ok"]').count(), 2);
    // The file list and the store's badge refresh themselves until
    // ingestion ends: no reload here.
    await page.waitForFunction(() => {
      const s = [...document.querySelectorAll('[data-testid="vs-file-row"] [data-testid="status"]')].map((e) => e.textContent);
      return s.length === 2 && s.includes("completed") && s.includes("failed");
    }, null, { timeout: 20_000 });
    await page.waitForFunction(() => document.querySelector('[data-testid="vs-status"]')?.textContent.trim() === "completed",
      null, { timeout: 20_000 });
    assert.match(await page.textContent('[data-testid="vs-size"]'), /indexed/);
    // A reload uploads nothing again.
    await page.reload();
    assert.equal(await page.locator('[data-testid="vs-file-row"]').count(), 2, "the reload uploaded the files again");
    const files = await page.request.get(server.base + "/files");
    assert.equal((await files.text()).match(/data-testid="file-row"/g).length, 2);
    assert.match(await page.textContent('[data-testid="vs-file-error"]'), /unsupported_file/);
    await shoot(page, "vector-store");

    await page.fill('[data-testid="vs-query"]', "gasket");
    await Promise.all([page.waitForURL(/q=gasket/), page.click('[data-testid="vs-search"]')]);
    await page.waitForSelector('[data-testid="vs-hit"]');
    assert.match(await page.textContent('[data-testid="vs-hit"]'), /pump\.txt/);
    assert.match(await page.textContent('[data-testid="vs-hit-score"]'), /score 0\.\d+|score 1\.000/);

    await Promise.all([page.waitForURL(/\/vector_stores$/), page.click('[data-testid="vs-delete"]')]);
    await page.waitForSelector('[data-testid="vs-empty"]');
  });
});

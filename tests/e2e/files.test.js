// Files through the official Node SDK: upload (toFile from a Buffer and from
// a stream), list, retrieve, content download and delete.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import OpenAI, { toFile } from 'openai';

import { startServer } from './helpers/server.js';

describe('client.files', () => {
  let server;
  let client;
  let tmp;
  before(async () => {
    server = await startServer();
    client = server.client();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'assistantd-e2e-files-'));
  });
  after(async () => {
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('upload a Buffer, retrieve it and download the exact bytes', async () => {
    const bytes = randomBytes(64 * 1024 + 3); // binary, not a multiple of any chunk size
    const f = await client.files.create({ file: await toFile(bytes, 'blob.bin'), purpose: 'assistants' });
    assert.match(f.id, /^file-/);
    assert.equal(f.object, 'file');
    assert.equal(f.bytes, bytes.length);
    assert.equal(f.filename, 'blob.bin');
    assert.equal(f.purpose, 'assistants');
    assert.equal(f.status, 'processed');
    assert.equal(typeof f.created_at, 'number');

    assert.deepEqual(await client.files.retrieve(f.id), f);

    const res = await client.files.content(f.id);
    assert.equal(res.status, 200);
    const got = Buffer.from(await res.arrayBuffer());
    assert.equal(got.length, bytes.length);
    assert.ok(got.equals(bytes), 'downloaded content equals the upload');
  });

  test('upload from a file stream keeps its name and text', async () => {
    const p = path.join(tmp, 'notes.md');
    const text = '# Notes\n\nÜnïcödé text, 2 lines.\n';
    await writeFile(p, text);
    const f = await client.files.create({ file: createReadStream(p), purpose: 'user_data' });
    assert.equal(f.filename, 'notes.md');
    assert.equal(f.purpose, 'user_data');
    assert.equal(f.bytes, Buffer.byteLength(text));
    assert.equal(await (await client.files.content(f.id)).text(), text);
  });

  test('list shows uploads, newest first by default, and filters by purpose', async () => {
    const own = await startServer();
    try {
      const c = own.client();
      const a = await c.files.create({ file: await toFile(Buffer.from('a'), 'a.txt'), purpose: 'assistants' });
      const b = await c.files.create({ file: await toFile(Buffer.from('b'), 'b.png'), purpose: 'vision' });
      const d = await c.files.create({ file: await toFile(Buffer.from('d'), 'd.txt'), purpose: 'assistants' });

      const all = await c.files.list();
      assert.deepEqual(
        all.data.map((f) => f.id),
        [d.id, b.id, a.id],
      );
      assert.deepEqual(all.data[1], b);
      assert.equal(all.has_more, false);

      const asc = [];
      for await (const f of c.files.list({ order: 'asc', limit: 1 })) asc.push(f.id);
      assert.deepEqual(asc, [a.id, b.id, d.id]);

      const vision = await c.files.list({ purpose: 'vision' });
      assert.deepEqual(
        vision.data.map((f) => f.id),
        [b.id],
      );
    } finally {
      await own.stop();
    }
  });

  test('delete removes the file and its content', async () => {
    const f = await client.files.create({ file: await toFile(Buffer.from('bye'), 'bye.txt'), purpose: 'assistants' });
    const deleted = await client.files.delete(f.id);
    assert.deepEqual(deleted, { id: f.id, object: 'file', deleted: true });

    await assert.rejects(client.files.retrieve(f.id), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.message, `404 No such File object: ${f.id}`);
      return true;
    });
    await assert.rejects(client.files.content(f.id), OpenAI.NotFoundError);
    await assert.rejects(client.files.delete(f.id), OpenAI.NotFoundError);

    const ids = [];
    for await (const x of client.files.list()) ids.push(x.id);
    assert.ok(!ids.includes(f.id));
  });

  test('a bad purpose is a BadRequestError and stores nothing', async () => {
    const before = (await client.files.list()).data.length;
    await assert.rejects(
      client.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'not-a-purpose' }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError);
        assert.equal(err.status, 400);
        assert.equal(err.param, 'purpose');
        return true;
      },
    );
    assert.equal((await client.files.list()).data.length, before);
  });

  test('an upload over --max-upload-bytes is rejected with 413 and stores nothing', async () => {
    const small = await startServer({ args: ['--max-upload-bytes', '1KiB'] });
    try {
      const c = small.client();
      const ok = await c.files.create({ file: await toFile(Buffer.alloc(1000, 1), 'fits.bin'), purpose: 'assistants' });
      assert.equal(ok.bytes, 1000);
      await assert.rejects(
        c.files.create({ file: await toFile(Buffer.alloc(4096, 2), 'big.bin'), purpose: 'assistants' }),
        (err) => {
          assert.ok(err instanceof OpenAI.APIError);
          assert.equal(err.status, 413);
          assert.equal(err.type, 'invalid_request_error');
          assert.match(err.requestID, /^req_/);
          return true;
        },
      );
      const listed = await c.files.list();
      assert.deepEqual(
        listed.data.map((f) => f.id),
        [ok.id],
      );
    } finally {
      await small.stop();
    }
  });
});

// Messages through the official Node SDK: create (string content and
// content-part arrays, attachments), list with cursors, retrieve, update and
// delete, as a user of client.beta.threads.messages would.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI, { toFile } from 'openai';

import { startServer } from './helpers/server.js';

describe('client.beta.threads.messages', () => {
  let server;
  let client;
  let thread;
  before(async () => {
    server = await startServer();
    client = server.client();
    thread = await client.beta.threads.create();
  });
  after(() => server?.stop());

  test('create with string content stores one text part', async () => {
    const m = await client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: 'Hello, assistant!',
      metadata: { source: 'e2e' },
    });
    assert.match(m.id, /^msg_/);
    assert.equal(m.object, 'thread.message');
    assert.equal(m.thread_id, thread.id);
    assert.equal(m.role, 'user');
    assert.equal(typeof m.created_at, 'number');
    assert.deepEqual(m.content, [{ type: 'text', text: { value: 'Hello, assistant!', annotations: [] } }]);
    assert.equal(m.assistant_id, null);
    assert.equal(m.run_id, null);
    assert.deepEqual(m.attachments, []);
    assert.deepEqual(m.metadata, { source: 'e2e' });
    assert.equal(m.status, 'completed');
    for (const key of ['incomplete_details', 'completed_at', 'incomplete_at']) {
      assert.ok(key in m, `${key} is present`);
    }

    const got = await client.beta.threads.messages.retrieve(m.id, { thread_id: thread.id });
    assert.deepEqual(got, m);
  });

  test('create with content parts: text, image_file and image_url, plus attachments', async () => {
    const image = await client.files.create({
      file: await toFile(Buffer.from('\x89PNG\r\n\x1a\nnot really a png'), 'pixel.png', { type: 'image/png' }),
      purpose: 'vision',
    });
    const doc = await client.files.create({
      file: await toFile(Buffer.from('a,b\n1,2\n'), 'data.csv'),
      purpose: 'assistants',
    });

    const m = await client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: [
        { type: 'text', text: 'Describe these.' },
        { type: 'image_file', image_file: { file_id: image.id, detail: 'high' } },
        { type: 'image_url', image_url: { url: 'https://example.com/dog.jpg' } },
      ],
      attachments: [{ file_id: doc.id, tools: [{ type: 'code_interpreter' }] }],
    });
    assert.equal(m.content.length, 3);
    assert.deepEqual(m.content[0], { type: 'text', text: { value: 'Describe these.', annotations: [] } });
    assert.deepEqual(m.content[1], { type: 'image_file', image_file: { file_id: image.id, detail: 'high' } });
    assert.equal(m.content[2].type, 'image_url');
    assert.equal(m.content[2].image_url.url, 'https://example.com/dog.jpg');
    // detail was not sent: absent, or OpenAI's default.
    assert.ok([undefined, 'auto'].includes(m.content[2].image_url.detail), `detail ${m.content[2].image_url.detail}`);
    assert.deepEqual(m.attachments, [{ file_id: doc.id, tools: [{ type: 'code_interpreter' }] }]);
    assert.deepEqual(await client.beta.threads.messages.retrieve(m.id, { thread_id: thread.id }), m);
  });

  test('an assistant-role message can be added', async () => {
    const m = await client.beta.threads.messages.create(thread.id, { role: 'assistant', content: 'Noted.' });
    assert.equal(m.role, 'assistant');
    assert.deepEqual(m.content, [{ type: 'text', text: { value: 'Noted.', annotations: [] } }]);
  });

  test('list: default desc, asc, limit, after and before cursors', async () => {
    const t = await client.beta.threads.create();
    const ids = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await client.beta.threads.messages.create(t.id, { role: 'user', content: `m${i}` })).id);
    }

    const desc = await client.beta.threads.messages.list(t.id);
    assert.deepEqual(
      desc.data.map((m) => m.id),
      [...ids].reverse(),
    );
    assert.equal(desc.has_more, false);
    assert.equal(desc.body.first_id, ids[4]);
    assert.equal(desc.body.last_id, ids[0]);

    const asc = await client.beta.threads.messages.list(t.id, { order: 'asc', limit: 2 });
    assert.deepEqual(
      asc.data.map((m) => m.id),
      ids.slice(0, 2),
    );
    assert.equal(asc.has_more, true);

    const afterPage = await client.beta.threads.messages.list(t.id, { order: 'asc', after: ids[1], limit: 2 });
    assert.deepEqual(
      afterPage.data.map((m) => m.id),
      ids.slice(2, 4),
    );
    assert.equal(afterPage.has_more, true);

    const lastPage = await afterPage.getNextPage();
    assert.deepEqual(
      lastPage.data.map((m) => m.id),
      [ids[4]],
    );
    assert.equal(lastPage.has_more, false);
    assert.equal(lastPage.hasNextPage(), false);

    // `before` returns the page just before the cursor, in the requested order.
    const beforePage = await client.beta.threads.messages.list(t.id, { order: 'asc', before: ids[4], limit: 2 });
    assert.deepEqual(
      beforePage.data.map((m) => m.id),
      ids.slice(2, 4),
    );
    assert.equal(beforePage.has_more, true);
    const beforeDesc = await client.beta.threads.messages.list(t.id, { before: ids[1] });
    assert.deepEqual(
      beforeDesc.data.map((m) => m.id),
      [ids[4], ids[3], ids[2]],
    );
    assert.equal(beforeDesc.has_more, false);
  });

  test('update replaces metadata only', async () => {
    const m = await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'tag me' });
    const updated = await client.beta.threads.messages.update(m.id, {
      thread_id: thread.id,
      metadata: { reviewed: 'yes' },
    });
    assert.deepEqual(updated, { ...m, metadata: { reviewed: 'yes' } });
    assert.deepEqual(await client.beta.threads.messages.retrieve(m.id, { thread_id: thread.id }), updated);
  });

  test('delete removes the message from retrieve and list', async () => {
    const t = await client.beta.threads.create();
    const keep = await client.beta.threads.messages.create(t.id, { role: 'user', content: 'keep' });
    const gone = await client.beta.threads.messages.create(t.id, { role: 'user', content: 'gone' });

    const deleted = await client.beta.threads.messages.delete(gone.id, { thread_id: t.id });
    assert.deepEqual(deleted, { id: gone.id, object: 'thread.message.deleted', deleted: true });

    await assert.rejects(client.beta.threads.messages.retrieve(gone.id, { thread_id: t.id }), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.message, `404 No message found with id '${gone.id}'.`);
      return true;
    });
    const listed = await client.beta.threads.messages.list(t.id);
    assert.deepEqual(
      listed.data.map((m) => m.id),
      [keep.id],
    );
  });

  test("a message is only found in its own thread", async () => {
    const other = await client.beta.threads.create();
    const m = await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'mine' });
    await assert.rejects(client.beta.threads.messages.retrieve(m.id, { thread_id: other.id }), OpenAI.NotFoundError);
    await assert.rejects(
      client.beta.threads.messages.update(m.id, { thread_id: other.id, metadata: { x: 'y' } }),
      OpenAI.NotFoundError,
    );
    await assert.rejects(client.beta.threads.messages.delete(m.id, { thread_id: other.id }), OpenAI.NotFoundError);
    // Still intact in its own thread.
    const got = await client.beta.threads.messages.retrieve(m.id, { thread_id: thread.id });
    assert.deepEqual(got.metadata, {});
  });
});


// Threads through the official Node SDK: create (empty, with messages and
// metadata), retrieve, update and delete, as a user of client.beta.threads.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { startServer } from './helpers/server.js';

/** Every message of a thread, oldest first, through auto-pagination. */
async function allMessages(client, threadID) {
  const out = [];
  for await (const m of client.beta.threads.messages.list(threadID, { order: 'asc', limit: 100 })) out.push(m);
  return out;
}

describe('client.beta.threads', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer();
    client = server.client();
  });
  after(() => server?.stop());

  test('create with no body gives an empty thread', async () => {
    const t = await client.beta.threads.create();
    assert.match(t.id, /^thread_/);
    assert.equal(t.object, 'thread');
    assert.equal(typeof t.created_at, 'number');
    assert.deepEqual(t.metadata, {});
    assert.ok('tool_resources' in t, 'tool_resources is present');
    assert.deepEqual(await allMessages(client, t.id), []);
    assert.deepEqual(await client.beta.threads.retrieve(t.id), t);
  });

  test('create with messages and metadata stores them in order', async () => {
    const t = await client.beta.threads.create({
      metadata: { customer: 'c-42', channel: 'web' },
      messages: [
        { role: 'user', content: 'What is 2 + 2?' },
        { role: 'assistant', content: 'It is 4.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'And this picture?' },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } },
          ],
          metadata: { turn: '3' },
        },
      ],
    });
    assert.deepEqual(t.metadata, { customer: 'c-42', channel: 'web' });

    const msgs = await allMessages(client, t.id);
    assert.equal(msgs.length, 3);
    assert.deepEqual(
      msgs.map((m) => m.role),
      ['user', 'assistant', 'user'],
    );
    for (const m of msgs) {
      assert.equal(m.thread_id, t.id);
      assert.equal(m.object, 'thread.message');
      assert.equal(m.assistant_id, null);
      assert.equal(m.run_id, null);
    }
    assert.deepEqual(msgs[0].content, [{ type: 'text', text: { value: 'What is 2 + 2?', annotations: [] } }]);
    assert.deepEqual(msgs[1].content, [{ type: 'text', text: { value: 'It is 4.', annotations: [] } }]);
    assert.deepEqual(msgs[2].content, [
      { type: 'text', text: { value: 'And this picture?', annotations: [] } },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } },
    ]);
    assert.deepEqual(msgs[2].metadata, { turn: '3' });

    // Default order is newest first.
    const page = await client.beta.threads.messages.list(t.id);
    assert.deepEqual(
      page.data.map((m) => m.id),
      msgs.map((m) => m.id).reverse(),
    );
  });

  test('update replaces metadata and persists', async () => {
    const t = await client.beta.threads.create({ metadata: { a: '1' } });
    const updated = await client.beta.threads.update(t.id, { metadata: { a: '2', b: 'x' } });
    assert.equal(updated.id, t.id);
    assert.equal(updated.created_at, t.created_at);
    assert.deepEqual(updated.metadata, { a: '2', b: 'x' });
    assert.deepEqual(await client.beta.threads.retrieve(t.id), updated);
  });

  test('delete removes the thread and its messages', async () => {
    const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'bye' }] });
    const [m] = await allMessages(client, t.id);

    const deleted = await client.beta.threads.delete(t.id);
    assert.deepEqual(deleted, { id: t.id, object: 'thread.deleted', deleted: true });

    await assert.rejects(client.beta.threads.retrieve(t.id), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.message, `404 No thread found with id '${t.id}'.`);
      return true;
    });
    await assert.rejects(client.beta.threads.messages.list(t.id), OpenAI.NotFoundError);
    await assert.rejects(client.beta.threads.messages.retrieve(m.id, { thread_id: t.id }), OpenAI.NotFoundError);
    await assert.rejects(
      client.beta.threads.messages.create(t.id, { role: 'user', content: 'late' }),
      OpenAI.NotFoundError,
    );
    await assert.rejects(client.beta.threads.delete(t.id), OpenAI.NotFoundError);
  });
});

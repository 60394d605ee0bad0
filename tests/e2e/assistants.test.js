// Assistants through the official Node SDK: create, retrieve, update,
// list (with paging) and delete, as a user of client.beta.assistants would.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { startServer } from './helpers/server.js';

describe('client.beta.assistants', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer();
    client = server.client();
  });
  after(() => server?.stop());

  const full = {
    model: 'gpt-4o-mini',
    name: 'Math tutor',
    description: 'Answers arithmetic questions',
    instructions: 'You are a patient math tutor.',
    tools: [
      { type: 'code_interpreter' },
      { type: 'file_search', file_search: { max_num_results: 5 } },
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather for a city',
          parameters: {
            type: 'object',
            properties: { city: { type: 'string' } },
            required: ['city'],
          },
        },
      },
    ],
    metadata: { team: 'e2e', purpose: 'testing' },
    temperature: 0.5,
    top_p: 0.9,
    response_format: { type: 'json_object' },
  };

  test('create echoes every field, retrieve returns the same object', async () => {
    const { data: created, response, request_id } = await client.beta.assistants.create(full).withResponse();
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^application\/json/);
    assert.match(request_id, /^req_/);

    assert.match(created.id, /^asst_/);
    assert.equal(created.object, 'assistant');
    assert.equal(typeof created.created_at, 'number');
    assert.ok(Math.abs(created.created_at - Date.now() / 1000) < 300, 'created_at is unix seconds, now');
    assert.equal(created.model, full.model);
    assert.equal(created.name, full.name);
    assert.equal(created.description, full.description);
    assert.equal(created.instructions, full.instructions);
    assert.deepEqual(created.metadata, full.metadata);
    assert.equal(created.temperature, 0.5);
    assert.equal(created.top_p, 0.9);
    assert.deepEqual(created.response_format, { type: 'json_object' });
    assert.equal(created.tools.length, 3);
    assert.deepEqual(
      created.tools.map((t) => t.type),
      ['code_interpreter', 'file_search', 'function'],
    );
    const fn = created.tools[2];
    assert.equal(fn.function.name, 'get_weather');
    assert.deepEqual(fn.function.parameters, full.tools[2].function.parameters);

    const got = await client.beta.assistants.retrieve(created.id);
    assert.deepEqual(got, created);
  });

  test('create with only a model fills defaults with nulls, [] and {}', async () => {
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    assert.equal(a.name, null);
    assert.equal(a.description, null);
    assert.equal(a.instructions, null);
    assert.deepEqual(a.tools, []);
    assert.deepEqual(a.metadata, {});
    assert.equal(a.response_format, 'auto');
    for (const key of ['temperature', 'top_p', 'tool_resources']) {
      assert.ok(key in a, `${key} is present`);
    }
  });

  test('update changes only the given fields and persists', async () => {
    const a = await client.beta.assistants.create(full);
    const updated = await client.beta.assistants.update(a.id, {
      name: 'Renamed',
      metadata: { team: 'platform' },
      tools: [{ type: 'code_interpreter' }],
      temperature: 1.5,
    });
    assert.equal(updated.id, a.id);
    assert.equal(updated.created_at, a.created_at);
    assert.equal(updated.name, 'Renamed');
    assert.deepEqual(updated.metadata, { team: 'platform' });
    assert.deepEqual(updated.tools, [{ type: 'code_interpreter' }]);
    assert.equal(updated.temperature, 1.5);
    // Untouched fields keep their values.
    assert.equal(updated.description, full.description);
    assert.equal(updated.instructions, full.instructions);
    assert.equal(updated.model, full.model);
    assert.equal(updated.top_p, 0.9);

    assert.deepEqual(await client.beta.assistants.retrieve(a.id), updated);
  });

  test('list pages in both orders and auto-paginates without gaps', async () => {
    // A server of its own so the expected set is exactly what this test made.
    const own = await startServer();
    try {
      const c = own.client();
      const empty = await c.beta.assistants.list();
      assert.deepEqual(empty.body, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });

      const ids = [];
      for (let i = 0; i < 7; i++) ids.push((await c.beta.assistants.create({ model: 'gpt-4o', name: `a${i}` })).id);

      const first = await c.beta.assistants.list({ limit: 3 });
      assert.deepEqual(
        first.data.map((a) => a.id),
        ids.slice(-3).reverse(),
        'default order is desc (newest first)',
      );
      assert.equal(first.has_more, true);
      // The SDK page keeps the raw list body: object, first_id, last_id.
      assert.equal(first.body.object, 'list');
      assert.equal(first.body.first_id, ids[6]);
      assert.equal(first.body.last_id, ids[4]);
      assert.ok(first.hasNextPage());
      const second = await first.getNextPage();
      assert.deepEqual(
        second.data.map((a) => a.id),
        ids.slice(1, 4).reverse(),
      );

      const asc = [];
      for await (const a of c.beta.assistants.list({ order: 'asc', limit: 2 })) asc.push(a.id);
      assert.deepEqual(asc, ids);

      const desc = [];
      for await (const a of c.beta.assistants.list({ limit: 3 })) desc.push(a.id);
      assert.deepEqual(desc, [...ids].reverse());

      const last = await c.beta.assistants.list({ order: 'asc', limit: 7 });
      assert.equal(last.data.length, 7);
      assert.equal(last.has_more, false, 'has_more is exact when the page holds the rest');
      assert.equal(last.hasNextPage(), false);

      const window = await c.beta.assistants.list({ order: 'asc', after: ids[1], before: ids[5] });
      assert.deepEqual(
        window.data.map((a) => a.id),
        ids.slice(2, 5),
      );
    } finally {
      await own.stop();
    }
  });

  test('delete returns the deleted envelope; the assistant is gone', async () => {
    const a = await client.beta.assistants.create({ model: 'gpt-4o', name: 'to delete' });
    const deleted = await client.beta.assistants.delete(a.id);
    assert.deepEqual(deleted, { id: a.id, object: 'assistant.deleted', deleted: true });

    await assert.rejects(client.beta.assistants.retrieve(a.id), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.status, 404);
      assert.match(err.message, new RegExp(a.id));
      return true;
    });
    await assert.rejects(client.beta.assistants.delete(a.id), OpenAI.NotFoundError);

    const listed = [];
    for await (const x of client.beta.assistants.list({ limit: 100 })) listed.push(x.id);
    assert.ok(!listed.includes(a.id), 'deleted assistant is not listed');
  });
});

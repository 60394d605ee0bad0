// Vector stores and file_search through the official Node SDK:
// vectorStores.create, fileBatches.uploadAndPoll, search with attribute
// filters, the files lists, uploads in parts, and the file_search tool
// inside a streamed run with its citations.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { toFile } from 'openai';

import { call, listSteps } from './helpers/runs.js';
import { startServerWithUpstream } from './helpers/upstream.js';

const LIMIT = { timeout: 30_000 };

describe('client.vectorStores and file_search', () => {
  let server;
  let client;
  before(async () => {
    server = await startServerWithUpstream();
    client = server.client();
  });
  after(() => server?.stop());

  test('create, uploadAndPoll, files.list, search with filters', LIMIT, async () => {
    const vs = await client.vectorStores.create({ name: 'animals', metadata: { team: 'zoo' } });
    assert.match(vs.id, /^vs_/);
    assert.equal(vs.object, 'vector_store');
    assert.deepEqual(vs.file_counts, { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 });

    const batch = await client.vectorStores.fileBatches.uploadAndPoll(vs.id, {
      files: [
        await toFile(Buffer.from('The okapi is a relative of the giraffe.'), 'okapi.txt'),
        await toFile(Buffer.from('# Axolotl\n\nThe axolotl can regrow its limbs.'), 'axolotl.md'),
      ],
    });
    assert.equal(batch.object, 'vector_store.files_batch');
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 2, failed: 0, cancelled: 0, total: 2 });

    const files = [];
    for await (const f of client.vectorStores.files.list(vs.id, { filter: 'completed' })) files.push(f);
    assert.equal(files.length, 2);
    const uploaded = [];
    for await (const f of client.files.list({ purpose: 'assistants' })) uploaded.push(f.id);
    for (const f of files) assert.ok(uploaded.includes(f.id), `${f.id} is in files.list`);

    const byName = new Map();
    for (const f of files) byName.set((await client.files.retrieve(f.id)).filename, f.id);
    await client.vectorStores.files.update(byName.get('axolotl.md'), { vector_store_id: vs.id, attributes: { kind: 'amphibian', legs: 4 } });
    await client.vectorStores.files.update(byName.get('okapi.txt'), { vector_store_id: vs.id, attributes: { kind: 'mammal', legs: 4 } });

    const hits = [];
    for await (const r of client.vectorStores.search(vs.id, { query: 'which animal regrows limbs?' })) hits.push(r);
    assert.equal(hits[0].filename, 'axolotl.md');
    assert.ok(hits[0].score > 0 && hits[0].score <= 1);
    assert.match(hits[0].content[0].text, /regrow its limbs/);

    const filtered = [];
    for await (const r of client.vectorStores.search(vs.id, {
      query: ['giraffe', 'limbs'],
      filters: { type: 'and', filters: [{ type: 'eq', key: 'kind', value: 'mammal' }, { type: 'gte', key: 'legs', value: 4 }] },
    })) filtered.push(r);
    assert.deepEqual(filtered.map((r) => r.filename), ['okapi.txt']);
    assert.deepEqual(filtered[0].attributes, { kind: 'mammal', legs: 4 });

    const store = await client.vectorStores.retrieve(vs.id);
    assert.equal(store.status, 'completed');
    assert.ok(store.usage_bytes > 0);
    const deleted = await client.vectorStores.delete(vs.id);
    assert.deepEqual(deleted, { id: vs.id, object: 'vector_store.deleted', deleted: true });
  });

  test('uploads in parts become a file', LIMIT, async () => {
    const bytes = Buffer.alloc(300_000, 'abc');
    const upload = await client.uploads.create({ bytes: bytes.length, filename: 'parts.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const p1 = await client.uploads.parts.create(upload.id, { data: await toFile(bytes.subarray(0, 200_000), 'p1') });
    const p2 = await client.uploads.parts.create(upload.id, { data: await toFile(bytes.subarray(200_000), 'p2') });
    const done = await client.uploads.complete(upload.id, { part_ids: [p1.id, p2.id] });
    assert.equal(done.status, 'completed');
    assert.equal(done.file.bytes, bytes.length);
    const content = Buffer.from(await (await client.files.content(done.file.id)).arrayBuffer());
    assert.ok(content.equals(bytes));
  });

  test('file_search inside a streamed run cites the file', LIMIT, async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from('Octopuses have three hearts and blue blood.'), 'octopus.txt'), purpose: 'assistants' });
    const assistant = await client.beta.assistants.create({
      model: 'fake-model',
      tools: [{ type: 'file_search' }],
      tool_resources: { file_search: { vector_stores: [{ file_ids: [file.id] }] } },
    });
    assert.equal(assistant.tool_resources.file_search.vector_store_ids.length, 1);
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: `How many hearts? ${call('file_search', { query: 'octopus hearts' })}` }],
    });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const toolCalls = [];
    stream.on('toolCallCreated', (tc) => toolCalls.push(tc.type));
    const run = await stream.finalRun();
    assert.equal(run.status, 'completed');
    assert.deepEqual(toolCalls, ['file_search']);

    const [message] = await stream.finalMessages();
    const text = message.content[0].text;
    assert.ok(text.annotations.length > 0, `annotations on ${text.value}`);
    for (const a of text.annotations) {
      assert.equal(a.type, 'file_citation');
      assert.equal(a.file_citation.file_id, file.id);
      assert.equal(a.text, '【0†octopus.txt】');
      assert.equal([...text.value].slice(a.start_index, a.end_index).join(''), a.text);
    }

    const steps = await listSteps(client, thread.id, run.id);
    const fs = steps.flatMap((s) => s.step_details.tool_calls ?? []).find((tc) => tc.type === 'file_search');
    assert.equal(fs.file_search.results[0].file_id, file.id);
    assert.equal(fs.file_search.results[0].content, undefined);
    const withContent = await client.beta.threads.runs.steps.list(run.id, {
      thread_id: thread.id,
      include: ['step_details.tool_calls[*].file_search.results[*].content'],
    });
    const fs2 = withContent.data.flatMap((s) => s.step_details.tool_calls ?? []).find((tc) => tc.type === 'file_search');
    assert.match(fs2.file_search.results[0].content[0].text, /three hearts/);
  });
});

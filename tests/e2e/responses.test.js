// The Responses and Conversations APIs through the official Node SDK:
// responses.create, the ResponseStream helper (responses.stream with
// finalResponse, and resuming a background response by response_id), the
// function round trip and a conversation.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startServerWithUpstream } from './helpers/upstream.js';

const LIMIT = { timeout: 20_000 };

const weather = {
  type: 'function',
  name: 'get_weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: false,
};

describe('responses', () => {
  let server;
  let client;
  before(async () => {
    server = await startServerWithUpstream();
    client = server.client();
  });
  after(() => server?.stop());

  test('responses.create answers and is stored', LIMIT, async () => {
    const r = await client.responses.create({ model: 'fake-model', input: 'hello node', instructions: 'Be brief.' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, 'You said: hello node');
    assert.ok(r.usage.total_tokens > 0);
    const got = await client.responses.retrieve(r.id);
    assert.equal(got.output_text, r.output_text);
    const items = await client.responses.inputItems.list(r.id);
    assert.equal(items.data.length, 1);
    assert.equal(items.data[0].content[0].text, 'hello node');
  });

  test('responses.stream(...).finalResponse()', LIMIT, async () => {
    const stream = client.responses.stream({ model: 'fake-model', input: 'stream node [[chunks 8]]' });
    let text = '';
    const seqs = [];
    stream.on('response.output_text.delta', (e) => {
      text += e.delta;
    });
    stream.on('event', (e) => seqs.push(e.sequence_number));
    const final = await stream.finalResponse();
    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, text);
    assert.ok(text.length > 0);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `sequence ${seqs}`);
  });

  test('a background response resumed by response_id', LIMIT, async () => {
    const created = await client.responses.create({
      model: 'fake-model',
      input: 'background node [[slow 20ms]] [[chunks 10]]',
      background: true,
    });
    assert.ok(['queued', 'in_progress'].includes(created.status), created.status);
    const stream = client.responses.stream({ response_id: created.id, starting_after: 3 });
    const seqs = [];
    stream.on('event', (e) => seqs.push(e.sequence_number));
    const final = await stream.finalResponse();
    assert.equal(final.id, created.id);
    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, 'w0 w1 w2 w3 w4 w5 w6 w7 w8 w9');
    assert.equal(seqs[0], 4, `first event after starting_after 3: ${seqs}`);
  });

  test('function calls: completed with the calls, answered by the next response', LIMIT, async () => {
    const first = await client.responses.create({
      model: 'fake-model',
      input: 'weather? [[call get_weather {"city":"Paris"}]]',
      tools: [weather],
    });
    assert.equal(first.status, 'completed');
    const call = first.output.find((o) => o.type === 'function_call');
    assert.ok(call && call.call_id && call.name === 'get_weather', JSON.stringify(first.output));
    await assert.rejects(
      client.responses.create({ model: 'fake-model', previous_response_id: first.id, input: 'no output', tools: [weather] }),
      (e) => e.status === 400 && e.param === 'input' && e.message.includes(call.call_id),
    );
    const second = await client.responses.create({
      model: 'fake-model',
      previous_response_id: first.id,
      tools: [weather],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    });
    assert.equal(second.output_text, 'Tool results: sunny');
  });

  test('a conversation collects the responses made in it', LIMIT, async () => {
    const conv = await client.conversations.create({ metadata: { topic: 'node' } });
    await client.responses.create({ model: 'fake-model', input: 'one', conversation: conv.id });
    const second = await client.responses.create({ model: 'fake-model', input: 'two', conversation: conv.id });
    assert.equal(second.conversation.id, conv.id);
    const items = await client.conversations.items.list(conv.id, { order: 'asc' });
    assert.deepEqual(
      items.data.map((i) => `${i.role}:${i.content[0].text}`),
      ['user:one', 'assistant:You said: one', 'user:two', 'assistant:You said: two'],
    );
    await assert.rejects(
      client.responses.create({ model: 'fake-model', input: 'x', conversation: conv.id, previous_response_id: second.id }),
      (e) => e.status === 400,
    );
  });
});

// The README's migration example (under "## Responses and Conversations"),
// run as written with only its base URL pointed at the test server.
test("README's Responses migration example works", LIMIT, async () => {
  const { readFile } = await import('node:fs/promises');
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const here = path.dirname(fileURLToPath(import.meta.url));
  const readme = await readFile(path.join(here, '../../README.md'), 'utf8');
  const block = /## Responses and Conversations\n[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ```js block under "## Responses and Conversations"');
  const documented = 'http://127.0.0.1:8080/v1';
  assert.ok(block[1].includes(documented));
  const server = await startServerWithUpstream();
  try {
    const code = block[1].replaceAll(documented, server.url + '/v1');
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], {
      cwd: here,
      env: { ...process.env, ASSISTANTD_API_KEY: server.apiKey },
    });
    assert.deepEqual(stdout.trim().split('\n'), ['You said: Hello', 'You said: Hello', 'You said: And again']);
  } finally {
    await server.stop();
  }
});

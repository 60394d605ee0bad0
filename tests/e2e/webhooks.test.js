// Functions answered by webhooks (an assistantd extension), driven by the
// official Node SDK: the weather flow with get_weather answered by a
// signing-checked receiver, through runs.stream and runs.createAndPoll.
// The webhook is configured with the SDK's raw request support
// (client.put), the way a Node app would call the extension.

import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { call, listMessages, listSteps, textOf, weatherTool } from './helpers/runs.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { assistantdBinary, startHTTPServer, startServer } from './helpers/server.js';
import { startServerWithUpstream } from './helpers/upstream.js';

const LIMIT = { timeout: 20_000 };

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The README's verification snippet, run as written (its import replaced
 * by the same functions handed in), so the documented check is the one
 * the receiver applies.
 */
async function readmeVerify() {
  const readme = await readFile(path.join(here, '../../README.md'), 'utf8');
  const block = /## Webhooks[\s\S]*?\*\*Signing\*\*[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ```js verification block under "## Webhooks"');
  const code = block[1].replace(/^import .*$/m, '');
  return new Function('createHmac', 'timingSafeEqual', `${code}\nreturn verify;`)(createHmac, timingSafeEqual);
}

describe('webhooks', () => {
  let server;
  let client;
  let receiver;
  let secret;
  const deliveries = [];

  before(async () => {
    const verify = await readmeVerify();
    // The snippet rejects what it should: another secret, an altered body.
    const h = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) };
    const key = 'whsec_' + Buffer.alloc(32, 7).toString('base64');
    h['webhook-signature'] = 'v1,' + createHmac('sha256', Buffer.alloc(32, 7)).update(`msg_1.${h['webhook-timestamp']}.{}`).digest('base64');
    assert.ok(verify(key, h, '{}'));
    assert.ok(!verify(key, h, '{ }'));
    assert.ok(!verify('whsec_' + Buffer.alloc(32, 8).toString('base64'), h, '{}'));
    // The receiver: a weather service that answers get_weather calls.
    receiver = await startHTTPServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (!verify(secret, req.headers, body)) {
          res.writeHead(401).end('bad signature');
          deliveries.push({ bad: true });
          return;
        }
        const payload = JSON.parse(body);
        deliveries.push({ id: req.headers['webhook-id'], payload });
        const { city } = JSON.parse(payload.function.arguments);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ output: JSON.stringify({ city, temperature: 21, unit: 'celsius' }) }));
      });
    });
    server = await startServerWithUpstream({ args: ['--webhook-allow-networks', '127.0.0.0/8'] });
    client = server.client();
  });
  after(async () => {
    await server?.stop();
    await receiver?.close();
  });

  async function weatherAssistant() {
    const assistant = await client.beta.assistants.create({
      model: 'fake-model',
      instructions: 'You are a weather bot. Use the provided functions to answer questions.',
      tools: [weatherTool],
    });
    const hook = await client.put(`/assistants/${assistant.id}/webhooks/get_weather`, {
      body: { url: `${receiver.url}/weather` },
    });
    assert.equal(hook.object, 'assistant.webhook');
    assert.equal(hook.function_name, 'get_weather');
    assert.match(hook.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    secret = hook.secret;
    const list = await client.get(`/assistants/${assistant.id}/webhooks`);
    assert.deepEqual(
      list.data.map((w) => [w.function_name, w.secret, w.secret_hint]),
      [['get_weather', undefined, hook.secret_hint]],
    );
    return assistant;
  }

  test('runs.stream: get_weather answered by the webhook, no requires_action', LIMIT, async () => {
    const assistant = await weatherAssistant();
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: `What's the weather in Paris? ${call('get_weather', { city: 'Paris' })}` }],
    });
    const events = [];
    const outputs = [];
    const stream = client.beta.threads.runs
      .stream(thread.id, { assistant_id: assistant.id })
      .on('event', (e) => events.push(e.event))
      .on('toolCallDone', (tc) => outputs.push([tc.function.name, tc.function.output]));
    const run = await stream.finalRun();
    assert.equal(run.status, 'completed');
    assert.ok(!events.includes('thread.run.requires_action'), `events: ${events.join(', ')}`);
    assert.equal(events.at(-1), 'thread.run.completed');
    const weather = JSON.stringify({ city: 'Paris', temperature: 21, unit: 'celsius' });
    const text = (await stream.finalMessages()).map(textOf).join('');
    assert.equal(text, `Tool results: ${weather}`);

    const steps = await listSteps(client, thread.id, run.id);
    const calls = steps.flatMap((s) => (s.type === 'tool_calls' ? s.step_details.tool_calls : []));
    assert.deepEqual(
      calls.map((c) => [c.function.name, c.function.arguments, c.function.output]),
      [['get_weather', '{"city":"Paris"}', weather]],
    );
    const delivered = deliveries.filter((d) => d.payload?.tool_call_id === calls[0].id);
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0].payload.type, 'function_call');
    assert.equal(delivered[0].payload.run_id, run.id);
    assert.equal(delivered[0].payload.thread_id, thread.id);
    assert.equal(delivered[0].payload.assistant_id, assistant.id);
    assert.ok(!deliveries.some((d) => d.bad), 'every delivery carried a valid signature');
  });

  test('createAndPoll: the run completes with the webhook output', LIMIT, async () => {
    const assistant = await weatherAssistant();
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: `Weather in Oslo? ${call('get_weather', { city: 'Oslo' })}` }],
    });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 10 });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(run.required_action, null);
    const messages = await listMessages(client, thread.id);
    assert.equal(textOf(messages.at(-1)), `Tool results: ${JSON.stringify({ city: 'Oslo', temperature: 21, unit: 'celsius' })}`);
    assert.ok(!deliveries.some((d) => d.bad), 'every delivery carried a valid signature');
  });

  test('a refused address is a 400 in the error envelope', LIMIT, async () => {
    const assistant = await client.beta.assistants.create({ model: 'fake-model', tools: [weatherTool] });
    await assert.rejects(
      client.put(`/assistants/${assistant.id}/webhooks/get_weather`, { body: { url: 'http://169.254.169.254/latest' } }),
      (err) => err.status === 400 && err.param === 'url' && /--webhook-allow-networks/.test(err.message),
    );
  });
});

describe('--webhook-allow-networks', () => {
  test('an invalid network stops the start with a message naming the setting', LIMIT, async () => {
    await assert.rejects(
      promisify(execFile)(await assistantdBinary(), ['--addr', '127.0.0.1:0', '--webhook-allow-networks', '10.0.0.0/8,bogus']),
      (err) => err.code !== 0 && /invalid --webhook-allow-networks: "bogus" is not a CIDR/.test(err.stderr),
    );
  });

  test('ASSISTANTD_WEBHOOK_ALLOW_NETWORKS opens exactly the listed networks', LIMIT, async () => {
    const server = await startServer({ env: { ASSISTANTD_WEBHOOK_ALLOW_NETWORKS: '10.1.0.0/16' } });
    try {
      const client = server.client();
      const a = await client.beta.assistants.create({ model: 'm', tools: [weatherTool] });
      const ok = await client.put(`/assistants/${a.id}/webhooks/get_weather`, { body: { url: 'http://10.1.2.3:8080/hook' } });
      assert.equal(ok.url, 'http://10.1.2.3:8080/hook');
      await assert.rejects(
        client.put(`/assistants/${a.id}/webhooks/get_weather`, { body: { url: 'http://10.2.0.1/hook' } }),
        (err) => err.status === 400 && err.param === 'url',
      );
    } finally {
      await server.stop();
    }
  });
});

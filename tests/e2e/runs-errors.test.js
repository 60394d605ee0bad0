// Runs that go wrong, as the Node SDK sees them: requests refused before a
// stream starts, incomplete tool outputs, cancelling a streaming run, and an
// upstream that fails.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { call, listSteps, pollRun, statusMismatches, textOf, weatherTool } from './helpers/runs.js';
import { startServerWithUpstream } from './helpers/upstream.js';

// A deadline for each test, so that a run that never ends fails instead of hanging.
const LIMIT = { timeout: 20_000 };

const POLL = { pollIntervalMs: 10 };

describe('runs (errors)', () => {
  let server; // default upstream retries
  let strict; // --upstream-retries 0 --run-timeout 5s
  let client;
  let assistant;
  before(async () => {
    [server, strict] = await Promise.all([
      startServerWithUpstream(),
      startServerWithUpstream({ args: ['--upstream-retries', '0', '--run-timeout', '5s'] }),
    ]);
    client = server.client();
    assistant = await client.beta.assistants.create({ model: 'fake-model', tools: [weatherTool] });
  });
  after(() => Promise.all([server?.stop(), strict?.stop()]));

  /** A thread whose run waits in requires_action for two calls. */
  async function waitingRun() {
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: `${call('get_weather', { city: 'Paris' })} ${call('get_weather', { city: 'Rome' })}` }],
    });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL);
    assert.equal(run.status, 'requires_action', JSON.stringify(run.last_error));
    const ids = run.required_action.submit_tool_outputs.tool_calls.map((c) => c.id);
    assert.equal(ids.length, 2);
    return { thread, run, ids };
  }

  /** Watches an AssistantStream for any sign that it started streaming. */
  function watch(stream) {
    const w = { connected: false, events: [] };
    stream.on('connect', () => (w.connected = true)).on('event', (e) => w.events.push(e.event));
    return w;
  }

  test('runs.stream on a thread with an active run: BadRequestError before any event', LIMIT, async () => {
    const { thread, run } = await waitingRun();

    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const w = watch(stream);
    await assert.rejects(stream.done(), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 400);
      assert.equal(err.type, 'invalid_request_error');
      assert.equal(err.error.message, `Thread ${thread.id} already has an active run ${run.id}.`);
      return true;
    });
    assert.equal(w.connected, false, 'no stream was opened');
    assert.deepEqual(w.events, []);
    await assert.rejects(stream.finalRun(), OpenAI.BadRequestError);

    // The active run is untouched.
    const still = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(still.status, 'requires_action');
    const runs = [];
    for await (const r of client.beta.threads.runs.list(thread.id)) runs.push(r.id);
    assert.deepEqual(runs, [run.id], 'no second run was created');

    // Nor can messages be added meanwhile.
    await assert.rejects(client.beta.threads.messages.create(thread.id, { role: 'user', content: 'too early' }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert.match(err.message, new RegExp(`Can't add messages to ${thread.id} while a run ${run.id} is active`));
      return true;
    });
  });

  test('20 concurrent runs.create on one thread: exactly one succeeds, the rest are BadRequestError', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: call('get_weather', { city: 'Oslo' }) }] });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id })),
    );
    const created = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    assert.equal(created.length, 1, `${created.length} runs created`);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      assert.ok(r.reason instanceof OpenAI.BadRequestError, `got ${r.reason?.constructor?.name}: ${r.reason?.message}`);
      assert.equal(r.reason.error.message, `Thread ${thread.id} already has an active run ${created[0].id}.`);
    }
    const runs = [];
    for await (const r of client.beta.threads.runs.list(thread.id)) runs.push(r.id);
    assert.deepEqual(runs, [created[0].id]);
  });

  test('submitting one of two outputs: BadRequestError naming the expected call ids; the run still waits', LIMIT, async () => {
    const { thread, run, ids } = await waitingRun();
    const onlyFirst = { thread_id: thread.id, tool_outputs: [{ tool_call_id: ids[0], output: 'sunny' }] };

    await assert.rejects(client.beta.threads.runs.submitToolOutputs(run.id, onlyFirst), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 400);
      for (const id of ids) assert.ok(err.message.includes(id), `message does not name ${id}: ${err.message}`);
      return true;
    });

    // Unknown, extra or repeated ids are refused too.
    for (const tool_outputs of [
      [
        { tool_call_id: ids[0], output: 'a' },
        { tool_call_id: 'call_unknown', output: 'b' },
      ],
      [
        { tool_call_id: ids[0], output: 'a' },
        { tool_call_id: ids[1], output: 'b' },
        { tool_call_id: 'call_extra', output: 'c' },
      ],
      [
        { tool_call_id: ids[0], output: 'a' },
        { tool_call_id: ids[1], output: 'b' },
        { tool_call_id: ids[1], output: 'c' },
      ],
    ]) {
      await assert.rejects(
        client.beta.threads.runs.submitToolOutputs(run.id, { thread_id: thread.id, tool_outputs }),
        OpenAI.BadRequestError,
        JSON.stringify(tool_outputs),
      );
    }

    // The streaming variant is refused the same way, before streaming.
    const stream = client.beta.threads.runs.submitToolOutputsStream(run.id, onlyFirst);
    const w = watch(stream);
    await assert.rejects(stream.done(), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err?.constructor?.name}: ${err?.message}`);
      for (const id of ids) assert.ok(err.message.includes(id), `message does not name ${id}: ${err.message}`);
      return true;
    });
    assert.equal(w.connected, false);
    assert.deepEqual(w.events, []);

    const still = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(still.status, 'requires_action');
    assert.deepEqual(
      still.required_action.submit_tool_outputs.tool_calls.map((c) => c.id),
      ids,
    );

    // Both outputs in one request complete it.
    const done = await client.beta.threads.runs.submitToolOutputsAndPoll(
      run.id,
      {
        thread_id: thread.id,
        tool_outputs: [
          { tool_call_id: ids[0], output: 'sunny' },
          { tool_call_id: ids[1], output: 'rainy' },
        ],
      },
      POLL,
    );
    assert.equal(done.status, 'completed');
  });

  test('cancelling a slow streaming run mid-stream: thread.run.cancelled, message incomplete with the partial text', LIMIT, async () => {
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: '[[slow 100ms]] [[chunks 60]]' }],
    });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const events = [];
    let text = '';
    let deltas = 0;
    let cancelled; // the cancel request, sent once the answer is under way
    const messagesDone = [];
    const mismatches = statusMismatches(stream);
    stream
      .on('event', (e) => events.push(e.event))
      .on('textDelta', (d) => {
        text += d.value ?? '';
        if (++deltas === 3) {
          const run = stream.currentRun();
          cancelled = client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
        }
      })
      .on('messageDone', (m) => messagesDone.push(structuredClone(m)));

    const run = await stream.finalRun();
    assert.ok(cancelled, `the cancel was never sent; events: ${events.join(', ')}`);
    const cancelReply = await cancelled;
    assert.equal(cancelReply.id, run.id);
    assert.equal(cancelReply.status, 'cancelling');

    assert.equal(run.status, 'cancelled', `events: ${events.join(', ')}`);
    assert.deepEqual(mismatches, []);
    assert.ok(run.cancelled_at > 0);
    assert.equal(run.expires_at, null);
    assert.equal(events.at(-1), 'thread.run.cancelled', `events: ${events.join(', ')}`);
    assert.ok(!events.includes('thread.message.completed'));
    assert.ok(!events.includes('thread.run.completed'));
    const cancelling = events.indexOf('thread.run.cancelling');
    assert.ok(cancelling > 0, `no thread.run.cancelling in ${events.join(', ')}`);
    for (const e of ['thread.message.incomplete', 'thread.run.step.cancelled']) {
      const i = events.indexOf(e);
      assert.ok(i > cancelling && i < events.length - 1, `${e} not between cancelling and cancelled: ${events.join(', ')}`);
    }

    // The partial answer is kept: exactly what was streamed, a prefix of the full one.
    assert.ok(text.length > 0);
    assert.ok(words.startsWith(text) && text.length < words.length, `partial text: ${JSON.stringify(text)}`);
    assert.equal(messagesDone.length, 1);
    const message = messagesDone[0];
    assert.equal(message.status, 'incomplete');
    assert.deepEqual(message.incomplete_details, { reason: 'run_cancelled' });
    assert.equal(textOf(message), text);
    const stored = await client.beta.threads.messages.retrieve(message.id, { thread_id: thread.id });
    assert.equal(stored.status, 'incomplete');
    assert.equal(textOf(stored), text);

    const steps = await listSteps(client, thread.id, run.id);
    assert.deepEqual(
      steps.map((s) => [s.type, s.status]),
      [['message_creation', 'cancelled']],
    );
    assert.ok(steps[0].cancelled_at > 0);

    // The thread is free again.
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'after the cancel' });
  });

  test('a client dropping its stream does not stop the run', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: '[[slow 20ms]] [[chunks 20]]' }] });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    let runId;
    stream
      .on('event', (e) => {
        if (e.event === 'thread.run.created') runId = e.data.id;
      })
      .on('textDelta', () => stream.abort());
    await assert.rejects(stream.finalRun(), OpenAI.APIUserAbortError);
    assert.match(String(runId), /^run_/);

    const run = await client.beta.threads.runs.poll(runId, { thread_id: thread.id }, POLL);
    assert.equal(run.status, 'completed');
    const messages = await client.beta.threads.messages.list(thread.id);
    assert.equal(textOf(messages.data[0]), Array.from({ length: 20 }, (_, i) => `w${i}`).join(' '));
  });

  test('cancelling a run that waits for tool outputs; cancelling it again is refused', LIMIT, async () => {
    const { thread, run } = await waitingRun();
    const reply = await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    assert.equal(reply.status, 'cancelling');
    const done = await client.beta.threads.runs.poll(run.id, { thread_id: thread.id }, POLL);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.required_action, null);
    const steps = await listSteps(client, thread.id, run.id);
    assert.deepEqual(
      steps.map((s) => [s.type, s.status]),
      [['tool_calls', 'cancelled']],
    );
    await assert.rejects(client.beta.threads.runs.cancel(run.id, { thread_id: thread.id }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.error.message, "Cannot cancel run with status 'cancelled'.");
      return true;
    });
  });

  test('--run-timeout 5s: a waiting run and a streaming run both expire', LIMIT, async () => {
    const c = strict.client();
    const a = await c.beta.assistants.create({ model: 'fake-model', tools: [weatherTool] });

    const waiting = (async () => {
      const thread = await c.beta.threads.create({ messages: [{ role: 'user', content: call('get_weather', { city: 'Bern' }) }] });
      const run = await c.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, POLL);
      assert.equal(run.status, 'requires_action');
      assert.equal(run.expires_at, run.created_at + 5);
      // The SDK's poll() stops at requires_action, so poll by hand for the expiry.
      const { run: expired } = await pollRun(c, thread.id, run.id, { until: new Set(['expired', 'cancelled', 'failed', 'completed']) });
      assert.equal(expired.status, 'expired');
      assert.equal(expired.required_action, null);
      assert.equal(expired.expires_at, null);
      const steps = await listSteps(c, thread.id, run.id);
      assert.deepEqual(
        steps.map((s) => [s.type, s.status]),
        [['tool_calls', 'expired']],
      );
      assert.ok(steps[0].expired_at > 0);
      const callId = run.required_action.submit_tool_outputs.tool_calls[0].id;
      await assert.rejects(
        c.beta.threads.runs.submitToolOutputs(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: callId, output: 'late' }] }),
        OpenAI.BadRequestError,
      );
    })();

    const streaming = (async () => {
      // 150 chunks at 100 ms: still streaming when the 5 s are up.
      const thread = await c.beta.threads.create({ messages: [{ role: 'user', content: '[[slow 100ms]] [[chunks 150]]' }] });
      const stream = c.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
      const events = [];
      let text = '';
      const mismatches = statusMismatches(stream);
      stream.on('event', (e) => events.push(e.event)).on('textDelta', (d) => (text += d.value ?? ''));
      const run = await stream.finalRun();
      const messages = await stream.finalMessages();
      assert.equal(run.status, 'expired', `events: ${events.join(', ')}`);
      assert.deepEqual(mismatches, []);
      assert.equal(events.at(-1), 'thread.run.expired');
      for (const e of ['thread.message.incomplete', 'thread.run.step.expired']) {
        assert.ok(events.includes(e), `no ${e} in ${events.join(', ')}`);
      }
      assert.deepEqual(
        messages.map((m) => [m.status, m.incomplete_details, textOf(m)]),
        [['incomplete', { reason: 'run_expired' }, text]],
      );
    })();

    await Promise.all([waiting, streaming]);
  });

  test('upstream 500 with --upstream-retries 0: finalRun() resolves failed with last_error server_error', LIMIT, async () => {
    const c = strict.client();
    const a = await c.beta.assistants.create({ model: 'fake-model' });
    const thread = await c.beta.threads.create({ messages: [{ role: 'user', content: 'boom [[status 500]]' }] });
    const stream = c.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    const events = [];
    const mismatches = statusMismatches(stream);
    stream.on('event', (e) => events.push(e.event));
    const run = await stream.finalRun();

    assert.equal(run.status, 'failed', `events: ${events.join(', ')}`);
    assert.deepEqual(mismatches, []);
    assert.equal(run.last_error?.code, 'server_error', JSON.stringify(run.last_error));
    assert.ok(run.last_error.message.length > 0);
    assert.ok(run.failed_at > 0);
    assert.equal(run.expires_at, null);
    assert.equal(events.at(-1), 'thread.run.failed', `events: ${events.join(', ')}`);
    assert.ok(!events.includes('error'));
    assert.deepEqual(await c.beta.threads.runs.retrieve(run.id, { thread_id: thread.id }), run);
    for (const s of await listSteps(c, thread.id, run.id)) assert.equal(s.status, 'failed', `step ${s.id} left ${s.status}`);
  });

  test('upstream 429 with --upstream-retries 0: failed with last_error rate_limit_exceeded', LIMIT, async () => {
    const c = strict.client();
    const a = await c.beta.assistants.create({ model: 'fake-model' });
    const run = await c.beta.threads.createAndRunPoll(
      { assistant_id: a.id, thread: { messages: [{ role: 'user', content: 'slow down [[status 429]]' }] } },
      POLL,
    );
    assert.equal(run.status, 'failed');
    assert.equal(run.last_error?.code, 'rate_limit_exceeded', JSON.stringify(run.last_error));
  });

  test('one upstream 500 is retried and the run completes', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'once [[status 500 1]]' }] });
    const run = await client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }).finalRun();
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const messages = await client.beta.threads.messages.list(thread.id);
    assert.equal(textOf(messages.data[0]), 'You said: once');
  });
});

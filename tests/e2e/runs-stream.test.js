// Streaming runs through the Node SDK's AssistantStream helper, which is
// strict about event order (spec §7.7): runs.stream, submitToolOutputsStream
// and threads.createAndRunStream, with its handlers and final* accessors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, listMessages, statusMismatches, textOf, unique, weatherTool } from './helpers/runs.js';
import { startServerWithUpstream } from './helpers/upstream.js';

// A deadline for each test, so that a run that never ends fails instead of hanging.
const LIMIT = { timeout: 20_000 };

/**
 * Attaches the AssistantStream handlers under test and records what they
 * report. Returns the record; it is complete once the stream is done.
 */
function record(stream) {
  const r = {
    events: [], // every event name, in order ('event' handler)
    firstEvent: undefined,
    textCreated: [],
    text: '', // textDelta values concatenated
    textDeltaSnapshots: [],
    messagesDone: [],
    stepsCreated: [],
    toolCallsCreated: [],
    args: new Map(), // tool call index → arguments assembled from created + deltas
    toolCallDeltas: 0,
    textDone: [],
    messagesCreated: [],
    statusMismatches: statusMismatches(stream),
  };
  stream
    .on('event', (e) => {
      r.firstEvent ??= e;
      r.events.push(e.event);
    })
    .on('textCreated', (content) => r.textCreated.push(structuredClone(content)))
    .on('textDelta', (delta, snapshot) => {
      r.text += delta.value ?? '';
      r.textDeltaSnapshots.push(snapshot.value);
    })
    .on('textDone', (content) => r.textDone.push(content.value))
    .on('messageCreated', (message) => r.messagesCreated.push(structuredClone(message)))
    .on('messageDone', (message) => r.messagesDone.push(structuredClone(message)))
    .on('runStepCreated', (step) => r.stepsCreated.push(structuredClone(step)))
    .on('toolCallCreated', (toolCall) => {
      const tc = structuredClone(toolCall);
      r.toolCallsCreated.push(tc);
      r.args.set(r.toolCallsCreated.length - 1, tc.function?.arguments ?? '');
    })
    .on('toolCallDelta', (delta) => {
      r.toolCallDeltas++;
      const i = r.toolCallsCreated.length - 1; // deltas belong to the current call
      assert.equal(delta.index, i, `toolCallDelta for index ${delta.index} while call ${i} is current`);
      r.args.set(i, r.args.get(i) + (delta.function?.arguments ?? ''));
    });
  return r;
}

/** Event names with each run of deltas collapsed into one `<name>…`. */
function shape(events) {
  const out = [];
  for (const e of events) {
    const name = e.endsWith('.delta') ? e + '…' : e;
    if (name.endsWith('…') && out.at(-1) === name) continue;
    out.push(name);
  }
  return out;
}

const MESSAGE_EVENTS = [
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.message.created',
  'thread.message.in_progress',
  'thread.message.delta…',
  'thread.message.completed',
  'thread.run.step.completed',
];

describe('runs (streaming)', () => {
  let server;
  let client;
  let assistant;
  before(async () => {
    server = await startServerWithUpstream();
    client = server.client();
    assistant = await client.beta.assistants.create({ model: 'fake-model', tools: [weatherTool] });
  });
  after(() => server?.stop());

  test('runs.stream: text answer with textCreated, textDelta, messageDone, runStepCreated; final*()', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: '[[chunks 8]]' }] });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const r = record(stream);
    const run = await stream.finalRun();
    const messages = await stream.finalMessages();
    const steps = await stream.finalRunSteps();

    assert.deepEqual(r.statusMismatches, []);
    assert.deepEqual(shape(r.events), [
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      ...MESSAGE_EVENTS,
      'thread.run.completed',
    ]);
    assert.ok(r.events.filter((e) => e === 'thread.message.delta').length >= 2, 'the answer arrives in several deltas');

    const expected = 'w0 w1 w2 w3 w4 w5 w6 w7';
    assert.equal(r.textCreated.length, 1);
    assert.equal(r.text, expected, 'concatenated textDelta values are the answer');
    assert.equal(r.textDeltaSnapshots.at(-1), expected, 'the last textDelta snapshot is the whole answer');
    assert.deepEqual(r.textDone, [expected]);
    assert.equal(r.messagesCreated.length, 1);
    assert.equal(r.messagesCreated[0].status, 'in_progress');
    assert.deepEqual(r.messagesCreated[0].content, [], 'a message is created empty');

    assert.equal(run.status, 'completed');
    assert.equal(run.thread_id, thread.id);
    assert.ok(run.usage?.total_tokens > 0);

    assert.equal(r.messagesDone.length, 1);
    const done = r.messagesDone[0];
    assert.equal(done.status, 'completed');
    assert.equal(done.role, 'assistant');
    assert.equal(done.run_id, run.id);
    assert.equal(textOf(done), expected);
    assert.deepEqual(
      messages.map((m) => [m.id, m.status, textOf(m)]),
      [[done.id, 'completed', expected]],
    );

    assert.equal(r.stepsCreated.length, 1);
    assert.equal(r.stepsCreated[0].type, 'message_creation');
    assert.equal(r.stepsCreated[0].step_details.message_creation.message_id, done.id, 'message id set at step creation');
    assert.deepEqual(
      steps.map((s) => [s.id, s.type, s.status]),
      [[r.stepsCreated[0].id, 'message_creation', 'completed']],
    );

    // What was streamed is what is stored.
    const stored = await listMessages(client, thread.id);
    assert.equal(stored.length, 2);
    assert.deepEqual(stored[1], done);
    assert.deepEqual(await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id }), run);
  });

  test('runs.stream with two function calls, then submitToolOutputsStream to completion', LIMIT, async () => {
    const paris = { city: 'Paris' };
    const rome = { city: 'Rome', units: 'metric' };
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: `Weather? ${call('get_weather', paris)} ${call('get_weather', rome)}` }],
    });

    // Stream A: up to requires_action.
    const a = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const ra = record(a);
    const waiting = await a.finalRun();
    const stepsA = await a.finalRunSteps();

    assert.deepEqual(ra.statusMismatches, []);
    assert.deepEqual(shape(ra.events), [
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      'thread.run.step.created',
      'thread.run.step.in_progress',
      'thread.run.step.delta…',
      'thread.run.requires_action',
    ]);
    assert.equal(waiting.status, 'requires_action');
    const required = waiting.required_action.submit_tool_outputs.tool_calls;

    assert.equal(ra.stepsCreated.length, 1);
    assert.equal(ra.stepsCreated[0].type, 'tool_calls');
    assert.deepEqual(ra.stepsCreated[0].step_details, { type: 'tool_calls', tool_calls: [] });

    assert.deepEqual(
      ra.toolCallsCreated.map((c) => [c.type, c.function.name]),
      [
        ['function', 'get_weather'],
        ['function', 'get_weather'],
      ],
    );
    const ids = ra.toolCallsCreated.map((c) => c.id);
    assert.ok(unique(ids) && ids.every((id) => /^call_\w+$/.test(id)), `call ids ${ids}`);
    assert.deepEqual(
      required.map((c) => c.id),
      ids,
      'required_action names the streamed calls',
    );
    assert.ok(ra.toolCallDeltas > 0, 'arguments arrive in toolCallDelta fragments');
    assert.deepEqual(
      [...ra.args.values()],
      required.map((c) => c.function.arguments),
      'arguments assembled from the deltas equal required_action',
    );
    assert.deepEqual(
      [...ra.args.values()].map((s) => JSON.parse(s)),
      [paris, rome],
    );

    assert.equal(stepsA.length, 1);
    assert.equal(stepsA[0].status, 'in_progress', 'the tool step waits for outputs');
    assert.deepEqual(
      stepsA[0].step_details.tool_calls.map((c) => [c.id, c.function.name, c.function.arguments, c.function.output]),
      required.map((c) => [c.id, 'get_weather', c.function.arguments, null]),
    );
    assert.deepEqual(await a.finalMessages(), []);

    // Stream B: submit both outputs and stream the rest of the run.
    const b = client.beta.threads.runs.submitToolOutputsStream(waiting.id, {
      thread_id: thread.id,
      tool_outputs: [
        { tool_call_id: ids[0], output: 'sunny' },
        { tool_call_id: ids[1], output: 'rainy' },
      ],
    });
    const rb = record(b);
    const final = await b.finalRun();
    const messages = await b.finalMessages();
    const stepsB = await b.finalRunSteps();

    assert.deepEqual(rb.statusMismatches, []);
    assert.deepEqual(shape(rb.events), [
      'thread.run.step.completed',
      'thread.run.queued',
      'thread.run.in_progress',
      ...MESSAGE_EVENTS,
      'thread.run.completed',
    ]);
    assert.equal(final.id, waiting.id);
    assert.equal(final.status, 'completed', JSON.stringify(final.last_error));
    assert.equal(final.required_action, null);
    assert.equal(rb.text, 'Tool results: sunny; rainy');
    assert.deepEqual(
      messages.map((m) => [m.status, textOf(m)]),
      [['completed', 'Tool results: sunny; rainy']],
    );
    assert.deepEqual(
      stepsB.map((s) => [s.id, s.type, s.status]),
      [
        [stepsA[0].id, 'tool_calls', 'completed'],
        [rb.stepsCreated[0]?.id, 'message_creation', 'completed'],
      ],
    );
    assert.deepEqual(
      stepsB[0].step_details.tool_calls.map((c) => [c.id, c.function.output]),
      [
        [ids[0], 'sunny'],
        [ids[1], 'rainy'],
      ],
    );
  });

  for (const [label, quirk] of [
    ['the Ollama quirk: each call whole at index 0', 'ollama'],
    ['fragments without index', 'noindex'],
  ]) {
    test(`runs.stream with ${label}: still two calls with their own arguments`, LIMIT, async () => {
      const thread = await client.beta.threads.create({
        messages: [
          {
            role: 'user',
            content: `${call('get_weather', { city: 'Oslo' })} ${call('get_weather', { city: 'Lima' })} [[quirk ${quirk}]]`,
          },
        ],
      });
      const a = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
      const ra = record(a);
      const waiting = await a.finalRun();
      assert.equal(waiting.status, 'requires_action');
      const required = waiting.required_action.submit_tool_outputs.tool_calls;
      assert.equal(ra.toolCallsCreated.length, 2);
      const ids = ra.toolCallsCreated.map((c) => c.id);
      assert.ok(unique(ids), `call ids ${ids}`);
      assert.deepEqual(
        required.map((c) => c.id),
        ids,
      );
      assert.deepEqual(
        [...ra.args.values()].map((s) => JSON.parse(s)),
        [{ city: 'Oslo' }, { city: 'Lima' }],
      );

      const final = await client.beta.threads.runs
        .submitToolOutputsStream(waiting.id, {
          thread_id: thread.id,
          tool_outputs: ids.map((id, i) => ({ tool_call_id: id, output: `out${i}` })),
        })
        .finalRun();
      assert.equal(final.status, 'completed');
      assert.equal(textOf((await listMessages(client, thread.id)).at(-1)), 'Tool results: out0; out1');
    });
  }

  test('runs.stream hitting max_completion_tokens: thread.run.incomplete, message incomplete', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'cut short [[length]]' }] });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id, max_completion_tokens: 256 });
    const r = record(stream);
    const run = await stream.finalRun();
    const messages = await stream.finalMessages();
    assert.deepEqual(r.statusMismatches, []);
    assert.deepEqual(shape(r.events), [
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      'thread.run.step.created',
      'thread.run.step.in_progress',
      'thread.message.created',
      'thread.message.in_progress',
      'thread.message.delta…',
      'thread.message.incomplete',
      'thread.run.step.completed',
      'thread.run.incomplete',
    ]);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.equal(run.max_completion_tokens, 256);
    assert.deepEqual(
      messages.map((m) => [m.status, m.incomplete_details, textOf(m)]),
      [['incomplete', { reason: 'max_tokens' }, 'You said: cut short']],
    );
    assert.equal(r.text, 'You said: cut short');
  });

  test('runs.stream with additional_messages: the input message produces no events and is answered', LIMIT, async () => {
    const thread = await client.beta.threads.create();
    const stream = client.beta.threads.runs.stream(thread.id, {
      assistant_id: assistant.id,
      additional_messages: [{ role: 'user', content: 'added with the run' }],
    });
    const r = record(stream);
    const messages = await stream.finalMessages();
    assert.deepEqual(r.statusMismatches, []);
    assert.deepEqual(shape(r.events), [
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      ...MESSAGE_EVENTS,
      'thread.run.completed',
    ]);
    assert.deepEqual(
      messages.map((m) => textOf(m)),
      ['You said: added with the run'],
    );
    assert.deepEqual(
      (await listMessages(client, thread.id)).map((m) => [m.role, textOf(m)]),
      [
        ['user', 'added with the run'],
        ['assistant', 'You said: added with the run'],
      ],
    );
  });

  test('threads.createAndRunStream: thread.created first, then the run on that thread', LIMIT, async () => {
    const stream = client.beta.threads.createAndRunStream({
      assistant_id: assistant.id,
      thread: { messages: [{ role: 'user', content: 'streamed thread' }], metadata: { via: 'createAndRunStream' } },
    });
    const r = record(stream);
    const run = await stream.finalRun();
    const messages = await stream.finalMessages();

    assert.equal(r.firstEvent?.event, 'thread.created');
    const thread = r.firstEvent.data;
    assert.match(thread.id, /^thread_/);
    assert.deepEqual(thread.metadata, { via: 'createAndRunStream' });
    assert.deepEqual(r.statusMismatches, []);
    assert.deepEqual(shape(r.events), [
      'thread.created',
      'thread.run.created',
      'thread.run.queued',
      'thread.run.in_progress',
      ...MESSAGE_EVENTS,
      'thread.run.completed',
    ]);
    assert.equal(run.thread_id, thread.id);
    assert.equal(run.status, 'completed');
    assert.equal(r.text, 'You said: streamed thread');
    assert.deepEqual(
      messages.map((m) => [m.thread_id, textOf(m)]),
      [[thread.id, 'You said: streamed thread']],
    );
    assert.deepEqual(
      (await listMessages(client, thread.id)).map((m) => [m.role, textOf(m)]),
      [
        ['user', 'streamed thread'],
        ['assistant', 'You said: streamed thread'],
      ],
    );
  });
});

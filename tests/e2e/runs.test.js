// Runs executed server-side against the scripted upstream, driven the way
// the official Node SDK drives them without streaming: create, poll
// (by hand and with the SDK's *AndPoll helpers), submit tool outputs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, listMessages, listSteps, pollRun, textOf, unique, weatherTool } from './helpers/runs.js';
import { startServerWithUpstream } from './helpers/upstream.js';

// A deadline for each test, so that a run that never ends fails instead of hanging.
const LIMIT = { timeout: 20_000 };

const POLL = { pollIntervalMs: 10 };

describe('runs (polling)', () => {
  let server;
  let client;
  let assistant;
  before(async () => {
    server = await startServerWithUpstream();
    client = server.client();
    assistant = await client.beta.assistants.create({
      model: 'fake-model',
      name: 'runs e2e',
      instructions: 'You are a test assistant.',
      tools: [weatherTool],
    });
  });
  after(() => server?.stop());

  test('create → poll retrieve until terminal → messages.list shows the answer', LIMIT, async () => {
    const thread = await client.beta.threads.create();
    const question = await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'hello there' });

    const created = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    assert.equal(created.object, 'thread.run');
    assert.match(created.id, /^run_/);
    assert.equal(created.status, 'queued');
    assert.equal(created.thread_id, thread.id);
    assert.equal(created.assistant_id, assistant.id);
    assert.equal(created.model, 'fake-model');
    assert.equal(created.instructions, 'You are a test assistant.');
    assert.equal(created.expires_at, created.created_at + 600);
    assert.equal(created.usage, null);

    const { run, seen } = await pollRun(client, thread.id, created.id);
    assert.equal(run.status, 'completed', `statuses seen: ${seen.join(' → ')}; last_error ${JSON.stringify(run.last_error)}`);
    assert.equal(run.last_error, null);
    assert.equal(run.required_action, null);
    assert.equal(run.expires_at, null, 'expires_at is cleared once terminal');
    assert.ok(run.started_at >= run.created_at);
    assert.ok(run.completed_at >= run.started_at);
    assert.ok(run.usage && run.usage.total_tokens > 0, `usage ${JSON.stringify(run.usage)}`);
    assert.equal(run.usage.total_tokens, run.usage.prompt_tokens + run.usage.completion_tokens);

    const messages = await listMessages(client, thread.id);
    assert.deepEqual(
      messages.map((m) => [m.id, m.role]),
      [
        [question.id, 'user'],
        [messages[1]?.id, 'assistant'],
      ],
    );
    const answer = messages[1];
    assert.equal(textOf(answer), 'You said: hello there');
    assert.equal(answer.status, 'completed');
    assert.equal(answer.run_id, run.id);
    assert.equal(answer.assistant_id, assistant.id);

    const steps = await listSteps(client, thread.id, run.id);
    assert.equal(steps.length, 1);
    assert.equal(steps[0].type, 'message_creation');
    assert.equal(steps[0].status, 'completed');
    assert.equal(steps[0].step_details.message_creation.message_id, answer.id);
  });

  test('a two-turn conversation remembers the first turn', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'My name is Ada.' }] });
    const first = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL);
    assert.equal(first.status, 'completed');

    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'What is my name? [[recall]]' });
    const second = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL);
    assert.equal(second.status, 'completed');
    assert.notEqual(second.id, first.id);

    const messages = await listMessages(client, thread.id);
    assert.deepEqual(
      messages.map((m) => [m.role, textOf(m), m.run_id]),
      [
        ['user', 'My name is Ada.', null],
        ['assistant', 'You said: My name is Ada.', first.id],
        ['user', 'What is my name? [[recall]]', null],
        ['assistant', 'Earlier you said: My name is Ada.', second.id],
      ],
    );
    const runs = [];
    for await (const r of client.beta.threads.runs.list(thread.id)) runs.push(r.id);
    assert.deepEqual(runs, [second.id, first.id], 'runs list newest first');
  });

  test('function round trip: requires_action → submitToolOutputs → answer with the output', LIMIT, async () => {
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: `Weather in Paris? ${call('get_weather', { city: 'Paris' })}` }],
    });
    const created = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    const { run: waiting } = await pollRun(client, thread.id, created.id);
    assert.equal(waiting.status, 'requires_action');
    assert.equal(waiting.required_action.type, 'submit_tool_outputs');
    const calls = waiting.required_action.submit_tool_outputs.tool_calls;
    assert.equal(calls.length, 1);
    assert.match(calls[0].id, /^call_/);
    assert.equal(calls[0].type, 'function');
    assert.equal(calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris' });
    assert.notEqual(waiting.expires_at, null, 'a waiting run keeps its expiry');

    // The tool step waits, with no output yet.
    let steps = await listSteps(client, thread.id, created.id);
    assert.equal(steps.length, 1);
    assert.equal(steps[0].type, 'tool_calls');
    assert.equal(steps[0].status, 'in_progress');
    assert.deepEqual(
      steps[0].step_details.tool_calls.map((c) => [c.id, c.function.name, c.function.output]),
      [[calls[0].id, 'get_weather', null]],
    );

    const submitted = await client.beta.threads.runs.submitToolOutputs(created.id, {
      thread_id: thread.id,
      tool_outputs: [{ tool_call_id: calls[0].id, output: '22C and sunny' }],
    });
    assert.equal(submitted.id, created.id);
    assert.equal(submitted.status, 'queued');
    assert.equal(submitted.required_action, null);

    const { run: done } = await pollRun(client, thread.id, created.id);
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));

    const messages = await listMessages(client, thread.id);
    assert.equal(messages.length, 2);
    assert.equal(messages[1].role, 'assistant');
    assert.equal(textOf(messages[1]), 'Tool results: 22C and sunny');

    steps = await listSteps(client, thread.id, created.id);
    assert.deepEqual(
      steps.map((s) => [s.type, s.status]),
      [
        ['tool_calls', 'completed'],
        ['message_creation', 'completed'],
      ],
    );
    assert.equal(steps[0].step_details.tool_calls[0].function.output, '22C and sunny');
    // Usage per step, summed on the run.
    for (const s of steps) assert.ok(s.usage?.total_tokens > 0, `step ${s.type} usage ${JSON.stringify(s.usage)}`);
    const sum = (k) => steps.reduce((n, s) => n + s.usage[k], 0);
    assert.deepEqual(done.usage, {
      prompt_tokens: sum('prompt_tokens'),
      completion_tokens: sum('completion_tokens'),
      total_tokens: sum('total_tokens'),
    });
    assert.equal(steps[1].step_details.message_creation.message_id, messages[1].id);
  });

  // Two parallel calls, assembled from the upstream's chunks either way it
  // numbers them: by index (OpenAI) or every call at index 0 (Ollama).
  for (const [label, quirk] of [
    ['two parallel calls', ''],
    ['two parallel calls, Ollama quirk (every call at index 0)', ' [[quirk ollama]]'],
  ]) {
    test(`${label}: unique ids, both outputs in one request (createAndPoll, submitToolOutputsAndPoll)`, LIMIT, async () => {
      const thread = await client.beta.threads.create();
      await client.beta.threads.messages.create(thread.id, {
        role: 'user',
        content: `Paris and Rome? ${call('get_weather', { city: 'Paris' })} ${call('get_weather', { city: 'Rome' })}${quirk}`,
      });
      const waiting = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL);
      assert.equal(waiting.status, 'requires_action', JSON.stringify(waiting.last_error));
      const calls = waiting.required_action.submit_tool_outputs.tool_calls;
      assert.deepEqual(
        calls.map((c) => [c.type, c.function.name, JSON.parse(c.function.arguments)]),
        [
          ['function', 'get_weather', { city: 'Paris' }],
          ['function', 'get_weather', { city: 'Rome' }],
        ],
      );
      for (const c of calls) assert.match(c.id, /^call_\w+$/);
      assert.ok(unique(calls.map((c) => c.id)), `call ids not unique: ${calls.map((c) => c.id)}`);

      const done = await client.beta.threads.runs.submitToolOutputsAndPoll(
        waiting.id,
        {
          thread_id: thread.id,
          tool_outputs: [
            { tool_call_id: calls[0].id, output: 'Paris: 22C' },
            { tool_call_id: calls[1].id, output: 'Rome: 25C' },
          ],
        },
        POLL,
      );
      assert.equal(done.id, waiting.id);
      assert.equal(done.status, 'completed', JSON.stringify(done.last_error));

      const messages = await listMessages(client, thread.id);
      assert.equal(messages.length, 2);
      assert.equal(textOf(messages[1]), 'Tool results: Paris: 22C; Rome: 25C');

      const steps = await listSteps(client, thread.id, waiting.id);
      assert.equal(steps[0].type, 'tool_calls');
      assert.deepEqual(
        steps[0].step_details.tool_calls.map((c) => [c.id, c.function.output]),
        [
          [calls[0].id, 'Paris: 22C'],
          [calls[1].id, 'Rome: 25C'],
        ],
      );
    });
  }

  test('a non-terminal run is retrieved with openai-poll-after-ms', LIMIT, async () => {
    const thread = await client.beta.threads.create({
      messages: [{ role: 'user', content: '[[slow 60ms]] [[chunks 10]]' }],
    });
    const created = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    // The upstream takes ≥ 660 ms, so this retrieval sees the run unfinished.
    const { data, response } = await client.beta.threads.runs.retrieve(created.id, { thread_id: thread.id }).withResponse();
    assert.ok(['queued', 'in_progress'].includes(data.status), `status ${data.status}`);
    const after = response.headers.get('openai-poll-after-ms');
    assert.match(String(after), /^\d+$/, `openai-poll-after-ms: ${after}`);

    const done = await client.beta.threads.runs.poll(created.id, { thread_id: thread.id }, POLL);
    assert.equal(done.status, 'completed');
    assert.equal(textOf((await listMessages(client, thread.id))[1]), 'w0 w1 w2 w3 w4 w5 w6 w7 w8 w9');
  });

  test('a run echoes every knob it was created with; update changes metadata', LIMIT, async () => {
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'knobs' }] });
    const knobs = {
      model: 'fake-model-2',
      metadata: { k: 'v' },
      temperature: 0.2,
      top_p: 0.9,
      max_prompt_tokens: 1000,
      max_completion_tokens: 500,
      truncation_strategy: { type: 'last_messages', last_messages: 3 },
      tool_choice: 'none',
      parallel_tool_calls: false,
      response_format: { type: 'json_object' },
    };
    const run = await client.beta.threads.runs.create(thread.id, {
      assistant_id: assistant.id,
      additional_instructions: 'Be brief.',
      ...knobs,
    });
    for (const [k, v] of Object.entries(knobs)) assert.deepEqual(run[k], v, `run.${k}`);
    assert.ok(
      run.instructions.startsWith('You are a test assistant.') && run.instructions.endsWith('Be brief.'),
      `additional_instructions are appended: ${JSON.stringify(run.instructions)}`,
    );
    assert.deepEqual(run.tools, [weatherTool], "the assistant's tools");

    const done = await client.beta.threads.runs.poll(run.id, { thread_id: thread.id }, POLL);
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
    for (const [k, v] of Object.entries(knobs)) assert.deepEqual(done[k], v, `completed run.${k}`);

    const updated = await client.beta.threads.runs.update(run.id, { thread_id: thread.id, metadata: { k: 'w' } });
    assert.deepEqual(updated.metadata, { k: 'w' });
    assert.equal(updated.status, 'completed');
  });

  test('threads.createAndRunPoll', LIMIT, async () => {
    const run = await client.beta.threads.createAndRunPoll(
      { assistant_id: assistant.id, thread: { messages: [{ role: 'user', content: 'create and run' }] } },
      POLL,
    );
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.match(run.thread_id, /^thread_/);
    const messages = await listMessages(client, run.thread_id);
    assert.deepEqual(
      messages.map((m) => [m.role, textOf(m)]),
      [
        ['user', 'create and run'],
        ['assistant', 'You said: create and run'],
      ],
    );
  });
});

// code_interpreter through the Node SDK: the scripted upstream calls the
// code_interpreter function, assistantd runs the code in its bubblewrap
// sandbox, and the SDK's AssistantStream helpers see the input stream in,
// then the outputs; state stays in its thread; files go in and out.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { call, listMessages, listSteps, textOf } from './helpers/runs.js';
import { startServerWithUpstream } from './helpers/upstream.js';

// Generous: a kernel's first start on a loaded 2-core CI machine takes seconds.
const LIMIT = { timeout: 120_000 };

/** Whether bubblewrap and Debian's Python stack are here (CI must have them). */
function sandboxReady() {
  try {
    execFileSync('bwrap', ['--version'], { stdio: 'ignore' });
    execFileSync('/usr/bin/python3', ['-c', 'import numpy, pandas, matplotlib, scipy, sklearn'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI) throw new Error('bubblewrap or the python3 stack is missing on CI (see .ci/run)');
    return false;
  }
}

const skip = !sandboxReady() && 'bubblewrap or Debian python3 stack not installed';

describe('code_interpreter', { skip }, () => {
  let server;
  let client;
  let assistant;
  before(async () => {
    server = await startServerWithUpstream({ args: ['--code-pool', '1', '--code-timeout', '10s', '--code-cpu', '3s'] });
    client = server.client();
    assistant = await client.beta.assistants.create({ model: 'fake-model', tools: [{ type: 'code_interpreter' }] });
  });
  after(() => server?.stop());

  /** Runs code in a thread through a streamed run and records what the helpers saw. */
  async function streamCode(threadId, code, message = {}) {
    await client.beta.threads.messages.create(threadId, {
      role: 'user',
      content: `run it ${call('code_interpreter', { code })}`,
      ...message,
    });
    const seen = { created: [], input: '', inputDeltas: 0, logs: '', images: [] };
    const stream = client.beta.threads.runs
      .stream(threadId, { assistant_id: assistant.id })
      // As in the AssistantEventHandler examples: print the code as it streams, then its outputs.
      .on('toolCallCreated', (toolCall) => seen.created.push(structuredClone(toolCall)))
      .on('toolCallDelta', (delta) => {
        if (delta.type !== 'code_interpreter') return;
        if (delta.code_interpreter?.input) {
          seen.input += delta.code_interpreter.input;
          seen.inputDeltas++;
        }
        for (const output of delta.code_interpreter?.outputs ?? []) {
          if (output.type === 'logs') seen.logs += output.logs;
          if (output.type === 'image') seen.images.push(output.image.file_id);
        }
      });
    const run = await stream.finalRun();
    seen.run = run;
    seen.messages = await stream.finalMessages();
    return seen;
  }

  test('the input streams as step deltas, then the logs', LIMIT, async () => {
    const thread = await client.beta.threads.create();
    const code = 'import numpy as np\nx = np.arange(10).sum()  # "quoted" \\ é ✓\nprint("sum", x)';
    const seen = await streamCode(thread.id, code);
    assert.equal(seen.run.status, 'completed');
    assert.equal(seen.created.length, 1);
    assert.equal(seen.created[0].type, 'code_interpreter');
    assert.equal(seen.input, code);
    assert.ok(seen.inputDeltas >= 5, `input came in ${seen.inputDeltas} deltas`);
    assert.equal(seen.logs, 'sum 45\n');
    const steps = await listSteps(client, thread.id, seen.run.id);
    const ci = steps.flatMap((s) => s.step_details.tool_calls ?? []).find((c) => c.type === 'code_interpreter');
    assert.deepEqual(ci.code_interpreter, { input: code, outputs: [{ type: 'logs', logs: 'sum 45\n' }] });

    // A variable persists across runs of the thread, and only there.
    const again = await streamCode(thread.id, 'print(x * 2)');
    assert.equal(again.logs, '90\n');
    const other = await client.beta.threads.create();
    const elsewhere = await streamCode(other.id, 'print(x)');
    assert.match(elsewhere.logs, /NameError: name 'x' is not defined/);
  });

  test('a CSV attachment is read with pandas; a figure and a written CSV come back as files', LIMIT, async () => {
    const csv = await client.files.create({
      file: new File(['day,visits\nmon,3\ntue,5\nwed,8\n'], 'visits.csv', { type: 'text/csv' }),
      purpose: 'assistants',
    });
    const thread = await client.beta.threads.create();
    const code = [
      'import pandas as pd, matplotlib.pyplot as plt',
      "df = pd.read_csv('/mnt/data/visits.csv')",
      "print(df['visits'].sum())",
      "df.plot(x='day', y='visits')",
      'plt.show()',
      "df.assign(double=df.visits * 2).to_csv('/mnt/data/doubled.csv', index=False)",
    ].join('\n');
    const seen = await streamCode(thread.id, code, {
      attachments: [{ file_id: csv.id, tools: [{ type: 'code_interpreter' }] }],
    });
    assert.equal(seen.run.status, 'completed');
    assert.equal(seen.logs, '16\n');
    assert.equal(seen.images.length, 1);

    const [answer] = (await listMessages(client, thread.id)).slice(-1);
    const image = answer.content.find((c) => c.type === 'image_file');
    assert.equal(image?.image_file.file_id, seen.images[0]);
    const png = Buffer.from(await (await client.files.content(image.image_file.file_id)).arrayBuffer());
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal((await client.files.retrieve(image.image_file.file_id)).purpose, 'assistants_output');

    const text = answer.content.find((c) => c.type === 'text').text;
    const link = 'sandbox:/mnt/data/doubled.csv';
    const ann = text.annotations.find((a) => a.type === 'file_path');
    assert.ok(ann, `no file_path annotation in ${JSON.stringify(text)}`);
    assert.equal(ann.text, link);
    assert.equal([...text.value].slice(ann.start_index, ann.end_index).join(''), link);
    const body = await (await client.files.content(ann.file_path.file_id)).text();
    assert.equal(body, 'day,visits,double\nmon,3,6\ntue,5,10\nwed,8,16\n');
    assert.ok(textOf(answer).includes('16'));
  });

  test('a crash is an error output and the next call gets a fresh kernel', LIMIT, async () => {
    const thread = await client.beta.threads.create();
    await streamCode(thread.id, 'y = 1');
    const crash = await streamCode(thread.id, 'import ctypes\nctypes.string_at(0)');
    assert.equal(crash.run.status, 'completed');
    assert.match(crash.logs, /The kernel crashed/);
    const next = await streamCode(thread.id, "print('y' in globals())");
    assert.equal(next.logs, 'False\n');
  });
});

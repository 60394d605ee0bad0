// Start-up behaviour a new user meets: with no key configured, the first
// start generates one and prints it once; it keeps working after a restart,
// and so does everything stored before it.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import OpenAI, { toFile } from 'openai';

import { startServer } from './helpers/server.js';

const dirs = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('first start generates a key and prints it once; data and key survive a restart', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'assistantd-e2e-restart-'));
  dirs.push(dataDir);

  // First start: no --api-key, empty data directory.
  const first = await startServer({ apiKey: null, dataDir });
  let key;
  let ids;
  try {
    // The key is printed before the listening line, which startServer waited for.
    const m = /Generated an API key[^\n]*\n\s*\n\s*(\S+)\s*\n/.exec(first.stdout());
    assert.ok(m, `no generated key in stdout:\n${first.stdout()}`);
    key = m[1];
    assert.ok(key.length >= 32, `generated key ${key} is short`);

    const c = first.client({ apiKey: key });
    const a = await c.beta.assistants.create({ model: 'gpt-4o', name: 'persisted' });
    const t = await c.beta.threads.create({ metadata: { k: 'v' }, messages: [{ role: 'user', content: 'first' }] });
    const msg = await c.beta.threads.messages.create(t.id, { role: 'user', content: 'second' });
    const f = await c.files.create({ file: await toFile(Buffer.from('kept bytes'), 'kept.txt'), purpose: 'assistants' });
    ids = { a, t, msg, f };

    await assert.rejects(first.client({ apiKey: 'sk-not-the-generated-key' }).beta.assistants.list(), OpenAI.AuthenticationError);
  } finally {
    const { code } = await first.stop();
    assert.equal(code, 0, 'SIGTERM shuts down cleanly with exit code 0');
  }

  // Second start on the same data directory: no new key is generated.
  const second = await startServer({ apiKey: null, dataDir });
  try {
    assert.doesNotMatch(second.stdout(), /Generated an API key/);
    assert.ok(!second.stdout().includes(key), 'the key is not printed again');

    const c = second.client({ apiKey: key });
    assert.deepEqual(await c.beta.assistants.retrieve(ids.a.id), ids.a);
    assert.deepEqual(await c.beta.threads.retrieve(ids.t.id), ids.t);
    const msgs = [];
    for await (const m of c.beta.threads.messages.list(ids.t.id, { order: 'asc' })) msgs.push(m);
    assert.deepEqual(
      msgs.map((m) => m.content[0].text.value),
      ['first', 'second'],
    );
    assert.deepEqual(msgs[1], ids.msg);
    assert.deepEqual(await c.files.retrieve(ids.f.id), ids.f);
    assert.equal(await (await c.files.content(ids.f.id)).text(), 'kept bytes');
  } finally {
    await second.stop();
  }

  // A configured key works alongside the stored one.
  const third = await startServer({ dataDir });
  try {
    assert.equal((await third.client().beta.assistants.retrieve(ids.a.id)).id, ids.a.id);
    assert.equal((await third.client({ apiKey: key }).beta.assistants.retrieve(ids.a.id)).id, ids.a.id);
  } finally {
    await third.stop();
  }
});

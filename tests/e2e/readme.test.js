// The README's Node example, run as written (only its base URL pointed at
// the test server), so the README cannot drift from what works.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { assistantdBinary, startServer } from './helpers/server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

test("README's Node SDK example works against the server", async () => {
  const readme = await readFile(path.join(here, '../../README.md'), 'utf8');
  const block = /### Node[^\n]*\n[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ```js block under "### Node"');
  const documented = 'http://127.0.0.1:8080/v1';
  assert.ok(block[1].includes(documented), `the example uses ${documented}`);
  const code = block[1].replaceAll(documented, server.url + '/v1');

  // Run from this directory so `import 'openai'` resolves to the pinned SDK.
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], {
    cwd: here,
    env: { ...process.env, ASSISTANTD_KEY: server.apiKey },
  });
  const lines = stdout.trim().split('\n');
  assert.deepEqual(lines.slice(0, -1), ['user What is 2 + 2?', 'user And 3 + 3?']);
  const [assistantID, threadID] = lines.at(-1).split(' ');

  // What the example made is really stored.
  const client = server.client();
  const assistant = await client.beta.assistants.retrieve(assistantID);
  assert.equal(assistant.name, 'Math tutor');
  const thread = await client.beta.threads.retrieve(threadID);
  assert.deepEqual(thread.metadata, { user: 'alice' });
  const messages = (await client.beta.threads.messages.list(threadID)).data;
  assert.equal(messages.length, 2);
});

test("README's configuration table names every flag and variable of --help", async () => {
  const readme = await readFile(path.join(here, '../../README.md'), 'utf8');
  const { stdout: help } = await promisify(execFile)(await assistantdBinary(), ['--help']);
  const flags = [...help.matchAll(/^\s+-([a-z][a-z0-9-]*)/gm)].map((m) => m[1]);
  const envs = [...help.matchAll(/\b(ASSISTANTD_[A-Z_]+|OPENAI_API_KEY)\b/g)].map((m) => m[1]);
  assert.ok(flags.length >= 5, `found flags in --help: ${flags}`);
  for (const flag of flags) assert.ok(readme.includes('`--' + flag + '`'), `README documents --${flag}`);
  for (const env of new Set(envs)) assert.ok(readme.includes('`' + env), `README documents ${env}`);
});

// The scripted Chat Completions upstream (tests/upstream, served by
// ./tests/upstream/cmd/fake-upstream) for run tests, and an assistantd wired
// to it.
//
// What the upstream answers is scripted by directives in the last user
// message (see the doc comment of tests/upstream/upstream.go), e.g.
// `[[call get_weather {"city":"Paris"}]]`, `[[recall]]`, `[[status 500]]`,
// `[[slow 100ms]] [[chunks 60]]`; plain text is answered "You said: <text>"
// and tool outputs "Tool results: <outputs>".
//
// Like the assistantd binary, the fake upstream is $FAKE_UPSTREAM_BIN when
// set, otherwise built once per test process. Readiness is its "fake
// upstream listening on http://ADDR" line; nothing here sleeps.

import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { startServer } from './server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 15_000;

let binaryPromise;

/**
 * The fake-upstream binary: $FAKE_UPSTREAM_BIN when set, otherwise built
 * once per test process from the repo.
 */
export function fakeUpstreamBinary() {
  if (process.env.FAKE_UPSTREAM_BIN) return Promise.resolve(process.env.FAKE_UPSTREAM_BIN);
  binaryPromise ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fake-upstream-bin-'));
    const bin = path.join(dir, 'fake-upstream');
    await promisify(execFile)('go', ['build', '-o', bin, './tests/upstream/cmd/fake-upstream'], { cwd: repoRoot });
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return bin;
  })();
  return binaryPromise;
}

/**
 * Starts the fake upstream and resolves once it is listening.
 * Options: args (extra flags, e.g. ['--chunk-delay', '5ms']).
 * Returns { url, baseURL (url + '/v1'), process, stderr(), stop() }.
 */
export async function startFakeUpstream(options = {}) {
  const bin = await fakeUpstreamBinary();
  const child = spawn(bin, ['--addr', '127.0.0.1:0', ...(options.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // If the test process dies without calling stop(), take the upstream along.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  exited.then(() => process.off('exit', killOnExit));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fake upstream did not report listening within ${START_DEADLINE_MS} ms\nstdout:\n${out}\nstderr:\n${err}`));
    }, START_DEADLINE_MS);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`fake upstream exited (code ${code}, signal ${signal}) before listening\nstderr:\n${err}`));
    });
  });

  let stopped;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_DEADLINE_MS);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    })();
    return stopped;
  };

  return { url, baseURL: url + '/v1', process: child, stderr: () => err, stop };
}

/**
 * Starts a fake upstream and an assistantd whose --upstream-url points at
 * it. `options` are startServer's (e.g. args: ['--upstream-retries', '0']);
 * upstreamArgs go to the fake upstream.
 * Returns startServer's object plus `upstream`; its stop() stops both.
 */
export async function startServerWithUpstream(options = {}) {
  const { upstreamArgs, ...serverOptions } = options;
  const upstream = await startFakeUpstream({ args: upstreamArgs });
  let server;
  try {
    server = await startServer({ upstreamKey: 'sk-fake-upstream', ...serverOptions, upstreamURL: upstream.baseURL });
  } catch (e) {
    await upstream.stop();
    throw e;
  }
  const stopServer = server.stop;
  let stopped;
  return {
    ...server,
    upstream,
    stop: () => {
      stopped ??= (async () => {
        const result = await stopServer();
        await upstream.stop();
        return result;
      })();
      return stopped;
    },
  };
}

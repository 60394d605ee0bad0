// Starts the real assistantd binary for end-to-end tests and stops it again.
//
// Every test file runs in its own process under `node --test`, so each file
// starts its own server(s): a fresh data directory, a random API key and a
// kernel-chosen port (--addr 127.0.0.1:0). Readiness is the "listening on
// http://ADDR" line the server prints once its listener is open; nothing
// here sleeps.
//
// Later suites (runs against a scripted upstream) pass `upstreamURL` and, if
// needed, extra `args`/`env`; `startHTTPServer` gives them a loopback HTTP
// server to script the upstream with.

import { spawn, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import OpenAI from 'openai';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

// How long the server may take to print its listening line, and to exit
// after SIGTERM. These are deadlines for failure reports, not waits: a
// healthy server is ready in well under a second.
const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 15_000;

let binaryPromise;

// With ASSISTANTD_E2E_POSTGRES (a PostgreSQL URL where databases may be
// created; tests/run.sh sets it for its PostgreSQL pass) every data
// directory gets a database of its own, made with psql on first use, so a
// restart on the same directory finds the same records; a server's own
// database is dropped by stop().
const postgresURL = process.env.ASSISTANTD_E2E_POSTGRES ?? '';
const psql = (url, sql) => promisify(execFile)('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql]);

function databaseURL(name) {
  const u = new URL(postgresURL);
  u.pathname = '/' + name;
  return u.toString();
}

async function databaseFor(dataDir) {
  const name = 'assistantd_e2e_' + createHash('sha256').update(dataDir).digest('hex').slice(0, 20);
  const { stdout } = await psql(postgresURL, `SELECT 1 FROM pg_database WHERE datname = '${name}'`);
  if (stdout.trim() !== '1') await psql(postgresURL, `CREATE DATABASE ${name}`);
  return name;
}

/**
 * The assistantd binary to test: $ASSISTANTD_BIN when set (tests/run.sh
 * builds it once), otherwise built once per test process from the repo.
 */
export function assistantdBinary() {
  if (process.env.ASSISTANTD_BIN) return Promise.resolve(process.env.ASSISTANTD_BIN);
  binaryPromise ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'assistantd-bin-'));
    const bin = path.join(dir, 'assistantd');
    await promisify(execFile)('go', ['build', '-o', bin, '.'], { cwd: repoRoot });
    // Synchronous: at 'exit' the event loop has stopped.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return bin;
  })();
  return binaryPromise;
}

/** A random API key of the form the SDK sends as a bearer token. */
export function randomKey() {
  return 'sk-e2e-' + randomBytes(16).toString('hex');
}

/**
 * Starts assistantd and resolves once it is listening.
 *
 * Options:
 *   apiKey       the --api-key to configure; default a random one. Pass null
 *                to start without a configured key (first-start generation).
 *   dataDir      an existing data directory (to restart on the same store);
 *                default a fresh temporary one, removed by stop().
 *   upstreamURL  --upstream-url, for run tests against a scripted upstream.
 *   upstreamKey  --upstream-key.
 *   args         extra command-line arguments.
 *   env          extra environment variables.
 *
 * Returns { url, apiKey, dataDir, stdout(), stderr(), client(opts), stop() }.
 * stop() sends SIGTERM, waits for the process to exit and, unless dataDir
 * was passed in, removes the data directory. Register it with after()/t.after().
 */
export async function startServer(options = {}) {
  const bin = await assistantdBinary();
  const ownDataDir = !options.dataDir;
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'assistantd-e2e-')));
  const apiKey = options.apiKey === undefined ? randomKey() : options.apiKey;

  const args = ['--addr', '127.0.0.1:0', '--data', dataDir];
  if (apiKey !== null) args.push('--api-key', apiKey);
  if (options.upstreamURL) args.push('--upstream-url', options.upstreamURL);
  if (options.upstreamKey) args.push('--upstream-key', options.upstreamKey);
  args.push(...(options.args ?? []));
  const database = postgresURL ? await databaseFor(dataDir) : '';
  if (database) args.push('--database-url', databaseURL(database));

  // The developer's own ASSISTANTD_* / OPENAI_API_KEY must not leak into the
  // server under test: flags fall back to them.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ASSISTANTD_') && k !== 'OPENAI_API_KEY') env[k] = v;
  }
  Object.assign(env, options.env);

  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // If the test process dies without calling stop(), take the server along.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  exited.then(() => process.off('exit', killOnExit));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`assistantd did not report listening within ${START_DEADLINE_MS} ms\nstdout:\n${out}\nstderr:\n${err}`));
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
      reject(new Error(`assistantd exited (code ${code}, signal ${signal}) before listening\nstdout:\n${out}\nstderr:\n${err}`));
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
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
      if (ownDataDir && database) await psql(postgresURL, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      return exited;
    })();
    return stopped;
  };

  return {
    url,
    apiKey,
    dataDir,
    process: child,
    exited,
    stdout: () => out,
    stderr: () => err,
    /**
     * An official SDK client for this server; opts override the defaults.
     * Retries are off so that a transient 5xx fails the test instead of
     * being papered over by the SDK's automatic retry.
     */
    client: (opts = {}) => new OpenAI({ baseURL: url + '/v1', apiKey, maxRetries: 0, ...opts }),
    stop,
  };
}

/**
 * Starts a plain HTTP server on a loopback port with the given request
 * handler (e.g. a scripted Chat Completions upstream for run tests).
 * Returns { url, server, close() }.
 */
export async function startHTTPServer(handler) {
  const server = http.createServer(handler);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

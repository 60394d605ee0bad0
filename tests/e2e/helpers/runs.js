// Small shared pieces of the run suites (runs*.test.js).

import { setTimeout as delay } from 'node:timers/promises';

/** Statuses a run ends in, or waits in for the client (requires_action). */
export const SETTLED = new Set(['requires_action', 'cancelled', 'failed', 'completed', 'incomplete', 'expired']);

/** A function tool the scripted upstream can be told to call. */
export const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

/** `[[call NAME JSON]]`, the upstream directive for one function call. */
export function call(name, args) {
  return `[[call ${name} ${JSON.stringify(args)}]]`;
}

/**
 * Polls runs.retrieve until the run's status is in `until` (default
 * SETTLED) and returns { run, seen }.
 * Only for tests where polling is the behaviour under test; the deadline
 * turns a stuck run into a failure that shows the statuses seen.
 */
export async function pollRun(client, threadId, runId, { until = SETTLED, deadlineMs = 15_000, intervalMs = 20 } = {}) {
  const deadline = Date.now() + deadlineMs;
  const seen = [];
  for (;;) {
    const run = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (seen.at(-1) !== run.status) seen.push(run.status);
    if (until.has(run.status)) return { run, seen };
    if (Date.now() > deadline) {
      throw new Error(`run ${runId} not settled within ${deadlineMs} ms; statuses seen: ${seen.join(' → ')}`);
    }
    await delay(intervalMs);
  }
}

/** The text of a message: its text parts' values joined. */
export function textOf(message) {
  return message.content
    .filter((c) => c.type === 'text')
    .map((c) => c.text.value)
    .join('');
}

/** All messages of a thread, oldest first. */
export async function listMessages(client, threadId) {
  const out = [];
  for await (const m of client.beta.threads.messages.list(threadId, { order: 'asc' })) out.push(m);
  return out;
}

/** All steps of a run, oldest first. */
export async function listSteps(client, threadId, runId) {
  const out = [];
  for await (const s of client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc' })) out.push(s);
  return out;
}

/** `[0, 1, 2]` → true when ids are distinct. */
export function unique(values) {
  return new Set(values).size === values.length;
}

/** The status the object of each lifecycle event must carry (spec §7.2). */
const EVENT_STATUS = {
  'thread.run.created': 'queued',
  'thread.run.queued': 'queued',
  'thread.run.in_progress': 'in_progress',
  'thread.run.requires_action': 'requires_action',
  'thread.run.completed': 'completed',
  'thread.run.incomplete': 'incomplete',
  'thread.run.failed': 'failed',
  'thread.run.cancelling': 'cancelling',
  'thread.run.cancelled': 'cancelled',
  'thread.run.expired': 'expired',
  'thread.run.step.created': 'in_progress',
  'thread.run.step.in_progress': 'in_progress',
  'thread.run.step.completed': 'completed',
  'thread.run.step.failed': 'failed',
  'thread.run.step.cancelled': 'cancelled',
  'thread.run.step.expired': 'expired',
  'thread.message.created': 'in_progress',
  'thread.message.in_progress': 'in_progress',
  'thread.message.completed': 'completed',
  'thread.message.incomplete': 'incomplete',
};

/**
 * Records, for an AssistantStream, every lifecycle event whose object's
 * status does not match the event name. Returns the (live) list.
 */
export function statusMismatches(stream) {
  const bad = [];
  stream.on('event', (e) => {
    const want = EVENT_STATUS[e.event];
    if (want !== undefined && e.data?.status !== want) bad.push(`${e.event} carried status ${e.data?.status}`);
  });
  return bad;
}

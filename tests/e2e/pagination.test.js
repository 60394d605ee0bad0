// Auto-pagination over 250 messages created within about a second, so that
// many share a created_at second and page boundaries fall inside those ties.
// The SDK pages by re-sending the query with after=<last id>; the server must
// order by its insertion sequence so that nothing is skipped or repeated.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startServer } from './helpers/server.js';

const N = 250;

describe('auto-pagination over 250 messages', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer();
    client = server.client();
  });
  after(() => server?.stop());

  /** Every message id of a thread through `for await`, with the given query. */
  async function collect(threadID, query) {
    const ids = [];
    for await (const m of client.beta.threads.messages.list(threadID, query)) ids.push(m.id);
    return ids;
  }

  /** The size of the largest group of messages sharing one created_at. */
  function largestTie(messages) {
    const counts = new Map();
    for (const m of messages) counts.set(m.created_at, (counts.get(m.created_at) ?? 0) + 1);
    return Math.max(...counts.values());
  }

  test('created one after another: asc and desc give exactly the creation order', async () => {
    const thread = await client.beta.threads.create();
    const created = [];
    // Each create is awaited before the next, so creation order is known.
    for (let i = 0; i < N; i++) {
      created.push(await client.beta.threads.messages.create(thread.id, { role: 'user', content: `seq ${i}` }));
    }
    const expected = created.map((m) => m.id);
    // The premise: the messages really do share seconds.
    assert.ok(largestTie(created) >= 50, `largest created_at tie is only ${largestTie(created)}`);

    assert.deepEqual(await collect(thread.id, { order: 'asc', limit: 100 }), expected);
    assert.deepEqual(await collect(thread.id, { order: 'desc', limit: 100 }), [...expected].reverse());
    // Page boundaries elsewhere must not matter.
    assert.deepEqual(await collect(thread.id, { order: 'asc', limit: 33 }), expected);
  });

  test('created concurrently in batches: one stable order, no duplicates or gaps', async () => {
    const thread = await client.beta.threads.create();
    const BATCH = 25;
    const batchOf = new Map(); // message id -> batch number
    const created = [];
    for (let b = 0; b < N / BATCH; b++) {
      const batch = await Promise.all(
        Array.from({ length: BATCH }, (_, i) =>
          client.beta.threads.messages.create(thread.id, { role: 'user', content: `batch ${b} item ${i}` }),
        ),
      );
      for (const m of batch) batchOf.set(m.id, b);
      created.push(...batch);
    }
    assert.equal(batchOf.size, N, 'every create returned a distinct id');
    const byID = new Map(created.map((m) => [m.id, m]));

    const asc = await collect(thread.id, { order: 'asc', limit: 100 });
    assert.equal(asc.length, N);
    assert.equal(new Set(asc).size, N, 'no duplicates');
    assert.deepEqual(new Set(asc), new Set(batchOf.keys()), 'exactly the created messages');

    // Within a batch the requests raced, so the server's commit order decides;
    // across batches the order is known: batch b was answered before b+1 began.
    for (let i = 1; i < N; i++) {
      assert.ok(batchOf.get(asc[i - 1]) <= batchOf.get(asc[i]), `batch order broken at position ${i}`);
      assert.ok(byID.get(asc[i - 1]).created_at <= byID.get(asc[i]).created_at, `created_at decreases at ${i}`);
    }
    // The premise: a 100-item page boundary falls inside a same-second tie.
    const boundaryTies = [100, 200].filter((i) => byID.get(asc[i - 1]).created_at === byID.get(asc[i]).created_at);
    assert.ok(boundaryTies.length > 0, 'no page boundary falls inside a created_at tie');
    assert.ok(largestTie(created) >= 50, `largest created_at tie is only ${largestTie(created)}`);

    // Every other way of walking the list agrees with that one order.
    assert.deepEqual(await collect(thread.id, { order: 'desc', limit: 100 }), [...asc].reverse());
    assert.deepEqual(await collect(thread.id, { limit: 100 }), [...asc].reverse(), 'default order is desc');
    assert.deepEqual(await collect(thread.id, { order: 'asc', limit: 7 }), asc);

    // Paging backwards with `before` (what a UI's "previous page" does).
    const backwards = [asc[N - 1]];
    let cursor = asc[N - 1];
    for (;;) {
      const page = await client.beta.threads.messages.list(thread.id, { order: 'asc', limit: 100, before: cursor });
      assert.ok(page.data.length > 0);
      backwards.unshift(...page.data.map((m) => m.id));
      if (!page.has_more) break;
      cursor = page.data[0].id;
    }
    assert.deepEqual(backwards, asc);

    // Retrieving each message agrees with the listing's created_at.
    const some = await client.beta.threads.messages.retrieve(asc[137], { thread_id: thread.id });
    assert.equal(some.created_at, byID.get(asc[137]).created_at);
  });
});

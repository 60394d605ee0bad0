// Errors as the official Node SDK surfaces them: the right exception class,
// with status, type, code, param and the server's request id, and nothing
// stored by a rejected request.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { randomKey, startServer } from './helpers/server.js';

describe('errors', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer();
    client = server.client();
  });
  after(() => server?.stop());

  /** Asserts what every API error carries, then returns it. */
  function common(err, Class, status) {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.ok(err instanceof OpenAI.APIError);
    assert.equal(err.status, status);
    assert.match(err.requestID, /^req_/);
    assert.equal(err.requestID, err.headers.get('x-request-id'));
    // The whole envelope came back: all four keys.
    assert.deepEqual(Object.keys(err.error).sort(), ['code', 'message', 'param', 'type']);
    return err;
  }

  test('unknown ids are NotFoundError with OpenAI texts', async () => {
    const t = await client.beta.threads.create();
    const cases = [
      [() => client.beta.assistants.retrieve('asst_doesnotexist'), "No assistant found with id 'asst_doesnotexist'."],
      [() => client.beta.threads.retrieve('thread_doesnotexist'), "No thread found with id 'thread_doesnotexist'."],
      [
        () => client.beta.threads.messages.retrieve('msg_doesnotexist', { thread_id: t.id }),
        "No message found with id 'msg_doesnotexist'.",
      ],
      [() => client.files.retrieve('file-doesnotexist'), 'No such File object: file-doesnotexist'],
    ];
    for (const [call, message] of cases) {
      await assert.rejects(call(), (err) => {
        common(err, OpenAI.NotFoundError, 404);
        assert.equal(err.type, 'invalid_request_error');
        assert.equal(err.error.message, message);
        return true;
      });
    }
  });

  test('a wrongly prefixed id is a BadRequestError naming the parameter', async () => {
    await assert.rejects(client.beta.assistants.retrieve('thread_abc'), (err) => {
      common(err, OpenAI.BadRequestError, 400);
      assert.equal(err.param, 'assistant_id');
      assert.equal(err.code, 'invalid_value');
      assert.match(err.message, /Expected an ID that begins with 'asst'/);
      return true;
    });
    await assert.rejects(client.beta.threads.messages.list('asst_abc'), (err) => {
      common(err, OpenAI.BadRequestError, 400);
      assert.equal(err.param, 'thread_id');
      return true;
    });
  });

  test('invalid bodies are BadRequestError with param and code, and store nothing', async () => {
    const own = await startServer();
    try {
      const c = own.client();
      const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
      const cases = [
        [{ model: 'gpt-4o', temperature: 2.5 }, 'temperature', 'decimal_above_max_value'],
        [{ model: 'gpt-4o', top_p: -0.1 }, 'top_p', 'decimal_below_min_value'],
        [{ model: 'gpt-4o', metadata: tooMany }, 'metadata', 'object_above_max_properties'],
        [{ model: 'gpt-4o', metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata', 'string_above_max_length'],
        [{ model: 'gpt-4o', metadata: { k: 'v'.repeat(513) } }, 'metadata.k', 'string_above_max_length'],
        [{ model: 'gpt-4o', name: 'n'.repeat(257) }, 'name', 'string_above_max_length'],
        [{ model: 'gpt-4o', tools: [{ type: 'function', function: { name: 'bad name!' } }] }, 'tools[0].function.name', 'invalid_value'],
        [{ model: 'gpt-4o', tools: [{ type: 'browser' }] }, 'tools[0].type', 'invalid_value'],
        [{ name: 'no model' }, 'model', 'missing_required_parameter'],
        [{ model: 5 }, 'model', 'invalid_type'],
      ];
      for (const [body, param, code] of cases) {
        await assert.rejects(c.beta.assistants.create(body), (err) => {
          common(err, OpenAI.BadRequestError, 400);
          assert.equal(err.type, 'invalid_request_error');
          assert.equal(err.param, param, JSON.stringify(body).slice(0, 80));
          assert.equal(err.code, code, JSON.stringify(body).slice(0, 80));
          return true;
        });
      }
      const listed = await c.beta.assistants.list();
      assert.deepEqual(listed.data, [], 'no assistant was stored by a rejected request');

      const t = await c.beta.threads.create();
      await assert.rejects(
        c.beta.threads.messages.create(t.id, { role: 'system', content: 'x' }),
        (err) => common(err, OpenAI.BadRequestError, 400) && err.param === 'role',
      );
      await assert.rejects(
        c.beta.threads.messages.create(t.id, { role: 'user', content: [] }),
        (err) => common(err, OpenAI.BadRequestError, 400) && err.param === 'content',
      );
      await assert.rejects(
        c.beta.threads.update(t.id, { metadata: tooMany }),
        (err) => common(err, OpenAI.BadRequestError, 400) && err.param === 'metadata',
      );
      assert.deepEqual((await c.beta.threads.messages.list(t.id)).data, []);
      assert.deepEqual((await c.beta.threads.retrieve(t.id)).metadata, {});
    } finally {
      await own.stop();
    }
  });

  test('a bad cursor is a BadRequestError', async () => {
    const t = await client.beta.threads.create();
    await assert.rejects(client.beta.threads.messages.list(t.id, { after: 'msg_nothere' }), (err) => {
      common(err, OpenAI.BadRequestError, 400);
      assert.equal(err.param, 'after');
      return true;
    });
  });

  test('a wrong API key is an AuthenticationError', async () => {
    const wrong = server.client({ apiKey: randomKey() });
    await assert.rejects(wrong.beta.assistants.list(), (err) => {
      common(err, OpenAI.AuthenticationError, 401);
      assert.equal(err.code, 'invalid_api_key');
      assert.equal(err.type, 'invalid_request_error');
      return true;
    });
    // Every /v1 route is behind the key, files included.
    await assert.rejects(wrong.files.list(), OpenAI.AuthenticationError);
    await assert.rejects(wrong.beta.threads.create(), OpenAI.AuthenticationError);
  });

  test('an unknown route is an OpenAI-style NotFoundError', async () => {
    await assert.rejects(client.get('/no_such_endpoint'), (err) => {
      common(err, OpenAI.NotFoundError, 404);
      assert.equal(err.error.message, 'Invalid URL (GET /v1/no_such_endpoint)');
      assert.equal(err.type, 'invalid_request_error');
      return true;
    });
  });

  test('GET /healthz needs no key', async () => {
    const res = await fetch(server.url + '/healthz');
    assert.equal(res.status, 200);
  });
});

// End-to-end tests of write access on `wrangler dev`: a visit is +1 for
// anyone; any other counter step needs WRITE_TOKEN (or ADMIN_TOKEN); the
// kinds in WRITE_PROTECTED take writes only with the token while reads and
// event streams stay open; a missing or wrong token is a 401 JSON error
// and changes nothing; anonymous writes over the client's limit get 429
// with Retry-After, and what was refused is not counted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Cluster, NODES, assertError } from './harness.mjs';

const cluster = new Cluster({ WRITE_PROTECTED: 'sets kv contacts streams', WRITE_RATE_LIMIT: 'on' });
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const fresh = (stem) => `${stem}-${randomBytes(4).toString('hex')}`;
const wrong = { authorization: 'Bearer not-the-token' };
const values = async (name) => Promise.all(NODES.map(async (n) => (await cluster.read(name, n)).data.value));

test('a visit is +1 for anyone; any other step needs the write token, and a refused one changes nothing', async () => {
  const name = fresh('visits');
  const inc = `/api/counters/${name}/increment`;
  assert.equal((await cluster.request('POST', inc)).status, 200, 'a visit needs no body');
  assert.equal((await cluster.request('POST', inc, { body: { by: 1 } })).status, 200, '{"by": 1} is a visit');
  await cluster.converged(name, NODES, 2);
  const refused = [
    [await cluster.request('POST', inc, { body: { by: -1_000_000 } }), 'a decrement without a token'],
    [await cluster.request('POST', inc, { body: { by: 2 } }), 'a step of 2 without a token'],
    [await cluster.request('POST', inc, { body: { by: -1 }, headers: wrong }), 'a wrong token'],
    [await cluster.request('POST', inc, { body: { by: -1 }, headers: { authorization: cluster.writeToken } }), 'a token without Bearer'],
    [await cluster.request('POST', inc, { body: new Uint8Array([1, 1]), headers: { 'content-type': 'application/x-postcard' } }), 'a postcard decrement'],
  ];
  for (const [res, what] of refused) assertError(res, 401, 'unauthorized', what, /WRITE_TOKEN/);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(await values(name), [2, 2, 2, 2], 'no refused step counted at any node');
  assert.equal((await cluster.request('POST', inc, { body: { by: -2 }, write: true })).status, 200, 'WRITE_TOKEN');
  assert.equal((await cluster.request('POST', inc, { body: { by: 5 }, admin: true })).status, 200, 'ADMIN_TOKEN');
  await cluster.converged(name, NODES, 5);
});

test('protected kinds take writes only with the token; reads and event streams stay open', async () => {
  const set = `/api/sets/${fresh('s')}`;
  const key = `/api/kv/${fresh('k')}`;
  const topic = `/api/streams/${fresh('t')}`;
  const book = `/api/contacts/${fresh('b')}`;
  const delta = { id: randomUUID(), column: 'name', value: 'Ann', timestamp: `${Date.now()}-0000-0000000100000001`, seq: 1 };
  const writes = [
    ['PUT', set, { bias: 'add-wins' }],
    ['PUT', key, { value: 'v' }],
    ['DELETE', key, undefined],
    ['POST', `${topic}/events`, { message: 'm' }],
    ['POST', `${book}/push`, { client: '0000000100000001', deltas: [delta] }],
  ];
  for (const [method, path, body] of writes) {
    assertError(await cluster.request(method, path, { body }), 401, 'unauthorized', `${method} ${path}`, /WRITE_TOKEN/);
    assertError(await cluster.request(method, path, { body, headers: wrong }), 401, 'unauthorized', `${method} ${path}, wrong token`);
  }
  assert.deepEqual((await cluster.request('GET', key)).data.siblings, [], 'the refused PUT stored nothing');
  assert.deepEqual((await cluster.request('GET', `${topic}/heads`)).data.heads, [], 'the refused append stored nothing');
  assert.deepEqual((await cluster.request('GET', book)).data.contacts, [], 'the refused push stored nothing');

  assert.equal((await cluster.request('PUT', set, { body: { bias: 'add-wins' }, write: true })).status, 200);
  assertError(await cluster.request('POST', `${set}/insert`, { body: ['x'] }), 401, 'unauthorized', 'an insert');
  assert.equal((await cluster.request('POST', `${set}/insert`, { body: ['y'], write: true })).status, 200);
  assert.equal((await cluster.request('PUT', key, { body: { value: 'v' }, write: true })).status, 200);
  assert.equal((await cluster.request('POST', `${topic}/events`, { body: { message: 'm' }, write: true })).status, 200);
  assert.equal((await cluster.request('POST', `${book}/push`, { body: { client: '0000000100000001', deltas: [delta] }, write: true })).status, 200);

  // Reads, anonymous, at any replica once the writes have spread.
  const get = async (path) => (await cluster.request('GET', path)).data;
  await cluster.until(async () => (await get(set)).members?.join() === 'y', 'the set holds only the insert with the token');
  await cluster.until(async () => (await get(key)).siblings?.length === 1, 'the key reads back');
  await cluster.until(async () => (await get(`${topic}/heads`)).heads?.length === 1, 'the topic has its event');
  await cluster.until(async () => (await get(book)).contacts?.length === 1, 'the book has its contact');
  const seen = await cluster.events(`${set}/events`, (events) => events.some((e) => e.startsWith('data:')));
  assert.ok(seen.length > 0, 'the event stream is open');
});

test('anonymous writes over the client\'s limit get 429 with Retry-After, and only the admitted ones count', async () => {
  const name = fresh('limited');
  const inc = `/api/counters/${name}/increment?node=node-0`;
  let admitted = 0;
  let limited = null;
  for (let i = 0; i < 250 && !limited; i += 1) {
    const res = await cluster.request('POST', inc);
    if (res.status === 200) admitted += 1;
    else limited = res;
  }
  assert.ok(limited, 'a 429 within 250 visits');
  assertError(limited, 429, 'rate_limited', 'over the limit', /try again/);
  assert.equal(limited.headers.get('retry-after'), '10');
  // 100 a window: fewer if the visits above share it, more if this crossed one.
  assert.ok(admitted >= 90 && admitted <= 200, `about 100 admitted (${admitted})`);
  assert.equal((await cluster.request('POST', inc, { write: true })).status, 200, 'a write with the token is not limited');
  assert.equal((await cluster.request('GET', `/api/counters/${name}`)).status, 200, 'reads are not limited');
  await cluster.converged(name, NODES, admitted + 1);
});

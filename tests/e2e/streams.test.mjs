// End-to-end tests of the event streams on `wrangler dev`: appends at
// different nodes end in one order everywhere; a partition heals and the
// replicas backfill; queries page by cursor (an invalid one is a 400);
// a follower reads the arrival log; the live stream carries blocks whose
// ids check; a frame with a tampered event is refused over `/peer` and
// nothing of it is stored; the CAR export reads back with @ipld/car and
// every block's hash checks with multiformats; bad input changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { Cluster, NODES, assertError, varint } from './harness.mjs';
import { readCar } from './lib/car.mjs';

const cluster = new Cluster({ HEARTBEAT_INTERVAL_MS: '1000' });
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const fresh = (stem) => `${stem}-${randomBytes(4).toString('hex')}`;
const api = (topic, sub = '', query = {}) => {
  const q = new URLSearchParams(query).toString();
  return `/api/streams/${topic}${sub ? `/${sub}` : ''}${q ? `?${q}` : ''}`;
};
const append = (topic, message, node) => cluster.request('POST', api(topic, 'events', node ? { node } : {}), { body: { message } });
const heads = (topic, node) => cluster.request('GET', api(topic, 'heads', { node }));
const query = (topic, params = {}) => cluster.request('GET', api(topic, 'events', params));

/** Every event of `topic` at `node`, in pages of `limit`. */
async function readAll(topic, node, limit = 1000, extra = {}) {
  const out = [];
  let cursor;
  for (let i = 0; i < 1000; i += 1) {
    const res = await query(topic, { node, limit, ...extra, ...(cursor ? { cursor } : {}) });
    assert.equal(res.status, 200, JSON.stringify(res.data));
    out.push(...res.data.events);
    cursor = res.data.cursor;
    if (!cursor) return out;
  }
  throw new Error('the pages do not end');
}

/** The event ids every node's replica answers with, once all agree on `n` events. */
async function oneOrder(topic, n) {
  return cluster.until(async () => {
    const orders = await Promise.all(NODES.map(async (node) => (await readAll(topic, node)).map((e) => e.cid)));
    const same = orders.every((o) => o.length === n && o.join() === orders[0].join());
    return same && orders[0];
  }, `every node orders ${n} events of ${topic} the same`, 30_000);
}

/** A DAG-CBOR event block built here with the IPFS libraries, and its CID. */
async function eventBlock(topic, message, links = []) {
  const bytes = dagCbor.encode({
    topic, timestamp_ns: BigInt(Date.now()) * 1_000_000n, message: new TextEncoder().encode(message), links,
  });
  return { bytes, cid: CID.create(1, dagCbor.code, await sha256.digest(bytes)) };
}

const text = (s) => { const b = Buffer.from(s); return [...varint(b.length), ...b]; };
const bytesOf = (b) => [...varint(b.length), ...b];

/** A peer frame from `from` carrying `rows` ([cid, block]) of `object` as gossip. */
function gossipFrame(from, object, rows) {
  const body = [1, ...varint(from), ...varint(Date.now()), 0, 0, ...varint(1), ...text(object), ...varint(rows.length)];
  for (const [cid, block] of rows) body.push(...text(cid), ...bytesOf(block));
  body.push(...varint(0));
  return Uint8Array.from(body);
}

/** A topic that `node` replicates: appends at it land there. */
async function topicAt(node) {
  for (let i = 0; i < 50; i += 1) {
    const topic = fresh('at');
    const res = await append(topic, 'probe', node);
    assert.equal(res.status, 200, JSON.stringify(res.data));
    if (res.data.node === node) return topic;
  }
  throw new Error(`no topic lands on ${node}`);
}

test('appends at different nodes end in one order everywhere, and the replicas store each event once', async () => {
  const topic = fresh('chat');
  for (let i = 0; i < 12; i += 1) {
    const res = await append(topic, `m${i}`, NODES[i % 4]);
    assert.equal(res.status, 200, JSON.stringify(res.data));
    assert.ok(res.data.heads.includes(res.data.cid), 'an append becomes its node\'s head');
  }
  const order = await oneOrder(topic, 12);
  const stored = cluster.sql(`SELECT cid FROM event WHERE object = 'stream:${topic}' ORDER BY cid`);
  const replicas = Object.entries(stored).filter(([, rows]) => rows.length > 0);
  assert.equal(replicas.length, 3, 'the topic lives on 3 of the 4 nodes');
  for (const [node, rows] of replicas) {
    assert.deepEqual(rows.map((r) => r.cid), [...order].sort(), `${node} stores each event once`);
  }
  const desc = (await readAll(topic, 'node-1', 5, { direction: 'descending' })).map((e) => e.cid);
  assert.deepEqual(desc, [...order].reverse(), 'descending pages cover the same events backwards');
});

test('a partition heals and the replicas backfill what the other side appended', async () => {
  const topic = fresh('split');
  assert.equal((await append(topic, 'before', 'node-0')).status, 200);
  await oneOrder(topic, 1);
  await cluster.partition([['node-0', 'node-1'], ['node-2', 'node-3']]);
  for (let i = 0; i < 5; i += 1) {
    assert.equal((await append(topic, `left${i}`, 'node-0')).status, 200);
    assert.equal((await append(topic, `right${i}`, 'node-3')).status, 200);
  }
  await cluster.partition(null);
  const order = await oneOrder(topic, 11);
  const last = await Promise.all(NODES.map((n) => heads(topic, n)));
  assert.ok(last.every((h) => h.data.heads.join() === last[0].data.heads.join()), 'one set of heads');
  assert.equal(order.length, 11);
});

test('queries page by time and cursor, and a cursor outside the range is 400 invalid_cursor', async () => {
  const topic = fresh('q');
  const cids = [];
  for (let i = 0; i < 6; i += 1) cids.push((await append(topic, `q${i}`, 'node-2')).data.cid);
  const all = await readAll(topic, 'node-2', 2);
  assert.deepEqual(all.map((e) => e.cid), cids, 'one node\'s chain, in append order, each once');
  assert.equal(typeof all[0].timestamp_ns, 'string', 'nanoseconds are decimal strings');
  assert.equal(all[3].message, 'q3');
  const start = all[2].timestamp_ns;
  const later = await readAll(topic, 'node-2', 10, { start_time_ns: start });
  assert.deepEqual(later.map((e) => e.cid), cids.slice(2));
  assertError(await query(topic, { node: 'node-2', start_time_ns: start, cursor: cids[0] }), 400, 'invalid_cursor', 'a cursor before the range');
  assertError(await query(topic, { cursor: 'bafy-not-a-cid' }), 400, 'invalid_cursor', 'a cursor that is no id');
  await oneOrder(topic, cids.length); // the batch takes any replica's page: let each hold all six
  const multi = await cluster.request('POST', '/api/streams/query', {
    body: { queries: [{ topic, limit: 2 }, { topic: fresh('empty') }] },
  });
  assert.equal(multi.status, 200, JSON.stringify(multi.data));
  assert.deepEqual(multi.data.results[0].events.map((e) => e.cid), cids.slice(0, 2));
  assert.equal(multi.data.results[0].cursor, cids[1]);
  assert.deepEqual(multi.data.results[1].events, []);
});

test('a follower reads the arrival log, and the live stream carries blocks whose ids check', async () => {
  const topic = fresh('live');
  const first = (await append(topic, 'one', 'node-1')).data;
  const node = first.node;
  const log = await cluster.request('GET', api(topic, 'log', { node, after: 0 }));
  assert.equal(log.status, 200, JSON.stringify(log.data));
  assert.deepEqual(log.data.entries.map((e) => e.cid), [first.cid]);
  let second = '';
  const seen = cluster.events(api(topic, 'live', { node }), (events) => second !== '' && events.some((e) => e.includes(second)));
  await new Promise((r) => setTimeout(r, 500));
  second = (await append(topic, 'two', node)).data.cid;
  const events = await seen;
  const blocks = events.filter((e) => e.startsWith('data:')).flatMap((e) => JSON.parse(e.slice(5)));
  const got = blocks.find((b) => b.cid === second);
  assert.ok(got, `the live stream carried ${second}`);
  const digest = await sha256.digest(Buffer.from(got.block, 'base64'));
  assert.ok(CID.parse(second).multihash.bytes.every((b, i) => b === digest.bytes[i]), 'its block hashes to its id');
  const next = await cluster.request('GET', api(topic, 'log', { node, after: log.data.entries[0].seq }));
  assert.deepEqual(next.data.entries.map((e) => e.cid), [second]);
  assert.equal(next.data.more, false);
});

test('a frame with a tampered event is refused over /peer, and nothing of it is stored', async () => {
  const topic = await topicAt('node-0');
  const good = await eventBlock(topic, 'good');
  const real = await eventBlock(topic, 'real');
  const forged = Uint8Array.from(real.bytes);
  forged[forged.length - 1] ^= 1;
  const frame = gossipFrame(1, `stream:${topic}`, [[good.cid.toString(), good.bytes], [real.cid.toString(), forged]]);
  const refused = await cluster.request('POST', '/admin/nodes/node-0/peer', { body: frame, admin: true });
  assertError(refused, 400, 'bad_frame', 'a tampered event', /hash|id|canonical|decode/i);
  assert.equal((await cluster.request('GET', api(topic, `events/${good.cid}`, { node: 'node-0' }))).status, 404, 'the good event of the frame is not stored');
  const rows = cluster.sql(`SELECT cid FROM event WHERE cid IN ('${good.cid}', '${real.cid}')`);
  assert.deepEqual(Object.values(rows).flat(), [], 'no node stores either');
  const taken = await cluster.request('POST', '/admin/nodes/node-0/peer', {
    body: gossipFrame(1, `stream:${topic}`, [[good.cid.toString(), good.bytes]]), admin: true,
  });
  assert.equal(taken.status, 200, JSON.stringify(taken.data));
  const back = await cluster.request('GET', api(topic, `events/${good.cid}`, { node: 'node-0' }), { headers: { accept: 'application/vnd.ipld.dag-cbor' } });
  assert.equal(back.status, 200);
  assert.deepEqual(Buffer.from(back.data), Buffer.from(good.bytes), 'an event built by @ipld/dag-cbor is taken byte for byte');
});

test('the CAR export reads back with @ipld/car, its roots the heads and every block hashing to its id', async () => {
  const topic = fresh('car');
  for (let i = 0; i < 5; i += 1) assert.equal((await append(topic, `c${i}`, NODES[i % 2])).status, 200);
  const order = await oneOrder(topic, 5);
  const res = await cluster.request('GET', api(topic, 'export.car', { node: 'node-0' }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car');
  const car = await readCar(res.data);
  const h = await heads(topic, 'node-0');
  assert.deepEqual([...car.roots].sort(), [...h.data.heads].sort());
  assert.deepEqual(car.blocks.map((b) => b.cid), order, 'blocks in the total order');
  assert.ok(car.blocks.every((b) => b.value.topic === topic));
  const json = await cluster.request('GET', api(topic, `events/${order[4]}`));
  assert.deepEqual(car.blocks[4].value.links.map(String), json.data.event.links);
});

test('a postcard append, and bad input is a 4xx JSON error that changes nothing', async () => {
  const topic = await topicAt('node-0');
  const postcard = Uint8Array.from([1, ...bytesOf(Buffer.from('binary')), 0]);
  const pc = await cluster.request('POST', api(topic, 'events', { node: 'node-0' }), {
    body: postcard, headers: { 'content-type': 'application/x-postcard', accept: 'application/x-postcard' },
  });
  assert.equal(pc.status, 200);
  assert.equal(pc.headers.get('content-type'), 'application/x-postcard');
  const before = (await heads(topic, 'node-0')).data.heads;
  const held = (await readAll(topic, 'node-0')).length;
  const unknown = (await eventBlock(topic, 'never')).cid.toString();
  const json = { 'content-type': 'application/json' };
  const post = (body, headers = json) => cluster.request('POST', api(topic, 'events', { node: 'node-0' }), { body, headers });
  const cases = [
    [await post('[]'), 400, 'bad_json', 'an array body'],
    [await post({}), 400, 'bad_json', 'no message'],
    [await post({ message: 'x', extra: 1 }), 400, 'bad_json', 'an unknown field'],
    [await post({ message: 5 }), 400, 'bad_json', 'a number message'],
    [await post({ message: 'x', message_base64: 'eA==' }), 400, 'bad_json', 'two messages'],
    [await post({ message_base64: '%%%' }), 400, 'bad_value', 'bad base64'],
    [await post({ message: 'x'.repeat(17 * 1024) }), 413, 'value_too_large', 'a message over the limit'],
    [await post({ message: 'x', timestamp_ns: String(BigInt(Date.now() + 3_600_000) * 1_000_000n) }), 422, 'bad_timestamp', 'an hour ahead'],
    [await post({ message: 'x', timestamp_ns: '12a' }), 400, 'bad_json', 'a timestamp that is no number'],
    [await post('hello', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type', 'text/plain'],
    [await query(topic, { limit: 0 }), 400, 'bad_limit', 'limit 0'],
    [await query(topic, { direction: 'sideways' }), 400, 'bad_direction', 'a direction'],
    [await query(topic, { start_time_ns: 5, end_time_ns: 1 }), 400, 'bad_time', 'start after end'],
    [await query(topic, { end_time_ns: '-1' }), 400, 'bad_time', 'a negative time'],
    [await cluster.request('GET', api(topic, 'events/nope')), 400, 'bad_cid', 'an id that is no CID'],
    [await cluster.request('GET', api(topic, `events/${unknown}`)), 404, 'not_found', 'an id not held'],
    [await cluster.request('PUT', api(topic, 'events')), 405, 'method_not_allowed', 'PUT'],
    [await cluster.request('DELETE', api(topic, 'heads')), 405, 'method_not_allowed', 'DELETE heads'],
    [await cluster.request('GET', api(topic, 'nothing')), 404, 'not_found', 'an unknown path'],
    [await cluster.request('GET', api(topic, 'log', { after: 'x' })), 400, 'bad_cursor', 'a log cursor'],
    [await cluster.request('POST', '/api/streams/query', { body: { queries: [] } }), 400, 'bad_batch', 'no topics'],
    [await cluster.request('POST', '/api/streams/query', { body: { queries: [{ limit: 1 }] } }), 400, 'bad_json', 'a query without a topic'],
    [await cluster.request('POST', '/api/streams/query', { body: '[1]', headers: json }), 400, 'bad_json', 'an array query'],
    [await cluster.request('POST', '/admin/nodes/node-0/peer', { body: Uint8Array.from([1, 2, 3]), admin: true }), 400, 'bad_frame', 'a frame that is no frame'],
  ];
  for (const [res, status, code, what] of cases) assertError(res, status, code, what);
  assert.ok(cases.length >= 10);
  assert.deepEqual((await heads(topic, 'node-0')).data.heads, before, 'the heads did not move');
  assert.equal((await readAll(topic, 'node-0')).length, held, 'no event was added');
});

// End-to-end tests of the LWW element set API on `wrangler dev`: creation
// and bias, writes at every node and convergence, canonical numbers, ties,
// `/updates?since=`, SSE, postcard, offline-to-online `/update` and the
// attacks on it (missing token, forged timestamps), and bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, NODES, assertError, varint } from './harness.mjs';

// Heartbeats every second, so the SSE test sees one without waiting 15 s.
const cluster = new Cluster({ HEARTBEAT_INTERVAL_MS: '1000' });
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const U64_MAX = '18446744073709551615';
const JSON_TYPE = { 'content-type': 'application/json' };
const POSTCARD = 'application/x-postcard';

/** A valid HLC stamp for "now" plus `ms` milliseconds (below 2^53). */
const stampAt = (ms = 0) => (Date.now() + ms) * 1024;

const url = (name, sub, node, query = '') => {
  const q = [node && `node=${node}`, query].filter(Boolean).join('&');
  return `/api/sets/${encodeURIComponent(name)}${sub ? `/${sub}` : ''}${q ? `?${q}` : ''}`;
};
const create = (name, bias, node) => cluster.request('PUT', url(name, '', node), { body: { bias } });
const insert = (name, elements, node) => cluster.request('POST', url(name, 'insert', node), { body: elements });
const remove = (name, elements, node) => cluster.request('POST', url(name, 'delete', node), { body: elements });
const readSet = (name, node) => cluster.request('GET', url(name, '', node));
const updates = (name, since, node) => cluster.request('GET', url(name, 'updates', node, since === undefined ? '' : `since=${since}`));
/** `POST /update`: `replica` is an object, raw JSON text or postcard bytes; `token: null` sends none. */
function sync(name, replica, { node, token = cluster.syncToken, headers = {} } = {}) {
  const h = { ...(replica instanceof Uint8Array ? { 'content-type': POSTCARD } : JSON_TYPE), ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  const body = typeof replica === 'string' || replica instanceof Uint8Array ? replica : JSON.stringify(replica);
  return cluster.request('POST', url(name, 'update', node), { body, headers: h });
}

const key = (e) => JSON.stringify(e);
const sorted = (list) => [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

/**
 * Polls every node in `nodes` until each reads `name` with exactly the
 * members `expected` (any order), the same list on every node, and passes
 * `extra(view)`. Returns the views.
 */
async function settled(name, expected, { nodes = NODES, extra = () => true, timeoutMs = 20_000 } = {}) {
  let seen = [];
  try {
    return await cluster.until(async () => {
      seen = await Promise.all(nodes.map(async (n) => (await readSet(name, n)).data));
      const same = seen.every((v, i) => v.node === nodes[i]
        && key(sorted(v.members)) === key(sorted(expected))
        && key(v.members) === key(seen[0].members)
        && extra(v));
      return same && seen;
    }, `${name} converges`, timeoutMs);
  } catch (e) {
    throw new Error(`${e.message} on ${key(sorted(expected))}: ${key(seen.map((v) => [v.node, v.bias, v.members, v.latest]))}`);
  }
}

/** Each node's whole entry list for `name`: `/updates?since=0`. */
async function entries(name) {
  return Promise.all(NODES.map(async (n) => {
    const res = await updates(name, 0, n);
    assert.equal(res.status, 200, key(res.data));
    return res.data;
  }));
}

/**
 * After requests that must have changed nothing: writes a marker at every
 * node, waits until every node has every marker (so anything written
 * before a marker at its node has arrived too), then checks that each
 * node's entries, markers aside, are `before`.
 */
async function unchangedEverywhere(name, before, expectedMembers) {
  const markers = NODES.map((n) => `marker-${n}-${Math.random().toString(36).slice(2)}`);
  for (const [i, n] of NODES.entries()) assert.equal((await insert(name, [markers[i]], n)).status, 200);
  await settled(name, [...expectedMembers, ...markers]);
  const isMarker = ([e]) => markers.includes(e);
  for (const [i, now] of (await entries(name)).entries()) {
    assert.equal(now.bias, before[i].bias, `${NODES[i]}: bias`);
    assert.deepEqual(now.adds.filter((x) => !isMarker(x)), before[i].adds, `${NODES[i]}: adds`);
    assert.deepEqual(now.removes.filter((x) => !isMarker(x)), before[i].removes, `${NODES[i]}: removes`);
  }
  return markers;
}

// Postcard, for the binary bodies: varints, strings, elements, replicas.
const pcString = (s) => { const b = [...new TextEncoder().encode(s)]; return [...varint(b.length), ...b]; };
/** An `Element`: Bool = 0, Num = 1 (canonical text), Str = 2. */
function pcElement(e) {
  if (typeof e === 'boolean') return [0, e ? 1 : 0];
  if (typeof e === 'number') return [1, ...pcString(String(e))];
  if (e && e.num !== undefined) return [1, ...pcString(e.num)];
  return [2, ...pcString(e)];
}
const envelope = (bytes) => new Uint8Array([1, ...bytes]);
/** An `LwwSet`: created (Option<(u64, Bias)>), adds and removes (maps of element to u64). */
function pcReplica({ created, adds = [], removes = [] }) {
  const map = (list) => [...varint(list.length), ...list.flatMap(([e, t]) => [...pcElement(e), ...varint(t)])];
  const c = created ? [1, ...varint(created[0]), created[1] === 'remove-wins' ? 1 : 0] : [0];
  return envelope([...c, ...map(adds), ...map(removes)]);
}
/** The `LwwSet` envelope at the end of a postcard set reply (`name`, `node`, `state`). */
function stateOfReply(bytes) {
  assert.equal(bytes[0], 1, 'envelope version');
  const nameLen = bytes[1]; // names are under 128 bytes: a one-byte varint
  const afterNode = 2 + nameLen + 1; // node ids under 128: one byte
  return Buffer.from([1, ...bytes.slice(afterNode)]).toString('base64');
}

test('PUT creates a set with either bias; the other bias is a 409 at any node', async () => {
  const res = await create('fruits', 'add-wins', 'node-0');
  assert.equal(res.status, 200, key(res.data));
  const { name, node, bias, members, latest } = res.data;
  assert.deepEqual({ name, node, bias, members }, { name: 'fruits', node: 'node-0', bias: 'add-wins', members: [] });
  assert.ok(latest > 0, 'the creation is stamped');
  const again = await create('fruits', 'add-wins', 'node-0');
  assert.equal(again.status, 200, 'the same bias again is fine');
  assert.equal(again.data.bias, 'add-wins');
  assertError(await create('fruits', 'remove-wins', 'node-0'), 409, 'already_created', 'other bias, same node', /add-wins/);
  // A never-created set reads as add-wins with latest 0: latest > 0 means
  // the node has the creation.
  await settled('fruits', [], { extra: (v) => v.bias === 'add-wins' && v.latest > 0 });
  for (const node of NODES.slice(1)) {
    assertError(await create('fruits', 'remove-wins', node), 409, 'already_created', `other bias at ${node}`, /add-wins/);
    assert.equal((await create('fruits', 'add-wins', node)).status, 200);
  }

  const rw = await create('veggies', 'remove-wins', 'node-2');
  assert.equal(rw.status, 200, key(rw.data));
  assert.equal(rw.data.bias, 'remove-wins');
  await settled('veggies', [], { extra: (v) => v.bias === 'remove-wins' });
  for (const node of NODES) {
    assertError(await create('veggies', 'add-wins', node), 409, 'already_created', `add-wins at ${node}`, /remove-wins/);
  }

  // A postcard creation: Create { bias: RemoveWins } is variant index 1.
  const pc = await cluster.request('PUT', url('binary-created', '', 'node-1'), {
    body: envelope([1]), headers: { 'content-type': POSTCARD },
  });
  assert.equal(pc.status, 200);
  assert.equal(pc.headers.get('content-type'), POSTCARD);
  await settled('binary-created', [], { extra: (v) => v.bias === 'remove-wins' });
});

test('inserts and deletes at different nodes converge on every node', async () => {
  assert.equal((await create('basket', 'add-wins', 'node-0')).status, 200);
  await Promise.all(NODES.map(async (node, i) => {
    const res = await insert('basket', [`item-${i}-a`, `item-${i}-b`, i], node);
    assert.equal(res.status, 200, key(res.data));
    assert.equal(res.data.node, node);
    assert.equal(res.data.name, 'basket');
    assert.equal(res.data.bias, 'add-wins');
    for (const e of [`item-${i}-a`, `item-${i}-b`, i]) assert.ok(res.data.members.includes(e), `${node} returns its write`);
  }));
  const all = NODES.flatMap((_, i) => [`item-${i}-a`, `item-${i}-b`, i]);
  await settled('basket', all);
  // Each node deletes what another node inserted.
  await Promise.all(NODES.map(async (node, i) => {
    const j = (i + 1) % NODES.length;
    const res = await remove('basket', [`item-${j}-b`, j], node);
    assert.equal(res.status, 200, key(res.data));
    assert.equal(res.data.node, node);
    assert.ok(!res.data.members.includes(`item-${j}-b`), `${node} returns the set without it`);
  }));
  const views = await settled('basket', NODES.map((_, i) => `item-${i}-a`));
  const latest = views[0].latest;
  assert.ok(views.every((v) => v.latest === latest), 'every node has the same latest stamp');
  // A later insert beats the earlier delete; deleting what is absent is fine.
  assert.equal((await insert('basket', ['item-2-b'], 'node-3')).status, 200);
  assert.equal((await remove('basket', ['never-there'], 'node-1')).status, 200);
  const last = await settled('basket', [...NODES.map((_, i) => `item-${i}-a`), 'item-2-b']);
  assert.ok(last[0].latest > latest);
  // The largest batch, 256 elements, is fine.
  const big = Array.from({ length: 256 }, (_, i) => `big-${i}`);
  const res = await insert('big', big, 'node-2');
  assert.equal(res.status, 200, key(res.data));
  assert.equal(res.data.members.length, 256);
  await settled('big', big);
});

test('numbers are canonical: 1, 1.0 and 1e0 are one element; "1" and true are others', async () => {
  const raw = '[1, 1.0, 1e0, 10e-1, 2.5, 2.50, 0.25e1, -0, 0, 0.0, 100, 1e2, "1", true]';
  const res = await cluster.request('POST', url('numbers', 'insert', 'node-0'), { body: raw, headers: JSON_TYPE });
  assert.equal(res.status, 200, key(res.data));
  assert.deepEqual(sorted(res.data.members), sorted([0, 1, 2.5, 100, '1', true]));
  await settled('numbers', [0, 1, 2.5, 100, '1', true]);
  // Deleting 1.0 at another node deletes the number 1, not the string "1".
  const del = await cluster.request('POST', url('numbers', 'delete', 'node-3'), { body: '[1.0, 25e-1]', headers: JSON_TYPE });
  assert.equal(del.status, 200, key(del.data));
  await settled('numbers', [0, 100, '1', true]);
});

for (const [bias, kept] of [['add-wins', true], ['remove-wins', false]]) {
  test(`an add and a remove with one timestamp: ${bias} ${kept ? 'keeps' : 'drops'} the element on every node`, async () => {
    const name = `tie-${bias}`;
    const made = await create(name, bias, 'node-0');
    assert.equal(made.status, 200);
    await settled(name, [], { extra: (v) => v.bias === bias && v.latest > 0 });
    // One replica with x added and removed at the same t; y only added.
    const t = stampAt();
    const latest = Math.max(t, made.data.latest); // the creation is stamped too
    const res = await sync(name, { adds: [['x', t], ['y', t]], removes: [['x', t]] }, { node: 'node-1' });
    assert.equal(res.status, 200, key(res.data));
    assert.equal(res.data.node, 'node-1');
    assert.equal(res.data.latest, latest);
    const expected = kept ? ['x', 'y'] : ['y'];
    assert.deepEqual(sorted(res.data.members), expected);
    await settled(name, expected, { extra: (v) => v.bias === bias && v.latest === latest });
    for (const e of await entries(name)) {
      assert.deepEqual(e.adds, [['x', t], ['y', t]], `${e.node} keeps both sides of the tie`);
      assert.deepEqual(e.removes, [['x', t]], e.node);
    }
    // A tie between a server insert and a replica's remove at its stamp.
    const ins = await insert(name, ['w'], 'node-2');
    assert.equal(ins.status, 200);
    const w = (await updates(name, 0, 'node-2')).data.adds.find(([e]) => e === 'w')[1];
    assert.equal(w, ins.data.latest);
    assert.equal((await sync(name, { removes: [['w', w]] }, { node: 'node-3' })).status, 200);
    await settled(name, kept ? ['x', 'y', 'w'] : ['y'], { extra: (v) => v.latest === w });
  });
}

test('/updates?since=T returns exactly the entries stamped after T', async () => {
  const name = 'log';
  assert.equal((await create(name, 'add-wins', 'node-0')).status, 200);
  const l1 = (await insert(name, ['a', 'b'], 'node-0')).data.latest;
  const l2 = (await remove(name, ['a'], 'node-0')).data.latest;
  const l3 = (await insert(name, ['c'], 'node-0')).data.latest;
  assert.ok(l1 < l2 && l2 < l3, `stamps increase: ${l1} ${l2} ${l3}`);
  await settled(name, ['b', 'c'], { extra: (v) => v.latest === l3 });
  // The whole set, as entries: a's add is dropped, its later remove stays.
  const all = { adds: [['b', l1], ['c', l3]], removes: [['a', l2]] };
  const after = (t) => ({
    adds: all.adds.filter(([, s]) => s > t),
    removes: all.removes.filter(([, s]) => s > t),
  });
  for (const node of NODES) {
    const plain = await updates(name, undefined, node);
    assert.equal(plain.status, 200);
    assert.deepEqual(plain.data, { node, since: 0, latest: l3, bias: 'add-wins', ...all }, 'no since is since=0');
    for (const since of [0, l1 - 1, l1, l1 + 1, l2 - 1, l2, l3 - 1, l3, l3 + 1000]) {
      const res = await updates(name, since, node);
      assert.equal(res.status, 200, key(res.data));
      assert.deepEqual(res.data, { node, since, latest: l3, bias: 'add-wins', ...after(since) }, `${node} since ${since}`);
    }
  }
  const max = await updates(name, U64_MAX, 'node-1');
  assert.equal(max.status, 200);
  assert.deepEqual([max.data.adds, max.data.removes], [[], []]);
  for (const bad of ['-1', 'abc', '1.5', '18446744073709551616', '']) {
    assertError(await updates(name, bad, 'node-2'), 400, 'bad_since', `since=${bad}`);
  }
});


const readPostcard = (name, node) => cluster.request('GET', url(name, '', node), { headers: { accept: POSTCARD } });

test('server-sent events deliver the current set, then each change, with retry: and heartbeats', async () => {
  assert.equal((await create('live', 'remove-wins', 'node-0')).status, 200);
  assert.equal((await insert('live', ['first'], 'node-0')).status, 200);
  await settled('live', ['first'], { nodes: ['node-1'], extra: (v) => v.bias === 'remove-wins' });
  const current = stateOfReply((await readPostcard('live', 'node-1')).data);
  let wrote = false;
  const data = (evs) => evs.filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  const events = await cluster.events(url('live', 'events', 'node-1'), async (evs) => {
    const d = data(evs);
    if (d.length >= 1 && !wrote) {
      wrote = true;
      assert.equal(d[0], current, 'the first event is the current state');
      assert.equal((await insert('live', ['second'], 'node-3')).status, 200);
    }
    return d.length >= 2 && evs.some((e) => e.startsWith(': heartbeat'));
  });
  assert.ok(events.some((e) => /^retry: \d+/.test(e)), 'sets retry:');
  assert.ok(events.some((e) => e.startsWith(': heartbeat')), 'sends heartbeat comments');
  const d = data(events);
  assert.ok(d.length >= 2, `a second data event after the write: ${key(events)}`);
  assert.notEqual(d[1], d[0]);
  await settled('live', ['first', 'second'], { nodes: ['node-1'] });
  const now = stateOfReply((await readPostcard('live', 'node-1')).data);
  assert.equal(d[d.length - 1], now, 'the last pushed state is node-1\'s new state');
});

test('postcard: insert with a postcard body, and postcard replies', async () => {
  assert.equal((await create('binary', 'add-wins', 'node-0')).status, 200);
  // Vec<Element> [Str "pc", Num "7", Bool true, Num "2.5"]: length, then each variant index and payload.
  const body = envelope([4, 2, 2, 0x70, 0x63, 1, 1, 0x37, 0, 1, 1, 3, 0x32, 0x2e, 0x35]);
  assert.deepEqual([...body], [1, 4, ...pcElement('pc'), ...pcElement(7), ...pcElement(true), ...pcElement(2.5)]);
  const res = await cluster.request('POST', url('binary', 'insert', 'node-2'), { body, headers: { 'content-type': POSTCARD } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), POSTCARD);
  const bytes = res.data;
  assert.equal(bytes[0], 1, 'envelope version');
  assert.equal(new TextDecoder().decode(bytes.slice(2, 2 + bytes[1])), 'binary');
  assert.equal(bytes[2 + bytes[1]], 2, 'node-2 as a varint');
  await settled('binary', [true, 2.5, 7, 'pc']);
  const read = await readPostcard('binary', 'node-0');
  assert.equal(read.status, 200);
  assert.equal(read.headers.get('content-type'), POSTCARD);
  assert.equal(read.data[2 + read.data[1]], 0, 'node-0 answered');
  // A postcard delete of Num "7".
  const del = await cluster.request('POST', url('binary', 'delete', 'node-3'), {
    body: envelope([1, ...pcElement(7)]), headers: { 'content-type': POSTCARD },
  });
  assert.equal(del.status, 200);
  await settled('binary', [true, 2.5, 'pc']);
  // Bad postcard: truncated, wrong version, non-canonical number, empty list.
  const bad = [
    [new Uint8Array([1, 3, 2, 9]), 'bad_postcard'],
    [new Uint8Array([7, 1, 0, 1]), 'bad_postcard'],
    [envelope([1, ...pcElement({ num: '1.0' })]), 'bad_element'],
    [envelope([1, ...pcElement({ num: 'NaN' })]), 'bad_element'],
    [envelope([0]), 'bad_batch'],
  ];
  for (const [b, error] of bad) {
    const r = await cluster.request('POST', url('binary', 'insert', 'node-1'), { body: b, headers: { 'content-type': POSTCARD } });
    assertError(r, 400, error, `postcard ${[...b]}`);
  }
  await settled('binary', [true, 2.5, 'pc']);
});

test('offline to online: a replica of recent stamps merges by last-writer-wins and converges', async () => {
  const name = 'offline';
  assert.equal((await create(name, 'add-wins', 'node-0')).status, 200);
  const early = stampAt(-3_600_000); // an hour ago: the offline client's older edit
  const online = await insert(name, ['server-only', 'kept', 'online-later'], 'node-0');
  assert.equal(online.status, 200);
  await settled(name, ['server-only', 'kept', 'online-later']);
  // The client edited offline; its clock says now (and one edit 30 s
  // ahead, within MAX_DRIFT_MS), after the server's insert.
  const t = Math.max(stampAt(), online.data.latest + 1);
  const ahead = stampAt(30_000);
  const replica = {
    adds: [['offline-a', t], ['offline-b', t + 1], [42, t + 2], ['ahead', ahead]],
    removes: [['server-only', t + 3], ['kept', early], ['never-added', t + 4]],
  };
  const res = await sync(name, replica, { node: 'node-2' });
  assert.equal(res.status, 200, key(res.data));
  assert.equal(res.data.node, 'node-2');
  assert.equal(res.data.latest, ahead);
  const expected = ['kept', 'online-later', 'offline-a', 'offline-b', 42, 'ahead'];
  assert.deepEqual(sorted(res.data.members), sorted(expected));
  await settled(name, expected, { extra: (v) => v.latest === ahead });
  // The same replica again changes nothing (merge is idempotent).
  assert.equal((await sync(name, replica, { node: 'node-1' })).status, 200);
  // Every node's clock moved past the replica's stamps: a delete now, at
  // any node, is later than the add 30 s ahead.
  const del = await remove(name, ['ahead'], 'node-3');
  assert.equal(del.status, 200);
  assert.ok(del.data.latest > ahead);
  assert.ok(!del.data.members.includes('ahead'));
  await settled(name, expected.filter((e) => e !== 'ahead'));
  // A postcard replica: the set's state as SSE and postcard replies carry it
  // (creation included), plus one more add.
  const state = Buffer.from(stateOfReply((await readPostcard(name, 'node-1')).data), 'base64');
  const pc = await sync(name, pcReplica({ adds: [['from-postcard', stampAt()]] }), { node: 'node-1' });
  assert.equal(pc.status, 200);
  assert.equal(pc.headers.get('content-type'), POSTCARD);
  const echo = await sync(name, new Uint8Array(state), { node: 'node-0' });
  assert.equal(echo.status, 200, 'a replica as the server sent it merges');
  await settled(name, [...expected.filter((e) => e !== 'ahead'), 'from-postcard']);
});

test('/update refuses a missing or wrong token and forged timestamps, and nothing changes on any node', async () => {
  const name = 'guarded';
  assert.equal((await create(name, 'add-wins', 'node-0')).status, 200);
  assert.equal((await insert(name, ['keep', 1], 'node-0')).status, 200);
  await settled(name, ['keep', 1]);
  const before = await entries(name);
  const now = stampAt();
  const inTwoMinutes = stampAt(120_000);
  const token = cluster.syncToken;
  const zero = /timestamp 0 is not allowed/;
  const far = /ms ahead of the server clock; at most 60000 ms is allowed/;
  const cases = [
    // [what, node, options, replica, status, error, message]
    ['no token', 'node-0', { token: null }, { adds: [['intruder', now]] }, 401, 'unauthorized', /SYNC_TOKEN/],
    ['wrong token', 'node-1', { token: 'wrong' }, { adds: [['intruder', now]] }, 401, 'unauthorized', /SYNC_TOKEN/],
    ['token with a suffix', 'node-2', { token: `${token}x` }, { removes: [['keep', now]] }, 401, 'unauthorized', /SYNC_TOKEN/],
    ['the admin token', 'node-3', { token: cluster.token }, { removes: [['keep', now]] }, 401, 'unauthorized', /SYNC_TOKEN/],
    ['basic auth', 'node-0', { token: null, headers: { authorization: `Basic ${token}` } }, { adds: [['intruder', now]] }, 401, 'unauthorized', /SYNC_TOKEN/],
    ['insert at 0', 'node-1', {}, '{"adds": [["intruder", 0]]}', 422, 'bad_timestamp', zero],
    ['delete at 0', 'node-2', {}, '{"removes": [["keep", 0]]}', 422, 'bad_timestamp', zero],
    ['insert at u64::MAX', 'node-3', {}, `{"adds": [["intruder", ${U64_MAX}]]}`, 422, 'bad_timestamp', far],
    ['delete at u64::MAX', 'node-0', {}, `{"removes": [["keep", ${U64_MAX}]]}`, 422, 'bad_timestamp', far],
    ['insert 2 minutes ahead', 'node-1', {}, { adds: [['intruder', inTwoMinutes]] }, 422, 'bad_timestamp', far],
    ['delete 2 minutes ahead', 'node-2', {}, { removes: [['keep', inTwoMinutes]] }, 422, 'bad_timestamp', far],
    ['valid entries with one at 0', 'node-3', {}, `{"adds": [["intruder", ${now}]], "removes": [[1, 0]]}`, 422, 'bad_timestamp', zero],
    ['valid entries with one ahead', 'node-0', {}, { adds: [['intruder', now]], removes: [['keep', inTwoMinutes]] }, 422, 'bad_timestamp', far],
    ['an add at 0 under a later remove', 'node-1', {}, `{"adds": [["keep", 0]], "removes": [["keep", ${now}]]}`, 422, 'bad_timestamp', zero],
    ['postcard insert at 0', 'node-2', {}, pcReplica({ adds: [['intruder', 0]] }), 422, 'bad_timestamp', zero],
    ['postcard delete at u64::MAX', 'node-3', {}, pcReplica({ removes: [['keep', BigInt(U64_MAX)]] }), 422, 'bad_timestamp', far],
    ['postcard creation at 0', 'node-0', {}, pcReplica({ created: [0, 'remove-wins'] }), 422, 'bad_timestamp', zero],
  ];
  for (const [what, node, opts, replica, status, error, message] of cases) {
    assertError(await sync(name, replica, { node, ...opts }), status, error, what, message);
  }
  await unchangedEverywhere(name, before, ['keep', 1]);
});

test('a replica cannot change the bias: its creation is not the set\'s', async () => {
  const name = 'forged-creation';
  assert.equal((await create(name, 'add-wins', 'node-0')).status, 200);
  const t = stampAt();
  assert.equal((await sync(name, { adds: [['x', t]], removes: [['x', t]] }, { node: 'node-0' })).status, 200);
  await settled(name, ['x'], { extra: (v) => v.bias === 'add-wins' });
  // A postcard replica claiming an earlier creation with the other bias
  // would win "earliest creation" and flip every tie.
  // Its entries merge; its creation is ignored.
  const res = await sync(name, pcReplica({ created: [1, 'remove-wins'], adds: [['y', stampAt()]] }), { node: 'node-2' });
  assert.equal(res.status, 200);
  await settled(name, ['x', 'y']);
  for (const node of NODES) {
    const v = (await readSet(name, node)).data;
    assert.equal(v.bias, 'add-wins', `${node} keeps the bias of the PUT`);
    assert.ok(v.members.includes('x'), `${node} still keeps the tied x`);
  }
  assertError(await create(name, 'remove-wins', 'node-3'), 409, 'already_created', 'the bias is still add-wins', /add-wins/);
});

test('bad input gets a 4xx JSON error that names the problem, and changes nothing', async () => {
  const name = 'strict';
  assert.equal((await create(name, 'remove-wins', 'node-0')).status, 200);
  assert.equal((await insert(name, ['ok', 3, false], 'node-1')).status, 200);
  await settled(name, ['ok', 3, false], { extra: (v) => v.bias === 'remove-wins' });
  const before = await entries(name);
  const raw = (body, headers = JSON_TYPE) => ({ body, headers });
  const base = `/api/sets/${name}`;
  const many = JSON.stringify(Array.from({ length: 257 }, (_, i) => i));
  const cases = [
    ['POST', `${base}/insert`, raw('["a", '), 400, 'bad_json'],
    ['POST', `${base}/insert`, raw('{"elements": ["a"]}'), 400, 'bad_json'],
    ['POST', `${base}/delete`, raw(''), 400, 'bad_json'],
    ['POST', `${base}/insert`, raw('[]'), 400, 'bad_batch'],
    ['POST', `${base}/delete`, raw('[]'), 400, 'bad_batch'],
    ['POST', `${base}/insert`, raw(many), 400, 'bad_batch'],
    ['POST', `${base}/insert`, raw('[null]'), 400, 'bad_element'],
    ['POST', `${base}/insert`, raw('[[1]]'), 400, 'bad_element'],
    ['POST', `${base}/insert`, raw('[{"a":1}]'), 400, 'bad_element'],
    ['POST', `${base}/delete`, raw('["fine", null]'), 400, 'bad_element'],
    ['POST', `${base}/insert`, raw(JSON.stringify(['x'.repeat(300)])), 400, 'bad_element'],
    ['POST', `${base}/insert`, raw(JSON.stringify(['é'.repeat(129)])), 400, 'bad_element'], // 258 bytes
    ['POST', `${base}/insert`, raw('[1e400]'), 400, 'bad_json'],
    ['PUT', base, raw('{"bias": "add-wins", "extra": 1}'), 400, 'bad_json'],
    ['PUT', base, raw('{"bias": "both"}'), 400, 'bad_json'],
    ['PUT', base, raw('{}'), 400, 'bad_json'],
    ['PUT', base, raw('{"bias": '), 400, 'bad_json'],
    ['POST', `${base}/update`, { body: '{"adds": [["a", 5]], "extra": []}', headers: { ...JSON_TYPE, authorization: `Bearer ${cluster.syncToken}` } }, 400, 'bad_json'],
    ['POST', `${base}/update`, { body: '{"adds": [[null, 5]]}', headers: { ...JSON_TYPE, authorization: `Bearer ${cluster.syncToken}` } }, 400, 'bad_element'],
    ['POST', `${base}/update`, { body: '{"adds": [["a", -5]]}', headers: { ...JSON_TYPE, authorization: `Bearer ${cluster.syncToken}` } }, 400, 'bad_json'],
    ['POST', `${base}/insert`, raw('["a"]', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type'],
    ['PUT', base, raw('bias=add-wins', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type'],
    ['POST', `${base}/insert`, raw(JSON.stringify(['x'.repeat(5000)])), 413, 'body_too_large'],
    ['POST', `${base}/delete`, raw(JSON.stringify(Array.from({ length: 200 }, (_, i) => `${i}`.padStart(30, 'y')))), 413, 'body_too_large'],
    ['PUT', base, raw(JSON.stringify({ bias: 'add-wins', pad: 'p'.repeat(5000) })), 413, 'body_too_large'],
    ['POST', `${base}/update`, { body: JSON.stringify({ adds: [['p'.repeat(600_000), 5]] }), headers: { ...JSON_TYPE, authorization: `Bearer ${cluster.syncToken}` } }, 413, 'body_too_large'],
    ['DELETE', base, {}, 405, 'method_not_allowed', /GET or PUT/],
    ['POST', base, raw('["a"]'), 405, 'method_not_allowed', /GET or PUT/],
    ['GET', `${base}/insert`, {}, 405, 'method_not_allowed', /use POST/],
    ['PUT', `${base}/delete`, raw('["ok"]'), 405, 'method_not_allowed', /use POST/],
    ['GET', `${base}/update`, {}, 405, 'method_not_allowed', /use POST/],
    ['POST', `${base}/updates`, raw('[]'), 405, 'method_not_allowed', /use GET/],
    ['POST', `${base}/events`, raw('[]'), 405, 'method_not_allowed', /use GET/],
    ['GET', `${base}/nope`, {}, 404, 'not_found'],
    ['POST', `${base}/insert/more`, raw('["a"]'), 404, 'not_found'],
    ['GET', `${base}/updates?since=-1`, {}, 400, 'bad_since'],
    ['POST', '/api/sets/has%20space/insert', raw('["a"]'), 400, 'bad_name'],
    ['POST', `/api/sets/${'n'.repeat(129)}/insert`, raw('["a"]'), 400, 'bad_name'],
    ['POST', `${base}/insert?node=node-x`, raw('["a"]'), 400, 'bad_node'],
  ];
  for (const [i, [method, path, opts, status, error, message]] of cases.entries()) {
    const node = NODES[i % NODES.length];
    const sep = path.includes('?') ? '&' : '?';
    const at = path.includes('node=') ? path : `${path}${sep}node=${node}`;
    assertError(await cluster.request(method, at, opts), status, error, `${method} ${at.slice(0, 80)}`, message);
  }
  await unchangedEverywhere(name, before, ['ok', 3, false]);
});

test('counters still work next to sets, even under the same name', async () => {
  assert.equal((await create('shared', 'add-wins', 'node-1')).status, 200);
  assert.equal((await insert('shared', ['s'], 'node-1')).status, 200);
  const inc = await cluster.increment('shared', 3, 'node-2');
  assert.equal(inc.status, 200, key(inc.data));
  assert.equal(inc.data.value, 3);
  await cluster.converged('shared', NODES, 3);
  await settled('shared', ['s']);
});

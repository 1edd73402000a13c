// End-to-end tests of the counter cluster on `wrangler dev`: real workerd,
// real Durable Objects with SQLite storage, real alarms and peer calls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, NODES, sleep } from './harness.mjs';

const cluster = new Cluster();
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

test('concurrent increments at different nodes end with every node at the exact total', async () => {
  let expected = 0;
  await Promise.all(NODES.map(async (node, i) => {
    for (let k = 0; k < 20; k++) {
      const by = k % 5 === 4 ? -(i + 1) : (k % 3) + 1;
      const res = await cluster.increment('concurrent', by, node);
      assert.equal(res.status, 200, JSON.stringify(res.data));
      assert.equal(res.data.node, node);
      expected += by;
    }
  }));
  const views = await cluster.converged('concurrent', NODES, expected);
  for (const v of views) {
    assert.deepEqual(Object.keys(v.contributions).sort(), NODES);
    assert.equal(Object.values(v.contributions).reduce((a, b) => a + b, 0), expected);
  }
});

test('bad input gets a 4xx JSON error that names the problem, and changes nothing', async () => {
  assert.equal((await cluster.increment('guarded', 4, 'node-1')).status, 200);
  await cluster.converged('guarded', NODES, 4);
  const inc = '/api/counters/guarded/increment';
  const cases = [
    ['POST', inc, { body: '{"by": ', headers: { 'content-type': 'application/json' } }, 400, 'bad_json'],
    ['POST', inc, { body: { by: 1, extra: true } }, 400, 'bad_json'],
    ['POST', inc, { body: { by: '2' } }, 400, 'bad_json'],
    ['POST', inc, { body: { by: 1.5 } }, 400, 'bad_json'],
    ['POST', inc, { body: { by: 0 } }, 400, 'by_out_of_range'],
    ['POST', inc, { body: { by: 1_000_001 } }, 400, 'by_out_of_range'],
    ['POST', inc, { body: { by: -1_000_001 } }, 400, 'by_out_of_range'],
    ['POST', inc, { body: JSON.stringify({ by: 1, pad: 'x'.repeat(5000) }), headers: { 'content-type': 'application/json' } }, 413, 'body_too_large'],
    ['POST', inc, { body: 'by=1', headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type'],
    ['POST', inc, { body: new Uint8Array([1, 200]), headers: { 'content-type': 'application/x-postcard' } }, 400, 'bad_postcard'],
    ['GET', inc, {}, 405, 'method_not_allowed'],
    ['DELETE', '/api/counters/guarded', {}, 405, 'method_not_allowed'],
    ['POST', '/api/counters/has%20space/increment', {}, 400, 'bad_name'],
    ['POST', `/api/counters/${'n'.repeat(129)}/increment`, {}, 400, 'bad_name'],
    ['POST', `${inc}?node=node-x`, {}, 400, 'bad_node'],
    // Not valid percent-encoding: refused, not taken as no hint.
    ['POST', `${inc}?node=node-%zz`, {}, 400, 'bad_node'],
    ['GET', '/api/counters/guarded/nope', {}, 404, 'not_found'],
    ['POST', '/peer', {}, 404, 'not_found'],
    ['GET', '/admin/nodes', {}, 401, 'unauthorized'],
    ['GET', '/admin/nodes', { headers: { authorization: 'Bearer wrong' } }, 401, 'unauthorized'],
  ];
  for (const [method, path, opts, status, error] of cases) {
    const res = await cluster.request(method, path, opts);
    assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.data)}`);
    assert.equal(res.data.error, error, `${method} ${path}`);
    assert.ok(res.data.message.length > 10, `${method} ${path}: message says what was wrong`);
  }
  // serde_json writes a float in its message itself: the Worker has no
  // other float formatting (scripts/wasm-snip.mjs takes it out).
  const float = await cluster.request('POST', inc, { body: { by: 1.5 } });
  assert.match(float.data.message, /invalid type: floating point `1\.5`, expected i64/);
  const bad = await cluster.request('PUT', '/admin/partition', { admin: true, body: { groups: [['node-0'], ['node-0']] } });
  assert.equal(bad.status, 400);
  assert.match(bad.data.message, /two groups/);
  await sleep(400);
  for (const node of NODES) assert.equal((await cluster.read('guarded', node)).data.value, 4);
});

test('postcard bodies and replies', async () => {
  // Envelope version 1, then postcard of Increment { by: 3 }: zigzag varint 6.
  const res = await cluster.request('POST', '/api/counters/binary/increment?node=node-2', {
    body: new Uint8Array([1, 6]), write: true,
    headers: { 'content-type': 'application/x-postcard' },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-postcard');
  const bytes = res.data;
  assert.equal(bytes[0], 1, 'envelope version');
  assert.equal(new TextDecoder().decode(bytes.slice(2, 2 + bytes[1])), 'binary');
  assert.equal(bytes[2 + bytes[1]], 6, 'value 3 as a zigzag varint');
  assert.equal((await cluster.read('binary', 'node-2')).data.value, 3);
});


test('server-sent events deliver the current state, then each change', async () => {
  assert.equal((await cluster.increment('live', 2, 'node-0')).status, 200);
  await cluster.converged('live', NODES, 2);
  const before = (await cluster.read('live', 'node-1')).data.state;
  let wrote = false;
  const events = await cluster.events('/api/counters/live/events?node=node-1', async (evs) => {
    const data = evs.filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
    if (data.length >= 1 && !wrote) {
      wrote = true;
      assert.equal(data[0], before, 'the first event is the current state');
      assert.equal((await cluster.increment('live', 5, 'node-3')).status, 200);
    }
    return data.length >= 2;
  });
  assert.ok(events.some((e) => /^retry: \d+/.test(e)), 'sets retry:');
  assert.ok(events.some((e) => e.startsWith(': ')), 'sends heartbeat comments');
  const data = events.filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  assert.equal(data.length, 2);
  const after = (await cluster.converged('live', ['node-1'], 7))[0];
  assert.equal(data[1], after.state, 'the pushed state is node-1\'s new state');
});

test('a split brain heals', async () => {
  const cut = await cluster.admin('PUT', '/partition', { groups: [['node-0', 'node-1'], ['node-2', 'node-3']] });
  assert.equal(cut.status, 200, JSON.stringify(cut.data));
  assert.equal((await cluster.increment('split', 10, 'node-0')).status, 200);
  assert.equal((await cluster.increment('split', 20, 'node-3')).status, 200);
  await cluster.converged('split', ['node-0', 'node-1'], 10);
  await cluster.converged('split', ['node-2', 'node-3'], 20);
  await sleep(1500); // several gossip and anti-entropy rounds: still apart
  assert.equal((await cluster.read('split', 'node-1')).data.value, 10);
  assert.equal((await cluster.read('split', 'node-2')).data.value, 20);
  const heal = await cluster.admin('DELETE', '/partition');
  assert.equal(heal.status, 200);
  await cluster.converged('split', NODES, 30);
});

test('acknowledged increments survive a restart of the whole server', async () => {
  let expected = 0;
  for (let i = 0; i < 12; i++) {
    const res = await cluster.increment('durable', i + 1, NODES[i % 4]);
    assert.equal(res.status, 200);
    expected += i + 1;
  }
  await cluster.restart(); // no wait for gossip: each node kept its own writes
  await cluster.converged('durable', NODES, expected);
});

test('a retired node\'s count is kept, and a new node catches up', async () => {
  assert.equal((await cluster.increment('retire', 7, 'node-1')).status, 200);
  assert.equal((await cluster.increment('retire', 3, 'node-2')).status, 200);
  await cluster.converged('retire', NODES, 10);
  const done = await cluster.admin('POST', '/nodes/node-1/retire');
  assert.equal(done.status, 200, JSON.stringify(done.data));
  const heir = done.data.heir;
  const rest = NODES.filter((n) => n !== 'node-1');
  // Until the heir's fold reaches a node, it still counts node-1 through
  // node-1's own entry: the value is 10 all along, and then the record arrives.
  const views = await cluster.until(async () => {
    const vs = await Promise.all(rest.map(async (n) => (await cluster.read('retire', n)).data));
    return vs.every((v) => v.retired['node-1'] === heir) && vs;
  }, 'every node learns the retirement');
  for (const v of views) {
    assert.equal(v.value, 10);
    assert.equal(v.contributions['node-1'], undefined);
  }
  // Every counter, not only this one, keeps node-1's share.
  await cluster.converged('concurrent', rest, (await cluster.read('concurrent', 'node-0')).data.value);
  // The retired node forwards what reaches it.
  const fwd = await cluster.increment('retire', 1, 'node-1');
  assert.equal(fwd.status, 200);
  assert.notEqual(fwd.data.node, 'node-1');
  assert.equal((await cluster.admin('POST', '/nodes/node-1/retire')).status, 409);
  // Concurrent additions get distinct ids from the one allocator.
  const added = await Promise.all([cluster.admin('POST', '/nodes'), cluster.admin('POST', '/nodes')]);
  for (const a of added) assert.equal(a.status, 200, JSON.stringify(a.data));
  assert.deepEqual(added.map((a) => a.data.added).sort(), ['node-4', 'node-5']);
  await cluster.converged('retire', [...rest, 'node-4', 'node-5'], 11);
  // A node id nobody added takes no writes: the request is passed on.
  const stray = await cluster.increment('retire', 1, 'node-99');
  assert.equal(stray.status, 200);
  assert.notEqual(stray.data.node, 'node-99');
  await cluster.converged('retire', [...rest, 'node-4', 'node-5'], 12);
});

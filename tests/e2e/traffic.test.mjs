// Cluster traffic and sizing on `wrangler dev`: every node counts the client
// requests it serves, `GET /admin/traffic` sums them and recommends a size,
// and `POST /admin/autoscale` (or the Cron Trigger, with AUTOSCALE on) takes
// one step towards it (the policy's bounds given in the query or the vars,
// so the steps do not depend on timing).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from './harness.mjs';

const cluster = new Cluster();
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const show = (x) => JSON.stringify(x);

async function traffic(query = '') {
  const res = await cluster.admin('GET', `/traffic${query}`);
  assert.equal(res.status, 200, show(res.data));
  return res.data;
}

const totals = (t) => Object.fromEntries(Object.entries(t.nodes).map(([id, n]) => [id, n.total]));
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

async function activeNodes(of = cluster) {
  const res = await of.admin('GET', '/nodes');
  assert.equal(res.status, 200, show(res.data));
  return Object.entries(res.data.members).filter(([, s]) => s === 'active').map(([id]) => id).sort();
}

test('every client request counts once, at the node that served it', async () => {
  const start = await traffic();
  assert.equal(start.active, 4, show(start));
  assert.deepEqual(start.policy, { node_rps: 100, min_nodes: 3, max_nodes: 16 });
  const before = totals(start);
  for (let i = 0; i < 30; i++) {
    const res = await cluster.increment('traffic/pinned', 1, 'node-1');
    assert.equal(res.status, 200, show(res.data));
  }
  for (let i = 0; i < 20; i++) {
    const res = await cluster.kv('PUT', `traffic/k${i}`, { body: { value: `v${i}` } });
    assert.equal(res.status, 200, show(res.data));
  }
  const now = await traffic();
  const after = totals(now);
  assert.equal(sum(after) - sum(before), 50, `${show(before)} -> ${show(after)}`);
  assert.ok(after['node-1'] - before['node-1'] >= 30, show(after));
  assert.ok(now.per_second > 0, show(now));
  // Admin requests are not client traffic.
  assert.equal(sum(totals(await traffic())), sum(after));
});

test('a bad policy is a 400 that says what was wrong, and nothing changes', async () => {
  for (const [query, what] of [['?min_nodes=9&max_nodes=2', 'min_nodes (9) is more than max_nodes (2)'],
    ['?node_rps=0', '`node_rps` must be'], ['?max_nodes=lots', '`max_nodes` must be']]) {
    const res = await cluster.admin('POST', `/autoscale${query}`);
    assert.equal(res.status, 400, show(res.data));
    assert.equal(res.data.error, 'bad_policy');
    assert.ok(res.data.message.includes(what), res.data.message);
  }
  assert.equal((await cluster.admin('DELETE', '/traffic')).status, 405);
  // AUTOSCALE is off here: the Cron Trigger does nothing, though the idle
  // cluster is over its minimum.
  assert.equal((await traffic()).next.action, 'remove');
  await cluster.cron();
  assert.deepEqual(await activeNodes(), ['node-0', 'node-1', 'node-2', 'node-3']);
});

test('with AUTOSCALE on, the Cron Trigger takes the step', async () => {
  const on = new Cluster({ AUTOSCALE: 'on', SCALE_MIN_NODES: '5', SCALE_MAX_NODES: '5' });
  await on.start();
  try {
    await on.cron();
    await on.until(async () => (await activeNodes(on)).length === 5, 'node-4 is added');
    await on.cron();
    assert.deepEqual(await activeNodes(on), ['node-0', 'node-1', 'node-2', 'node-3', 'node-4']);
  } finally {
    await on.destroy();
  }
});

test('autoscale adds and retires one node a step, then holds, and keeps every count', async () => {
  const counted = (await cluster.read('traffic/pinned')).data.value;
  assert.equal(counted, 30);

  const grow = '?min_nodes=5&max_nodes=5';
  assert.deepEqual((await traffic(grow)).next, { action: 'add', node: null });
  const added = await cluster.admin('POST', `/autoscale${grow}`);
  assert.equal(added.status, 200, show(added.data));
  assert.equal(added.data.result.added, 'node-4');
  assert.equal((await traffic(grow)).next.action, 'none');
  const held = await cluster.admin('POST', `/autoscale${grow}`);
  assert.equal(held.status, 200, show(held.data));
  assert.equal(held.data.result, null);
  assert.equal((await activeNodes()).length, 5);

  // Down to 3: each step retires the least busy node (a 502 while its
  // handoff is under way: the next step goes on with it, unless the
  // node's own rounds finished it first).
  const shrink = '?min_nodes=3&max_nodes=3';
  const five = await activeNodes();
  const removing = new Set();
  await cluster.until(async () => {
    const step = await cluster.admin('POST', `/autoscale${shrink}`);
    assert.ok([200, 502].includes(step.status), show(step.data));
    if (step.data.next.action === 'remove') removing.add(step.data.next.node);
    return step.data.next.action === 'none';
  }, 'the cluster shrinks to 3', 60_000);
  const active = await activeNodes();
  const retired = five.filter((n) => !active.includes(n));
  assert.equal(retired.length, 2, show(retired));
  assert.deepEqual([...removing].sort(), retired, 'only the nodes the steps named retired');
  assert.ok(!retired.includes('node-1'), `node-1 served the most requests: ${retired}`);

  await cluster.until(async () => (await cluster.read('traffic/pinned')).data.value === counted,
    'the count survives the resizes');
  for (let i = 0; i < 20; i++) {
    const res = await cluster.kv('GET', `traffic/k${i}`, { headers: { 'cache-control': 'no-cache' } });
    assert.equal(res.status, 200, show(res.data));
    assert.deepEqual(res.data.siblings.map((s) => s.value), [`v${i}`]);
  }
});

// Tombstone collection on `wrangler dev`: deleted keys' tombstones are
// dropped from every node once all nodes confirmed them twice, a grace
// period apart; the keys then read back as never written, a kept key keeps
// its value, and a blind write to a collected key is its one sibling.
// (Peer frames past their age limit, 409 `stale_frame`, cannot be sent from
// here: no client path reaches an object's `/peer`.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, NODES } from './harness.mjs';

const cluster = new Cluster({
  GOSSIP_INTERVAL_MS: '100', ANTI_ENTROPY_INTERVAL_MS: '300', TOMBSTONE_GRACE_MS: '2000',
});
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const NO_CACHE = { 'cache-control': 'no-cache' };
const show = (x) => JSON.stringify(x);
const put = (k, value, context) => cluster.kv('PUT', k, { body: context === undefined ? { value } : { value, context } });
const get = (k, node) => cluster.kv('GET', k, { node, headers: NO_CACHE });
const values = (view) => view.siblings.map((s) => s.value).sort();

/** A key's replicas, from the `x-edge-crdt-replicas` header. */
async function replicasOf(k) {
  const res = await get(k);
  assert.equal(res.status, 200, show(res.data));
  const replicas = (res.headers.get('x-edge-crdt-replicas') ?? '').split(',').filter(Boolean);
  assert.equal(replicas.length, 3, `${k}: ${replicas}`);
  return replicas;
}

/** Polls until every replica of `k` answers itself with the values `want`. */
async function converged(k, want, replicas) {
  let seen = [];
  try {
    return await cluster.until(async () => {
      seen = await Promise.all(replicas.map(async (n) => (await get(k, n)).data));
      return seen.every((v, i) => v.node === replicas[i] && show(values(v)) === show([...want].sort())
        && v.context === seen[0].context) && seen;
    }, `${k} converges on ${show(want)}`, 30_000);
  } catch (e) {
    throw new Error(`${e.message}: ${show(seen.map((v) => [v.node, v.siblings, v.context]))}`);
  }
}

/** Every node's admin view. */
const views = () => Promise.all(NODES.map(async (n) => {
  const res = await cluster.admin('GET', `/nodes/${n}`);
  assert.equal(res.status, 200, show(res.data));
  return res.data;
}));

test('deleted keys\' tombstones are collected at every node; the keys read back empty and take a blind write as their one value', async () => {
  const started = Date.now();
  const keys = Array.from({ length: 8 }, (_, i) => `gc/k${i}`);
  const doomed = keys.slice(0, 6);
  const kept = keys[6];
  const empty = (await get('gc/never-written')).data.context;

  const contexts = {};
  for (const k of keys) {
    const res = await put(k, `v-${k}`);
    assert.equal(res.status, 200, show(res.data));
  }
  const replicas = {};
  for (const k of keys) {
    replicas[k] = await replicasOf(k);
    contexts[k] = (await converged(k, [`v-${k}`], replicas[k]))[0].context;
  }
  const before = await views();
  assert.ok(before.every((v) => v.tombstones === 0 && v.tombstones_collected === 0), show(before));

  for (const k of doomed) {
    const res = await cluster.kv('DELETE', k, { body: { context: contexts[k] } });
    assert.equal(res.status, 200, show(res.data));
    assert.deepEqual(res.data.siblings, []);
    assert.notEqual(res.data.context, empty, 'the delete is a tombstone first');
  }

  // Every node drops its tombstones: wait for none held and all collected.
  const deadline = Date.now() + 90_000;
  let last = '';
  let held;
  let collected;
  for (;;) {
    const now = await views();
    held = now.map((v) => v.tombstones);
    collected = now.map((v) => v.tombstones_collected);
    const total = collected.reduce((a, b) => a + b, 0);
    const line = `held ${show(held)}, collected ${show(collected)}`;
    if (line !== last) {
      console.log(`  [${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);
      last = line;
    }
    if (held.every((n) => n === 0) && total >= doomed.length) break;
    assert.ok(Date.now() < deadline, `tombstones not collected in time: ${line}`);
    await new Promise((r) => setTimeout(r, 250));
  }

  for (const k of doomed) {
    for (const n of replicas[k]) {
      const res = await get(k, n);
      assert.equal(res.status, 200, show(res.data));
      assert.equal(res.data.node, n);
      assert.deepEqual(res.data.siblings, [], `${k} at ${n}`);
      assert.equal(res.data.context, empty, `${k} at ${n}: a collected key has an empty context`);
    }
  }
  await converged(kept, [`v-${kept}`], replicas[kept]);

  // A blind write to a collected key is its only value.
  const k = doomed[0];
  const res = await put(k, 'reborn');
  assert.equal(res.status, 200, show(res.data));
  assert.deepEqual(values(res.data), ['reborn'], show(res.data));
  const after = await converged(k, ['reborn'], replicas[k]);
  assert.ok(after.every((v) => v.siblings.length === 1), show(after));
  console.log(`  collected ${doomed.length} tombstones and checked in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const late = cluster.log.split('\n').filter((l) => /send failed: status 409|ms round trip/.test(l));
  if (late.length) console.log(`  ${late.length} late frames or replies were refused, e.g. ${late[0]}`);
});

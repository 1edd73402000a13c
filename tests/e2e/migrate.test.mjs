// Storage written by the previous engine (tests/fixtures/v1: one whole
// value per key in `kv(key, leaf, state, own)`, captured from a real
// `wrangler dev`) moves to the rows layout on each object's first start:
// every counter, set and register reads back the same from every node,
// and the cluster goes on taking writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, ROOT } from './harness.mjs';
import { check } from '../fixtures/v1/check.mjs';

const cluster = new Cluster();
before(async () => {
  // A copy: workerd writes to what it opens.
  cpSync(join(ROOT, 'tests', 'fixtures', 'v1', 'state'), cluster.dir, { recursive: true });
  await cluster.start();
});
after(async () => { await cluster.destroy(); });

test('every value stored in the first layout reads back the same from every node', async () => {
  const { checks, failures } = await check(cluster.url, { adminToken: cluster.token });
  assert.deepEqual(failures, [], `${failures.length} of ${checks} checks failed`);
  assert.ok(checks > 400, `only ${checks} checks`);
});

test('the moved data takes writes, gossips them and survives a restart', async () => {
  const before = (await cluster.read('fx-visits', 'node-1')).data.value;
  assert.equal((await cluster.increment('fx-visits', 5, 'node-2')).status, 200);
  await cluster.converged('fx-visits', ['node-0', 'node-1', 'node-2'], before + 5);
  const kv = await cluster.kv('PUT', 'fx/kv/key-00', { body: { value: 'moved' } });
  assert.equal(kv.status, 200, JSON.stringify(kv.data));
  await cluster.restart();
  await cluster.converged('fx-visits', ['node-0', 'node-1', 'node-2'], before + 5);
  const read = await cluster.kv('GET', 'fx/kv/key-00', { node: kv.data.node });
  assert.ok(read.data.siblings.some((s) => s.value === 'moved'), JSON.stringify(read.data));
});

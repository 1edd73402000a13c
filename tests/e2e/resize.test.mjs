// Resizing the ring on `wrangler dev` without losing an acknowledged write:
// write keys, grow from 4 to 6 nodes, shrink to 3, and read every key back
// from every node that holds it, with writes going on during the changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from './harness.mjs';

const cluster = new Cluster();
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const KEYS = 40;
const key = (i) => `resize/k${String(i).padStart(3, '0')}`;
/** The last acknowledged value of each key, and the context its write returned. */
const acked = new Map();
const contexts = new Map();

/** Each write carries the context of the key's previous write: a causal
 * chain, so the last write must end as the one sibling everywhere. */
async function put(i, text) {
  const body = { value: text, ...(contexts.has(key(i)) ? { context: contexts.get(key(i)) } : {}) };
  const res = await cluster.kv('PUT', key(i), { body });
  assert.equal(res.status, 200, `PUT ${key(i)}: ${JSON.stringify(res.data)}`);
  acked.set(key(i), text);
  contexts.set(key(i), res.data.context);
}

/** Every key reads back its last acknowledged value, bypassing the cache. */
async function everyKeyReadsBack(what) {
  await cluster.until(async () => {
    for (const [k, text] of acked) {
      const res = await cluster.kv('GET', k, { query: { resolve: 'lww' }, headers: { 'cache-control': 'no-cache' } });
      if (res.status !== 200 || res.data.siblings.length !== 1 || res.data.siblings[0].value !== text) return false;
    }
    return true;
  }, what, 60_000);
}

/** Each node's view: active members and the leaves it holds or is moving. */
async function views() {
  const res = await cluster.admin('GET', '/nodes');
  assert.equal(res.status, 200, JSON.stringify(res.data));
  return res.data;
}

async function retire(node, n = 0) {
  // A retirement hands every ring leaf to its new replicas, then the rest
  // to the heir; a 502 means a handoff is still under way: retry. The
  // node's own rounds may finish it first: the retry is then a 409.
  let pending = false;
  await cluster.until(async () => {
    // Both spellings of removal: `POST …/retire` and `DELETE /admin/nodes/:id`.
    const res = n % 2 ? await cluster.admin('DELETE', `/nodes/${node}`) : await cluster.admin('POST', `/nodes/${node}/retire`);
    if (res.status === 502) {
      pending = true;
      return false;
    }
    if (pending && res.status === 409 && res.data.message === 'the node is already retired') return true;
    assert.equal(res.status, 200, JSON.stringify(res.data));
    return true;
  }, `${node} retires`, 60_000);
}

test('keys survive growing from 4 to 6 nodes and shrinking to 3', async () => {
  for (let i = 0; i < KEYS; i++) await put(i, `v0-${i}`);
  await everyKeyReadsBack('the first writes read back');

  // Grow to 6 while writes go on.
  for (let n = 0; n < 2; n++) {
    const added = await cluster.admin('POST', '/nodes');
    assert.equal(added.status, 200, JSON.stringify(added.data));
    for (let i = n; i < KEYS; i += 4) await put(i, `v1-${n}-${i}`);
  }
  const grown = await views();
  const active = Object.entries(grown.members).filter(([, s]) => s === 'active').map(([id]) => id);
  assert.deepEqual(active.sort(), ['node-0', 'node-1', 'node-2', 'node-3', 'node-4', 'node-5']);
  await everyKeyReadsBack('every key reads back at 6 nodes');

  // The newcomers hold leaves now: handoffs reached them.
  for (const id of ['node-4', 'node-5']) {
    const res = await cluster.admin('GET', `/nodes/${id}`);
    assert.equal(res.status, 200);
    assert.ok(res.data.leaves > 0, `${id} holds no leaf: ${JSON.stringify(res.data)}`);
  }

  // Shrink to 3, one node at a time, writing in between.
  for (const [n, node] of ['node-1', 'node-4', 'node-2'].entries()) {
    await retire(node, n);
    for (let i = n; i < KEYS; i += 5) await put(i, `v2-${n}-${i}`);
  }
  await everyKeyReadsBack('every key reads back at 3 nodes');

  // Every retired node let go of its ring leaves; every remaining node
  // holds every key (R = 3 of 3) and nothing is still on its way.
  await cluster.until(async () => {
    for (const id of ['node-0', 'node-3', 'node-5']) {
      const res = await cluster.admin('GET', `/nodes/${id}`);
      if (res.data.status !== 'active' || res.data.leaves_moving !== 0) return false;
    }
    return true;
  }, 'handoffs finish');
  // The last writes may still be on their way to a third replica (gossip,
  // or anti-entropy for one sent while its leaf moved): each replica gets
  // the time convergence takes.
  for (const id of ['node-0', 'node-3', 'node-5']) {
    for (const [k, text] of acked) {
      const read = () => cluster.kv('GET', k, { node: id, headers: { 'cache-control': 'no-cache' } });
      const res = await cluster.until(async () => {
        const r = await read();
        return r.status === 200 && r.data.siblings.length === 1 && r.data.siblings[0].value === text && r.data.node === id && r;
      }, `${k} reads ${text} at ${id}`, 20_000).catch(async () => read());
      assert.equal(res.status, 200);
      assert.equal(res.data.node, id, 'a replica answers itself');
      assert.deepEqual(res.data.siblings.map((s) => s.value), [text], `${k} at ${id}`);
    }
  }
  const listed = await cluster.kv('GET', null, { query: { prefix: 'resize/', limit: '1000' } });
  assert.equal(listed.status, 200, JSON.stringify(listed.data));
  assert.equal(listed.data.partial, false);
  assert.equal(listed.data.keys.length, KEYS);
});

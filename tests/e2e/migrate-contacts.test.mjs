// Address books stored by the v2 layout (tests/fixtures/v2: contacts as
// encoded states in the engine's `rows` table, captured from a real
// `wrangler dev`) move to the `contact` table on each node's first start:
// every contact reads back the same from every node, the clients' applied
// numbers survive (a retried push is applied once), and the books take
// new writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, NODES, ROOT } from './harness.mjs';
import { check } from '../fixtures/v2/check.mjs';

const cluster = new Cluster();
before(async () => {
  // A copy: workerd writes to what it opens.
  cpSync(join(ROOT, 'tests', 'fixtures', 'v2', 'state'), cluster.dir, { recursive: true });
  await cluster.start();
});
after(async () => { await cluster.destroy(); });

test('every contact stored in the v2 layout reads back the same from every node, from its own table', async () => {
  const { checks, failures } = await check(cluster.url);
  assert.deepEqual(failures, [], `${failures.length} of ${checks} checks failed`);
  assert.ok(checks > 150, `only ${checks} checks`);
  const counts = cluster.sql(`SELECT (SELECT count(*) FROM contact) AS flat,
    (SELECT count(*) FROM rows WHERE object LIKE 'contacts:%' AND row NOT LIKE '~client/%') AS encoded,
    (SELECT count(*) FROM rows WHERE object LIKE 'contacts:%') AS clients`);
  for (const n of NODES) assert.deepEqual(counts[n], [{ flat: 37, encoded: 0, clients: 3 }], n);
});

test('the moved books take writes, gossip them and survive a restart', async () => {
  const id = '10000000-0000-4000-8000-000000000000';
  const client = '0000000b00000001';
  const body = { client, deltas: [{ id, column: 'name', value: 'After the move', timestamp: `${Date.now()}-0000-${client}`, seq: 1 }] };
  const res = await cluster.request('POST', '/api/contacts/fx-family/push?node=node-1', { body });
  assert.equal(res.status, 200, JSON.stringify(res.data));
  const readAll = () => Promise.all(NODES.map(async (n) => (await cluster.request('GET', `/api/contacts/fx-family/${id}?node=${n}`)).data.contact.name));
  await cluster.until(async () => (await readAll()).every((name) => name === 'After the move'), 'the edit reaches every node');
  await cluster.restart();
  assert.deepEqual(await readAll(), NODES.map(() => 'After the move'));
});

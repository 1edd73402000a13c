// Scale-out on `wrangler dev`: 16 nodes, so counters, sets and address
// books (on every node) travel over the gossip fanout's fingers and relays
// (GOSSIP_FANOUT 8 < 15 peers). Writers send concurrent writes of every
// kind (counter steps, set inserts and deletes, key-value puts and deletes
// in causal chains, address-book pushes, stream appends); then the cluster
// is cut into two halves of 8 nodes and the writes go on at both sides
// (key-value chains forked at keys with replicas on both sides); then it
// heals. Every replica must end with every acknowledged write, as an
// oracle computes it from the replies: counters the sum of their steps,
// sets what the latest stamps say, registers the last value of each chain
// (one sibling per side for the forked keys), address books the latest
// stamp of each column, topics every appended id in one order. The test
// prints the time to converge after the heal, the writes acknowledged per
// kind and the gossip the nodes sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from './harness.mjs';
import { Workload, converge, gossipStats, statsSince } from './lib/workload.mjs';

const SIZE = 16;
const WRITERS = 8; // half of them at each side during the partition
const BEFORE = 12; // writes per writer before the partition
const DURING = 36; // and during it
const SEED = Number(process.env.SCALE_SEED ?? 16);
// GOSSIP_FANOUT (wrangler.toml's, 8, unless SCALE_FANOUT says otherwise).
const FANOUT = process.env.SCALE_FANOUT;
const CONVERGE_MS = 120_000; // a generous bound, not a target: the time taken is printed
const TRACE = Boolean(process.env.SCALE_TRACE); // print the views each poll after the heal found wrong

const cluster = new Cluster({ NODES: String(SIZE), ...(FANOUT ? { GOSSIP_FANOUT: FANOUT } : {}) });
const nodes = cluster.nodes;
const sides = [nodes.slice(0, SIZE / 2), nodes.slice(SIZE / 2)];
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
const line = (label, s) => console.log(`  ${label}: ${s.frames} frames, ${kib(s.bytes)}, ${s.repaired} rows repaired`
  + ` (busiest node ${Math.max(...Object.values(s.per).map((p) => p.frames))} frames)`);

test('16 nodes: concurrent writes of every kind, an 8/8 partition with writes at both sides, a heal, and every replica holds every acknowledged write', async () => {
  const started = Date.now();
  const view = await cluster.nodeView('node-0');
  const active = Object.entries(view.members).filter(([, s]) => s === 'active').map(([n]) => n).sort();
  assert.deepEqual(active, [...nodes].sort(), 'the cluster starts with 16 active nodes');

  const work = new Workload(cluster, { prefix: 'scale', seed: SEED, writers: WRITERS, sides });
  await work.setup();
  let t = Date.now();
  await work.run(BEFORE);
  const beforeMs = Date.now() - t;
  const ackedBefore = work.oracle.acked();

  // The cut: every node holds it, and a write at one side reaches that
  // whole side but none of the other.
  const cut = await cluster.partition(sides);
  for (const v of cut.data.nodes) {
    assert.deepEqual(v.partition.map((g) => [...g].sort()), sides.map((s) => [...s].sort()), `${v.node} holds the partition`);
  }
  const probe = 'scale-cut';
  assert.equal((await cluster.increment(probe, 1, sides[0][0])).status, 200);
  work.oracle.counters.increment(probe, 1);
  await cluster.until(async () => {
    const seen = await Promise.all(sides[0].map(async (n) => (await cluster.read(probe, n)).data.value));
    return seen.every((v) => v === 1);
  }, `${probe} reaches every node of ${sides[0]}`, 30_000);
  for (const n of sides[1]) assert.equal((await cluster.read(probe, n)).data.value, 0, `${probe} crossed the partition to ${n}`);

  const atCut = await gossipStats(cluster, nodes);
  t = Date.now();
  await work.run(DURING, true);
  const duringMs = Date.now() - t;
  const atHeal = await gossipStats(cluster, nodes);

  const healed = await cluster.partition(null);
  assert.ok(healed.data.nodes.every((v) => v.partition.length === 0), 'every node heals');
  const conv = await converge(work, nodes, CONVERGE_MS, `${SIZE} nodes after the heal`, { trace: TRACE });
  const done = await gossipStats(cluster, nodes);
  // Every view again: none has moved away since.
  t = Date.now();
  assert.deepEqual(await work.divergence(nodes), [], 'every view still holds every acknowledged write');
  const checkMs = Date.now() - t;

  const acked = work.oracle.acked();
  const total = Object.values(acked).reduce((a, b) => a + b, 0);
  const during = Object.fromEntries(Object.entries(acked).map(([k, v]) => [k, v - ackedBefore[k]]));
  console.log(`  ${SIZE} nodes, GOSSIP_FANOUT ${cluster.vars.GOSSIP_FANOUT ?? 8}, ${WRITERS} writers, seed ${SEED}`);
  console.log(`  writes acknowledged: ${total} (${JSON.stringify(acked)}; during the partition ${JSON.stringify(during)};`
    + ` key-value ${work.oracle.kv.acked.put} puts, ${work.oracle.kv.acked.delete} deletes)`);
  console.log(`  writing: ${(beforeMs / 1000).toFixed(1)} s before the cut, ${(duringMs / 1000).toFixed(1)} s during it`);
  const wrongAt = conv.lastWrongMs ? `the last wrong view seen at ${conv.lastWrongMs} ms` : 'every view right at its first read';
  console.log(`  converged within ${conv.ms} ms after the heal (${wrongAt}; ${conv.polls} poll${conv.polls === 1 ? "" : "s"}, ${conv.reads} reads of`
    + ` ${conv.views} views, reading all of them once takes ${checkMs} ms); each kind's last view right at ${JSON.stringify(conv.byKind)} ms`);
  line('gossip before the cut', atCut);
  line('gossip during the partition', statsSince(atCut, atHeal));
  line('gossip from the heal to convergence', statsSince(atHeal, done));
  line('gossip in all', done);
  console.log('  subrequests per invocation: not exposed by the admin views (the budget is GOSSIP_FANOUT + 2)');
  console.log(`  test took ${((Date.now() - started) / 1000).toFixed(1)} s after wrangler dev was up`);
});

// kill -9 under load, on `wrangler dev`: writers send concurrent writes of
// every kind (counter visits, set inserts, key-value puts, address-book
// pushes, stream appends); wrangler and workerd are SIGKILLed while writes
// are in flight, at several kill points (after 10, 60 and 150 acknowledged
// writes, whatever the machine's speed), and started again on the same
// storage. Every write that got a 2xx is then present on every replica once
// gossip settles, and nothing is there twice or from nowhere: a counter is
// at least its acknowledged visits and at most those plus the ones whose
// answer the kill cut off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Cluster, NODES } from './harness.mjs';

const WRITERS = 8;
const KILL_AFTER_ACKS = [10, 60, 150];
const REPLICAS = 3;

const cluster = new Cluster({ ANTI_ENTROPY_INTERVAL_MS: '300' });
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

/** One run's objects and the outcome of every write sent to them. */
class Run {
  constructor(n) {
    this.n = n;
    this.counter = `kill${n}-visits`;
    this.set = `kill${n}-set`;
    this.book = `kill${n}-book`;
    this.topic = `kill${n}-topic`;
    this.next = 0;
    // per kind: what was acknowledged, and what the kill left without an answer
    this.acked = { counter: [], set: [], kv: [], contacts: [], stream: [] };
    this.unknown = { counter: [], set: [], kv: [], contacts: [], stream: [] };
  }

  /** The i-th write: its kind, request and what it writes. */
  write(i) {
    const node = NODES[i % NODES.length];
    const q = `?node=${node}`;
    switch (i % 5) {
      case 0: return { kind: 'counter', id: i, method: 'POST', path: `/api/counters/${this.counter}/increment${q}` };
      case 1: return { kind: 'set', id: `e${i}`, method: 'POST', path: `/api/sets/${this.set}/insert${q}`, body: [`e${i}`] };
      case 2: return { kind: 'kv', id: `kill${this.n}-k${i}`, method: 'PUT', path: `/api/kv/kill${this.n}-k${i}${q}`, body: { value: `v${i}` } };
      case 3: {
        const client = `00000002${i.toString(16).padStart(8, '0')}`;
        const id = randomUUID();
        const delta = { id, column: 'name', value: `n${i}`, timestamp: `${Date.now()}-0000-${client}`, seq: 1 };
        return { kind: 'contacts', id, method: 'POST', path: `/api/contacts/${this.book}/push${q}`, body: { client, deltas: [delta] } };
      }
      default: return { kind: 'stream', id: null, method: 'POST', path: `/api/streams/${this.topic}/events${q}`, body: { message: `m${i}` } };
    }
  }

  /** How many writes were acknowledged. */
  ackedCount() {
    return Object.values(this.acked).reduce((a, l) => a + l.length, 0);
  }

  /** Writers that send until `stopped`; a 4xx is a test failure, a cut-off write is unknown. */
  async load(stopped) {
    const writer = async () => {
      while (!stopped.value) {
        const w = this.write(this.next++);
        let res;
        try {
          res = await cluster.request(w.method, w.path, { body: w.body });
        } catch {
          this.unknown[w.kind].push(w.id);
          continue;
        }
        if (res.status === 200) this.acked[w.kind].push(w.kind === 'stream' ? res.data.cid : w.id);
        else if (res.status >= 500) this.unknown[w.kind].push(w.id);
        else assert.fail(`${w.method} ${w.path}: ${res.status} ${JSON.stringify(res.data)}`);
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, writer));
  }
}

/** How many nodes hold each `column` value that `query` returns: { id: nodes }. */
function replicaCounts(query, column) {
  const counts = {};
  for (const rows of Object.values(cluster.sql(query))) {
    for (const row of rows) counts[row[column]] = (counts[row[column]] ?? 0) + 1;
  }
  return counts;
}

const sqlText = (s) => `'${s.replaceAll("'", "''")}'`;

async function checkCounter(run) {
  const acked = run.acked.counter.length;
  const most = acked + run.unknown.counter.length;
  const values = await cluster.until(async () => {
    const v = await Promise.all(NODES.map(async (n) => (await cluster.read(run.counter, n)).data.value ?? 0));
    return v.every((x) => x === v[0]) && v[0] >= acked && v;
  }, `every node reads at least the ${acked} acknowledged visits of ${run.counter}`, 60_000);
  assert.ok(values[0] <= most, `${run.counter}: ${values[0]} counted, at most ${most} sent without a refusal`);
}

async function checkSet(run) {
  const acked = new Set(run.acked.set);
  const sent = new Set([...acked, ...run.unknown.set]);
  const members = await cluster.until(async () => {
    const all = await Promise.all(NODES.map(async (n) => (await cluster.request('GET', `/api/sets/${run.set}?node=${n}`)).data.members ?? []));
    const same = all.every((m) => m.join() === all[0].join());
    return same && [...acked].every((e) => all[0].includes(e)) && all[0];
  }, `every node holds the ${acked.size} acknowledged inserts of ${run.set}`, 60_000);
  assert.ok(members.every((e) => sent.has(e)), `${run.set}: nothing that was not sent`);
}

/**
 * Every acknowledged id on exactly `replicas` nodes, and nothing else but
 * what the kill cut off: those ids, or (an append's id is known only from
 * its answer) at most that many others.
 */
async function checkReplicated(kind, replicas, query, column, run) {
  const acked = new Set(run.acked[kind]);
  const short = (c) => run.acked[kind].filter((id) => c[id] !== replicas).map((id) => `${id}: ${c[id] ?? 0}`);
  const counts = await cluster.until(() => {
    const c = replicaCounts(query, column);
    return short(c).length === 0 && c;
  }, `each of ${acked.size} acknowledged ${kind} writes of run ${run.n} on ${replicas} nodes`, 60_000)
    .catch((e) => assert.fail(`${e.message}; short of it: ${short(replicaCounts(query, column)).slice(0, 5).join(', ')}`));
  const others = Object.keys(counts).filter((id) => !acked.has(id));
  const cut = run.unknown[kind];
  assert.ok(others.length <= cut.length, `${kind}: ${others.length} stored that were not acknowledged, ${cut.length} cut off`);
  if (kind !== 'stream') assert.ok(others.every((id) => cut.includes(id)), `${kind}: ${others} never sent`);
  for (const [id, n] of Object.entries(counts)) assert.ok(n <= replicas, `${kind} ${id} on ${n} nodes`);
}

for (const [n, killAfter] of KILL_AFTER_ACKS.entries()) {
  test(`kill -9 after ${killAfter} acknowledged writes of every kind: every one survives on every replica, none twice`, async () => {
    const run = new Run(n);
    const created = await cluster.request('PUT', `/api/sets/${run.set}`, { body: { bias: 'add-wins' } });
    assert.equal(created.status, 200, JSON.stringify(created.data));
    await cluster.until(async () => (await cluster.request('GET', `/api/sets/${run.set}?node=node-3`)).status === 200, 'the set reaches every node');
    const stopped = { value: false };
    const load = run.load(stopped);
    const ready = () => run.ackedCount() >= killAfter && Object.values(run.acked).every((l) => l.length > 0);
    await cluster.until(ready, `${killAfter} writes acknowledged, of every kind`, 60_000);
    stopped.value = true;
    await cluster.crash();
    await load;
    const cut = Object.values(run.unknown).reduce((a, l) => a + l.length, 0);
    console.log(`  kill point ${killAfter}: ${run.ackedCount()} writes acknowledged, ${cut} cut off by the kill`);
    await cluster.start();

    await checkCounter(run);
    await checkSet(run);
    await checkReplicated('kv', REPLICAS, `SELECT substr(object, 4) AS id FROM rows WHERE object LIKE 'kv:kill${n}-k%' AND tombstone = 0`, 'id', run);
    // Address books live on every node; registers and topics on REPLICAS.
    await checkReplicated('contacts', NODES.length, `SELECT id FROM contact WHERE object = ${sqlText(`contacts:${run.book}`)}`, 'id', run);
    await checkReplicated('stream', REPLICAS, `SELECT cid AS id FROM event WHERE object = ${sqlText(`stream:${run.topic}`)}`, 'id', run);
    for (const key of run.acked.kv.slice(0, 20)) {
      const res = await cluster.request('GET', `/api/kv/${key}`);
      assert.deepEqual(res.data.siblings.map((s) => s.value), [`v${key.split('-k')[1]}`], `${key} reads its value`);
    }
  });
}

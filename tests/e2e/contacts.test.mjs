// End-to-end tests of the address books on `wrangler dev`: a push at one
// node pulled at another with one cursor, a retried push applied once,
// concurrent edits of two columns of one contact, drift refused, a stale
// cursor answered with a snapshot, server-sent events, and bad input that
// changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Cluster, NODES, assertError } from './harness.mjs';

const cluster = new Cluster({ HEARTBEAT_INTERVAL_MS: '1000' });
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

/** A client: its id (16 hex digits, at least 2^32), clock and sequence. */
class Client {
  constructor(n) {
    this.id = `00000001${n.toString(16).padStart(8, '0')}`;
    this.seq = 0;
    this.last = 0;
    this.counter = 0;
  }

  stamp(aheadMs = 0) {
    const now = Date.now() + aheadMs;
    this.counter = now === this.last ? this.counter + 1 : 0;
    this.last = Math.max(now, this.last);
    return `${this.last}-${this.counter.toString(16).padStart(4, '0')}-${this.id}`;
  }

  delta(id, column, value) {
    this.seq += 1;
    return { id, column, value, timestamp: this.stamp(), seq: this.seq };
  }
}

const path = (book, sub = '', query = {}) => {
  const q = new URLSearchParams(query).toString();
  return `/api/contacts/${book}${sub ? `/${sub}` : ''}${q ? `?${q}` : ''}`;
};
const push = (book, body, node) => cluster.request('POST', path(book, 'push', node ? { node } : {}), { body });
const changes = (book, node, cursor, limit) => cluster.request('GET', path(book, 'changes', {
  node, ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}),
}));
const list = (book, node) => cluster.request('GET', path(book, '', { node }));
const contact = (book, id, node) => cluster.request('GET', path(book, id, { node }));

/** Pulls every page at `node`: the changes, the last cursor, whether a page was a snapshot. */
async function pullAll(book, node, cursor) {
  const all = [];
  let snapshot = false;
  for (let page = 0; page < 100; page += 1) {
    const res = await changes(book, node, cursor, 50);
    assert.equal(res.status, 200, JSON.stringify(res.data));
    all.push(...res.data.changes);
    snapshot ||= res.data.snapshot;
    cursor = res.data.cursor;
    if (!res.data.more) return { changes: all, cursor, snapshot };
  }
  throw new Error('the pages do not end');
}

/** Every node lists the same contacts, and `check(contacts)` holds. */
async function converged(book, check) {
  return cluster.until(async () => {
    const seen = await Promise.all(NODES.map(async (n) => (await list(book, n)).data.contacts));
    const same = seen.every((c) => JSON.stringify(c) === JSON.stringify(seen[0]));
    return same && check(seen[0]) && seen[0];
  }, `${book} converges`);
}

test('a push at one node is pulled at another, and one cursor serves every node', async () => {
  const a = new Client(1);
  const id = randomUUID();
  const pushed = await push('pull', { client: a.id, deltas: [a.delta(id, 'name', 'Bob')] }, 'node-0');
  assert.equal(pushed.status, 200, JSON.stringify(pushed.data));
  assert.deepEqual([pushed.data.node, pushed.data.acked, pushed.data.applied], ['node-0', 1, 1]);
  await converged('pull', (c) => c.length === 1);
  const first = await pullAll('pull', 'node-1');
  assert.ok(first.snapshot, 'a newcomer gets a snapshot');
  assert.deepEqual(first.changes.map((c) => [c.id, c.column, c.value]), [[id, 'name', 'Bob']]);
  const more = await push('pull', { client: a.id, deltas: [a.delta(id, 'email', 'bob@example.com')] }, 'node-2');
  assert.equal(more.status, 200);
  await converged('pull', (c) => c[0]?.email === 'bob@example.com');
  const tail = await pullAll('pull', 'node-1', first.cursor);
  assert.ok(!tail.snapshot, 'the cursor is still valid at node-1');
  assert.deepEqual(tail.changes.map((c) => c.column), ['email']);
  const elsewhere = await pullAll('pull', 'node-3', tail.cursor);
  assert.ok(elsewhere.snapshot, 'another node starts with a snapshot');
  assert.equal(elsewhere.changes.length, 2);
});

test('a retried push is applied once, wherever it lands', async () => {
  const a = new Client(2);
  const body = { client: a.id, deltas: [a.delta(randomUUID(), 'name', 'Ann'), a.delta(randomUUID(), 'name', 'Cy')] };
  const first = await push('retry', body, 'node-0');
  assert.deepEqual([first.status, first.data.acked, first.data.applied], [200, 2, 2]);
  const again = await push('retry', body, 'node-0');
  assert.deepEqual([again.data.acked, again.data.applied], [2, 0]);
  await converged('retry', (c) => c.length === 2);
  const { changes: log } = await pullAll('retry', 'node-1');
  assert.equal(log.length, 2, 'one change per write');
  const late = await push('retry', body, 'node-1');
  assert.deepEqual([late.data.acked, late.data.applied], [2, 0], 'applied once at every node');
});

test('concurrent edits of two columns of one contact both survive everywhere', async () => {
  const [a, b] = [new Client(3), new Client(4)];
  const id = randomUUID();
  const [ra, rb] = await Promise.all([
    push('concurrent', { client: a.id, deltas: [a.delta(id, 'name', 'Dana')] }, 'node-0'),
    push('concurrent', { client: b.id, deltas: [b.delta(id, 'phone', '555-0100')] }, 'node-3'),
  ]);
  assert.deepEqual([ra.status, rb.status], [200, 200]);
  const [c] = await converged('concurrent', (list) => list.length === 1 && list[0].phone && list[0].name);
  assert.deepEqual([c.id, c.name, c.phone, c.tombstone], [id, 'Dana', '555-0100', false]);
  const del = await push('concurrent', { client: a.id, deltas: [a.delta(id, 'tombstone', true)] }, 'node-1');
  assert.equal(del.status, 200);
  await converged('concurrent', (list) => list.length === 0);
  const one = await contact('concurrent', id, 'node-2');
  assert.equal(one.status, 200);
  assert.deepEqual([one.data.contact.tombstone, one.data.contact.name], [true, 'Dana'], 'a soft delete');
});

test('every node stores a book flattened: one `contact` row per contact, and a write rewrites only its row', async () => {
  const a = new Client(9);
  const [x, y] = [randomUUID(), randomUUID()];
  const first = [a.delta(x, 'name', 'Xia'), a.delta(x, 'email', 'xia@example.com'), a.delta(y, 'name', 'Yves')];
  assert.equal((await push('flat', { client: a.id, deltas: first }, 'node-0')).status, 200);
  await converged('flat', (c) => c.length === 2);
  const columns = 'id, name, name_ts, phone, phone_ts, email, email_ts, tombstone, tombstone_ts';
  const stored = (where = '') => cluster.sql(
    `SELECT ${columns} FROM contact WHERE object = 'contacts:flat' ${where} ORDER BY id`);
  const before = stored();
  assert.deepEqual(Object.keys(before).sort(), NODES);
  const row = (id, name, email, deltas) => ({
    id, name, name_ts: deltas[0].timestamp, phone: null, phone_ts: null,
    email, email_ts: email && deltas[1].timestamp, tombstone: null, tombstone_ts: null,
  });
  const want = [row(x, 'Xia', 'xia@example.com', first), row(y, 'Yves', null, first.slice(2))]
    .sort((p, q) => p.id.localeCompare(q.id));
  for (const n of NODES) assert.deepEqual(before[n], want, `${n}'s contact table`);
  const bytes = cluster.sql("SELECT count(*) AS n FROM rows WHERE object = 'contacts:flat' AND row NOT LIKE '~client/%'");
  for (const n of NODES) assert.equal(bytes[n][0].n, 0, `${n} keeps no contact in the generic rows table`);

  const phone = a.delta(y, 'phone', '555-0199');
  assert.equal((await push('flat', { client: a.id, deltas: [phone] }, 'node-2')).status, 200);
  await converged('flat', (c) => c.some((r) => r.phone === '555-0199'));
  const after = stored();
  for (const n of NODES) {
    const [ax, ay] = after[n][0].id === x ? after[n] : [after[n][1], after[n][0]];
    assert.deepEqual(ax, want.find((r) => r.id === x), `${n}: the other contact's row is as it was`);
    assert.deepEqual(ay, { ...want.find((r) => r.id === y), phone: '555-0199', phone_ts: phone.timestamp },
      `${n}: only the phone and its stamp changed`);
  }
});

test('a stamp past the drift bound is a 422 that says by how much, and nothing changes', async () => {
  const a = new Client(5);
  const delta = { id: randomUUID(), column: 'name', value: 'Eve', timestamp: a.stamp(120_000), seq: 1 };
  const res = await push('drift', { client: a.id, deltas: [delta] });
  assertError(res, 422, 'bad_timestamp', 'ahead', /1\d{5} ms ahead/);
  assert.deepEqual((await list('drift', 'node-0')).data.contacts, []);
});

test('a cursor older than the trimmed log gets a snapshot, then the tail', async () => {
  const a = new Client(6);
  const ids = Array.from({ length: 20 }, () => randomUUID());
  const round = (r) => ({ client: a.id, deltas: Array.from({ length: 100 }, (_, i) => a.delta(ids[i % 20], 'name', `r${r}-${i}`)) });
  assert.equal((await push('stale', round(0), 'node-0')).status, 200);
  const early = await pullAll('stale', 'node-0');
  for (let r = 1; r < 7; r += 1) assert.equal((await push('stale', round(r), 'node-0')).status, 200);
  const stale = await pullAll('stale', 'node-0', early.cursor);
  assert.ok(stale.snapshot, 'the log no longer holds what follows the cursor');
  const latest = new Map(stale.changes.map((c) => [c.id, c.value]));
  assert.equal(latest.size, 20);
  assert.ok([...latest.values()].every((v) => v.startsWith('r6-')), 'the latest value of each contact');
  assert.ok(stale.changes.length < 100, `${stale.changes.length} changes, not the history of 700`);
});

test('server-sent events carry other clients\' changes', async () => {
  const a = new Client(7);
  const id = randomUUID();
  let wrote = false;
  const events = await cluster.events(path('live', 'events', { node: 'node-1' }), async (evs) => {
    const data = evs.filter((e) => e.includes('data:'));
    if (data.length >= 1 && !wrote) {
      wrote = true;
      assert.equal((await push('live', { client: a.id, deltas: [a.delta(id, 'name', 'Live')] }, 'node-2')).status, 200);
    }
    return evs.some((e) => e.includes('"Live"'));
  });
  assert.ok(events.some((e) => e.includes(id)), JSON.stringify(events));
});

test('bad input gets a 4xx JSON error that names the problem, and changes nothing', async () => {
  const a = new Client(8);
  const good = () => ({ id: randomUUID(), column: 'name', value: 'x', timestamp: a.stamp(), seq: 1 });
  const body = (patch) => ({ client: a.id, deltas: [{ ...good(), ...patch }] });
  const cases = [
    [body({ column: 'age' }), 400, 'bad_column'],
    [body({ value: 'x'.repeat(300) }), 400, 'bad_value'],
    [body({ value: true }), 400, 'bad_value'],
    [body({ id: 'bob' }), 400, 'bad_id'],
    [body({ timestamp: 'yesterday' }), 400, 'bad_json'],
    [body({ timestamp: `${Date.now()}-0000-0000000000000002` }), 422, 'bad_timestamp'],
    [body({ timestamp: `${Date.now()}-10000-${a.id}` }), 422, 'bad_timestamp'],
    [body({ seq: 5000 }), 409, 'sequence_gap'],
    [{ client: a.id, deltas: [{ ...good(), seq: 1 }, { ...good(), seq: 3 }] }, 400, 'bad_batch'],
    [{ client: a.id, deltas: Array.from({ length: 101 }, (_, i) => ({ ...good(), seq: i + 1 })) }, 400, 'bad_batch'],
    [[good()], 400, 'bad_json'],
    [{ ...body({}), extra: 1 }, 400, 'bad_json'],
    [{ ...body({}), client: 'nope' }, 400, 'bad_json'],
    [{ ...body({}), cursor: '!!' }, 400, 'bad_cursor'],
  ];
  for (const [b, status, error] of cases) {
    assertError(await push('bad', b), status, error, JSON.stringify(b).slice(0, 120));
  }
  assertError(await changes('bad', 'node-0', 'garbage'), 400, 'bad_cursor', 'cursor');
  assertError(await changes('bad', 'node-0', undefined, '0'), 400, 'bad_limit', 'limit');
  assertError(await contact('bad', 'not-a-uuid', 'node-0'), 400, 'bad_id', 'id');
  assertError(await contact('bad', randomUUID(), 'node-0'), 404, 'not_found', 'absent');
  assertError(await cluster.request('PUT', path('bad', 'push')), 405, 'method_not_allowed', 'PUT');
  for (const n of NODES) {
    assert.deepEqual((await list('bad', n)).data.contacts, [], `${n} holds nothing`);
    assert.deepEqual((await changes('bad', n)).data.changes, [], `${n} logged nothing`);
  }
});

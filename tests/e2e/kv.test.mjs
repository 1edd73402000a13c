// End-to-end tests of the key-value API (multi-value registers on R = 3
// replicas of a hash ring) on `wrangler dev`: round trips of text and
// bytes, `?resolve=lww`, concurrent writes through two replicas, writes and
// deletes with a read's context, tombstones across a partition, the merged
// listing with prefix, limit and cursor, the Worker's read cache, postcard,
// the sibling and size limits, and bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, NODES, assertError, varint } from './harness.mjs';

// KV_CACHE_MS is wrangler.toml's 2000; the limits are its 125 and 16384.
const cluster = new Cluster();
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

const MAX_KEY = 125;
const MAX_VALUE = 16384;
const JSON_TYPE = { 'content-type': 'application/json' };
const POSTCARD = 'application/x-postcard';
const NO_CACHE = { 'cache-control': 'no-cache' };
const show = (x) => JSON.stringify(x);

/** `PUT /api/kv/:k`; `value` is text or `{base64}`. */
const put = (k, value, { context, node } = {}) =>
  cluster.kv('PUT', k, { body: context === undefined ? { value } : { value, context }, node });
/** `GET /api/kv/:k`: pinned to `node`, or else (unless `cached`) past the cache. */
const get = (k, { node, query, cached = false, headers = {} } = {}) =>
  cluster.kv('GET', k, { node, query, headers: { ...(node || cached ? {} : NO_CACHE), ...headers } });
/** `DELETE /api/kv/:k`, with a context or with no body at all. */
const del = (k, { context, node } = {}) =>
  cluster.kv('DELETE', k, { body: context === undefined ? undefined : { context }, node });
const list = (query, headers) => cluster.kv('GET', null, { query, headers });

/** The values of a view's siblings, as sorted JSON texts. */
const values = (view) => view.siblings.map((s) => show(s.value)).sort();
const b64 = (bytes) => Buffer.from(bytes).toString('base64');

/** A key's preference list, from the `x-edge-crdt-replicas` header. */
async function replicasOf(k) {
  const res = await get(k);
  assert.equal(res.status, 200, show(res.data));
  const replicas = (res.headers.get('x-edge-crdt-replicas') ?? '').split(',').filter(Boolean);
  assert.equal(replicas.length, 3, `three replicas of ${k}: ${replicas}`);
  assert.equal(new Set(replicas).size, 3);
  assert.ok(replicas.every((n) => NODES.includes(n)), `${replicas}`);
  return replicas;
}

/**
 * Polls every replica in `replicas` (each asked with `?node=`, which also
 * skips the cache) until each answers itself with exactly the sibling
 * values `expected` (text, or `{base64}`) and one context; returns the views.
 */
async function converged(k, expected, replicas) {
  const want = expected.map(show).sort();
  let seen = [];
  try {
    return await cluster.until(async () => {
      seen = await Promise.all(replicas.map(async (n) => (await get(k, { node: n })).data));
      const same = seen.every((v, i) => v.node === replicas[i]
        && show(values(v)) === show(want)
        && v.context === seen[0].context);
      return same && seen;
    }, `${k} converges on ${show(want)}`);
  } catch (e) {
    throw new Error(`${e.message}: ${show(seen.map((v) => [v.node, v.siblings?.map((s) => s.value), v.context]))}`);
  }
}

/** Each replica's siblings and context, read without touching anything. */
async function snapshot(k, replicas) {
  return Promise.all(replicas.map(async (n) => {
    const res = await get(k, { node: n });
    assert.equal(res.status, 200, show(res.data));
    return { node: res.data.node, siblings: res.data.siblings, context: res.data.context };
  }));
}

// Postcard: a reader for the replies, and the bodies of writes.
class Reader {
  constructor(bytes) { this.b = bytes; this.i = 0; }
  varint() {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const x = this.b[this.i++];
      v |= BigInt(x & 0x7f) << shift;
      shift += 7n;
      if (!(x & 0x80)) return v;
    }
  }
  num() { return Number(this.varint()); }
  bytes() { const n = this.num(); const out = this.b.slice(this.i, this.i + n); this.i += n; return out; }
  str() { return new TextDecoder().decode(this.bytes()); }
  list(item) { return Array.from({ length: this.num() }, () => item()); }
  dot() { return { node: this.num(), counter: this.num() }; }
  /** A `Payload`: 0 = Text, 1 = Bytes. */
  payload() { return this.num() === 0 ? this.str() : { base64: b64(this.bytes()) }; }
  /** A `CausalContext`: a version vector, then the cloud (per node, runs
   * of counters `first..=last`); returns its bytes. */
  context() {
    const start = this.i;
    this.list(() => [this.num(), this.num()]);
    this.list(() => [this.num(), this.list(() => [this.num(), this.num()])]);
    return this.b.slice(start, this.i);
  }
}
/** A postcard `RegisterWire` reply: key, node, siblings, context. */
function decodeRegister(bytes) {
  const r = new Reader(bytes);
  assert.equal(r.num(), 1, 'envelope version');
  const key = r.str();
  const node = `node-${r.num()}`;
  const siblings = r.list(() => { const dot = r.dot(); return { dot, value: r.payload(), stamp: r.varint() }; });
  const context = r.context();
  assert.equal(r.i, bytes.length, 'nothing after the context');
  return { key, node, siblings, context };
}
const pcBytes = (bytes) => [...varint(bytes.length), ...bytes];
const EMPTY_CONTEXT = [0, 0];

test('a key round-trips text and base64 bytes, names its replicas, and resolves by last writer', async () => {
  const k = 'greeting';
  const replicas = await replicasOf(k);
  const first = await put(k, 'hello');
  assert.equal(first.status, 200, show(first.data));
  assert.match(first.headers.get('content-type'), /application\/json/);
  assert.equal(first.headers.get('x-edge-crdt-replicas'), replicas.join(','));
  const { key, node, siblings, context } = first.data;
  assert.equal(key, k);
  assert.ok(replicas.includes(node), `${node} is a replica of ${k}: ${replicas}`);
  assert.equal(siblings.length, 1);
  assert.deepEqual({ value: siblings[0].value, node: siblings[0].node }, { value: 'hello', node });
  assert.ok(siblings[0].stamp > 0);
  assert.equal(typeof context, 'string');
  // Read back from the replica that took it, then everywhere.
  const back = await get(k, { node });
  assert.equal(back.status, 200);
  assert.deepEqual([back.data.siblings, back.data.context], [siblings, context]);
  await converged(k, ['hello'], replicas);
  // Bytes, replacing the text through the context of the read.
  const bytes = { base64: b64([0, 1, 2, 0xfe, 0xff]) };
  const second = await put(k, bytes, { context, node: replicas[1] });
  assert.equal(second.status, 200, show(second.data));
  assert.deepEqual(second.data.siblings.map((s) => s.value), [bytes]);
  await converged(k, [bytes], replicas);
  // A node that is not a replica forwards to one.
  const outsider = NODES.find((n) => !replicas.includes(n));
  const forwarded = await get(k, { node: outsider });
  assert.equal(forwarded.status, 200);
  assert.ok(replicas.includes(forwarded.data.node), `${outsider} forwarded to a replica, not ${forwarded.data.node}`);
  assert.deepEqual(forwarded.data.siblings.map((s) => s.value), [bytes]);
  const viaOutsider = await put(k, 'through an outsider', { context: forwarded.data.context, node: outsider });
  assert.equal(viaOutsider.status, 200, show(viaOutsider.data));
  assert.ok(replicas.includes(viaOutsider.data.node));
  await converged(k, ['through an outsider'], replicas);
  // ?resolve=lww on one sibling is that sibling.
  const one = await get(k, { node: replicas[2], query: { resolve: 'lww' } });
  assert.deepEqual(one.data.siblings.map((s) => s.value), ['through an outsider']);
  // Unicode, the empty text, the empty bytes, the longest key, and a key of every allowed sign.
  for (const [name, value] of [['unicode', 'héllo ✓ 🎉'], ['empty', ''], ['no-bytes', { base64: '' }],
    ['k'.repeat(MAX_KEY), 'long key'], ['user:42/profile@home.v1~x_y-z', 'signs']]) {
    const res = await put(name, value);
    assert.equal(res.status, 200, `${name}: ${show(res.data)}`);
    assert.equal(res.data.key, name);
    const read = await get(name, { node: res.data.node });
    assert.deepEqual(read.data.siblings.map((s) => s.value), [value], name);
  }
  // The largest value, exactly at the limit, as text and as bytes.
  const big = await put('biggest', 'v'.repeat(MAX_VALUE));
  assert.equal(big.status, 200, show(big.data));
  const bigBytes = await put('biggest-bytes', { base64: b64(new Uint8Array(MAX_VALUE).fill(7)) });
  assert.equal(bigBytes.status, 200, show(bigBytes.data));
});

test('concurrent writes through two replicas become two siblings; a write with a read\'s context replaces exactly what it saw', async () => {
  const k = 'concurrent';
  const [a, b, c] = await replicasOf(k);
  const [ra, rb] = await Promise.all([put(k, 'from-a', { node: a }), put(k, 'from-b', { node: b })]);
  assert.equal(ra.status, 200, show(ra.data));
  assert.equal(rb.status, 200, show(rb.data));
  assert.equal(ra.data.node, a, 'the hinted replica took the write');
  assert.equal(rb.data.node, b);
  const views = await converged(k, ['from-a', 'from-b'], [a, b, c]);
  const byValue = Object.fromEntries(views[0].siblings.map((s) => [s.value, s]));
  assert.equal(byValue['from-a'].node, a, 'each sibling names the node that took it');
  assert.equal(byValue['from-b'].node, b);
  // Last writer wins by stamp, the same on every replica.
  const latest = views[0].siblings.reduce((x, y) => (y.stamp > x.stamp ? y : x));
  for (const n of [a, b, c]) {
    const lww = await get(k, { node: n, query: { resolve: 'lww' } });
    assert.equal(lww.status, 200);
    assert.equal(lww.data.siblings.length, 1, show(lww.data));
    assert.equal(lww.data.siblings[0].stamp, latest.stamp, n);
    assert.equal(lww.data.context, views[0].context, 'the context still covers every sibling');
  }
  // A client read both; meanwhile another writes blind at the third replica.
  const seen = views[0].context;
  const blind = await put(k, 'from-c', { node: c });
  assert.equal(blind.status, 200);
  const merged = await put(k, 'merged', { context: seen, node: b });
  assert.equal(merged.status, 200, show(merged.data));
  assert.ok(!values(merged.data).includes(show('from-a')) && !values(merged.data).includes(show('from-b')),
    `the write replaced both siblings it saw: ${show(merged.data.siblings)}`);
  const after = await converged(k, ['from-c', 'merged'], [a, b, c]);
  // A write with a context covering everything leaves one value.
  const final = await put(k, 'final', { context: after[2].context, node: a });
  assert.equal(final.status, 200);
  await converged(k, ['final'], [a, b, c]);
});

test('a delete with a context empties the key everywhere; a stale re-put with an old context does not bring the value back', async () => {
  const k = 'doomed';
  const replicas = await replicasOf(k);
  const [a, b, c] = replicas;
  assert.equal((await put(k, 'v1', { node: a })).status, 200);
  const [view] = await converged(k, ['v1'], replicas);
  const old = view.context;
  const gone = await del(k, { context: old, node: b });
  assert.equal(gone.status, 200, show(gone.data));
  assert.deepEqual(gone.data.siblings, []);
  assert.equal(typeof gone.data.context, 'string');
  await converged(k, [], replicas);
  assert.deepEqual((await get(k)).data.siblings, [], 'a read is empty');
  // A client still holding the context of its read before the delete
  // writes again: its new value is there, the deleted one is not.
  const stale = await put(k, 'v2', { context: old, node: c });
  assert.equal(stale.status, 200);
  assert.deepEqual(values(stale.data), [show('v2')]);
  await converged(k, ['v2'], replicas);
  // Deleting a key that never held anything is fine and empty.
  const never = await del('never-written');
  assert.equal(never.status, 200, show(never.data));
  assert.deepEqual(never.data.siblings, []);
});

test('a delete without a context removes what its replica has seen; a partitioned replica\'s copy does not come back, its concurrent write survives', async () => {
  const k = 'split-delete';
  const replicas = await replicasOf(k);
  const [a, b, c] = replicas;
  assert.equal((await put(k, 'old', { node: a })).status, 200);
  const [before] = await converged(k, ['old'], replicas);
  await cluster.partition([[c], NODES.filter((n) => n !== c)]);
  try {
    const gone = await del(k, { node: a });
    assert.equal(gone.status, 200, show(gone.data));
    assert.deepEqual(gone.data.siblings, [], 'no body: everything this replica has seen');
    await converged(k, [], [a, b]);
    // c still has "old" and takes a blind write next to it.
    const concurrent = await put(k, 'concurrent', { node: c });
    assert.equal(concurrent.status, 200);
    assert.deepEqual(values(concurrent.data), [show('concurrent'), show('old')]);
  } finally {
    await cluster.partition(null);
  }
  await converged(k, ['concurrent'], replicas);
  // A re-put with the context of the first read replaces nothing live.
  const stale = await put(k, 'stale-re-put', { context: before.context, node: b });
  assert.equal(stale.status, 200);
  await converged(k, ['concurrent', 'stale-re-put'], replicas);
});

test('the listing merges every node\'s keys: prefix, limit and cursor page through each live key once', async () => {
  const names = Array.from({ length: 30 }, (_, i) => `list/item-${String(i).padStart(2, '0')}`);
  const contexts = {};
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(names.slice(i, i + 10).map(async (name, j) => {
      const res = await put(name, `v-${i + j}`);
      assert.equal(res.status, 200, show(res.data));
      contexts[name] = res.data.context;
    }));
  }
  for (const other of ['lisu', 'list', 'listing/x', 'other/list/a']) assert.equal((await put(other, 'not listed')).status, 200);
  // Deleted with the context of their write, at whichever replica.
  const deleted = ['list/item-00', 'list/item-13', 'list/item-29'];
  for (const name of deleted) assert.equal((await del(name, { context: contexts[name] })).status, 200);
  const expected = names.filter((n) => !deleted.includes(n));

  const seen = [];
  let cursor;
  let pages = 0;
  do {
    const res = await list({ prefix: 'list/', limit: '7', ...(cursor ? { cursor } : {}) });
    assert.equal(res.status, 200, show(res.data));
    assert.match(res.headers.get('content-type'), /application\/json/);
    assert.equal(res.data.partial, false);
    assert.deepEqual(res.data.unreachable, []);
    assert.ok(res.data.keys.length <= 7, `a page has at most 7 keys: ${res.data.keys.length}`);
    for (const entry of res.data.keys) {
      assert.equal(entry.siblings.length, 1, show(entry));
      assert.equal(entry.siblings[0].value, `v-${Number(entry.key.slice(-2))}`, entry.key);
      assert.equal(typeof entry.context, 'string');
    }
    seen.push(...res.data.keys.map((e) => e.key));
    cursor = res.data.cursor;
    pages += 1;
    assert.ok(pages <= 10, 'the cursor ends');
  } while (cursor);
  assert.deepEqual(seen, expected, 'every live key once, in order, nothing else');
  assert.ok(pages >= 4, `27 keys in pages of 7: ${pages}`);

  const whole = await list({ prefix: 'list/', limit: '1000' });
  assert.deepEqual(whole.data.keys.map((e) => e.key), expected);
  assert.equal(whole.data.cursor, null, 'no cursor when nothing follows');
  const defaults = await list({ prefix: 'list/' });
  assert.deepEqual(defaults.data.keys.map((e) => e.key), expected, 'the default limit (100) takes them all');
  const everything = await list({});
  assert.ok(everything.data.keys.some((e) => e.key === 'other/list/a'), 'no prefix lists every key');
  const from = await list({ prefix: 'list/', cursor: 'list/item-25' });
  assert.deepEqual(from.data.keys.map((e) => e.key), ['list/item-26', 'list/item-27', 'list/item-28']);
  // The listing sees a write at once, from whichever replica took it.
  assert.equal((await put('list/item-13', 'back')).status, 200);
  const again = await list({ prefix: 'list/item-1', limit: '1000' });
  assert.deepEqual(again.data.keys.map((e) => e.key), names.slice(10, 20));
  // Postcard: the keys (each with siblings and context), the cursor, partial.
  const pc = await list({ prefix: 'list/', limit: '7' }, { accept: POSTCARD });
  assert.equal(pc.status, 200);
  assert.equal(pc.headers.get('content-type'), POSTCARD);
  const r = new Reader(pc.data);
  assert.equal(r.num(), 1, 'envelope version');
  const keys = r.list(() => { const key = r.str(); r.list(() => { r.dot(); r.payload(); r.varint(); }); r.context(); return key; });
  const pcCursor = r.num() === 1 ? r.str() : null;
  assert.equal(r.num(), 0, 'not partial');
  assert.equal(r.i, pc.data.length);
  // A page stops where the first node's page did: up to 7 keys, and a cursor.
  assert.ok(keys.length >= 1 && keys.length <= 7, show(keys));
  assert.deepEqual(keys, expected.slice(0, keys.length));
  assert.ok(pcCursor >= keys[keys.length - 1], `cursor ${pcCursor} after ${keys}`);
});

test('the read cache: miss then hit, Cache-Control: no-cache bypasses it and sees a fresh write, writes purge it, entries expire', async () => {
  const k = 'cached';
  const replicas = await replicasOf(k);
  const [a, b] = replicas;
  // b on its own: its replica and the others' disagree until the heal.
  await cluster.partition([[b], NODES.filter((n) => n !== b)]);
  try {
    assert.equal((await put(k, 'left', { node: a })).status, 200);
    assert.equal((await put(k, 'right', { node: b })).status, 200);
    const miss = await get(k, { cached: true });
    assert.equal(miss.status, 200);
    assert.equal(miss.headers.get('x-edge-crdt-cache'), 'miss', 'the writes purged the key');
    const hit = await get(k, { cached: true });
    assert.equal(hit.headers.get('x-edge-crdt-cache'), 'hit');
    assert.deepEqual(hit.data, miss.data, 'the cached reply, answering node included');
    assert.equal(hit.headers.get('x-edge-crdt-replicas'), replicas.join(','));
    assert.equal(hit.headers.get('cache-control'), 'no-store', 'clients do not cache it themselves');
    // Bypassing reaches the replicas (a random one each time) until one
    // shows a value the cached reply does not (a replica that has not yet
    // heard of `left` shows no value at all: not that).
    const fresh = await cluster.until(async () => {
      const res = await get(k, { headers: NO_CACHE });
      assert.equal(res.headers.get('x-edge-crdt-cache'), 'bypass');
      const seen = values(res.data);
      return seen.some((v) => !values(miss.data).includes(v)) && res;
    }, 'a bypassing read sees the other side of the partition');
    // A bypassing read refreshes the entry.
    const refreshed = await get(k, { cached: true });
    assert.equal(refreshed.headers.get('x-edge-crdt-cache'), 'hit');
    assert.deepEqual(refreshed.data, fresh.data);
    // Pinned reads never use the cache. The entry holds the key's register,
    // so `resolve` and postcard replies are made from it too.
    assert.equal((await get(k, { node: a, cached: true })).headers.get('x-edge-crdt-cache'), 'bypass');
    const lww = await get(k, { cached: true, query: { resolve: 'lww' } });
    assert.equal(lww.headers.get('x-edge-crdt-cache'), 'hit');
    assert.equal(lww.data.siblings.length, 1);
    assert.deepEqual(lww.data.context, refreshed.data.context);
    const pc = await get(k, { cached: true, headers: { accept: POSTCARD } });
    assert.equal(pc.headers.get('x-edge-crdt-cache'), 'hit');
    assert.equal(pc.headers.get('content-type'), POSTCARD);
    const pcAgain = await get(k, { cached: true, headers: { accept: POSTCARD } });
    assert.deepEqual(pcAgain.data, pc.data);
  } finally {
    await cluster.partition(null);
  }
  const [view] = await converged(k, ['left', 'right'], replicas);
  assert.equal((await get(k, { cached: true })).headers.get('x-edge-crdt-cache'), 'hit');
  // A write through the Worker purges the key's entry, whatever reads it served.
  const write = await put(k, 'after', { context: view.context });
  assert.equal(write.status, 200);
  assert.equal((await get(k, { cached: true, query: { resolve: 'lww' } })).headers.get('x-edge-crdt-cache'), 'miss');
  assert.equal((await get(k, { cached: true, headers: { accept: POSTCARD } })).headers.get('x-edge-crdt-cache'), 'hit');
  await converged(k, ['after'], replicas);
  const gone = await del(k, { context: write.data.context });
  assert.equal(gone.status, 200);
  const purged = await get(k, { cached: true });
  assert.equal(purged.headers.get('x-edge-crdt-cache'), 'miss', 'a delete purges too');
  // Entries live KV_CACHE_MS (2000 ms): a hit now, a miss later.
  assert.equal((await get(k, { cached: true })).headers.get('x-edge-crdt-cache'), 'hit');
  const started = Date.now();
  await cluster.until(async () => (await get(k, { cached: true })).headers.get('x-edge-crdt-cache') === 'miss',
    'the cached entry expires', 15_000);
  assert.ok(Date.now() - started >= 1000, 'not long before KV_CACHE_MS');
});

test('postcard: writes, reads and deletes with postcard bodies and replies', async () => {
  const k = 'binary';
  const replicas = await replicasOf(k);
  const text = [...new TextEncoder().encode('pc-text')];
  // PutWire { payload: Text("pc-text"), context: {} }
  const res = await cluster.kv('PUT', k, { body: new Uint8Array([1, 0, ...pcBytes(text), ...EMPTY_CONTEXT]), headers: { 'content-type': POSTCARD }, node: replicas[0] });
  assert.equal(res.status, 200, show(res.data));
  assert.equal(res.headers.get('content-type'), POSTCARD);
  const wrote = decodeRegister(res.data);
  assert.equal(wrote.key, k);
  assert.equal(wrote.node, replicas[0]);
  assert.deepEqual(wrote.siblings.map((s) => s.value), ['pc-text']);
  // A node's first dot in a register is its clock's stamp (see MvRegister::write).
  assert.deepEqual(wrote.siblings[0].dot, { node: Number(replicas[0].slice(5)), counter: Number(wrote.siblings[0].stamp) });
  await converged(k, ['pc-text'], replicas);
  const read = await cluster.kv('GET', k, { headers: { accept: POSTCARD }, node: replicas[1] });
  assert.equal(read.headers.get('content-type'), POSTCARD);
  const seen = decodeRegister(read.data);
  assert.deepEqual(seen.siblings.map((s) => s.value), ['pc-text']);
  // Bytes with the read's context: PutWire { payload: Bytes([9, 8, 7]), context }.
  const put2 = await cluster.kv('PUT', k, { body: new Uint8Array([1, 1, ...pcBytes([9, 8, 7]), ...seen.context]), headers: { 'content-type': POSTCARD }, node: replicas[2] });
  assert.equal(put2.status, 200);
  const replaced = decodeRegister(put2.data);
  assert.deepEqual(replaced.siblings.map((s) => s.value), [{ base64: b64([9, 8, 7]) }]);
  await converged(k, [{ base64: b64([9, 8, 7]) }], replicas);
  // Delete with the postcard context of a read.
  const last = decodeRegister((await cluster.kv('GET', k, { headers: { accept: POSTCARD }, node: replicas[0] })).data);
  const gone = await cluster.kv('DELETE', k, { body: new Uint8Array([1, ...last.context]), headers: { 'content-type': POSTCARD }, node: replicas[1] });
  assert.equal(gone.status, 200);
  assert.deepEqual(decodeRegister(gone.data).siblings, []);
  await converged(k, [], replicas);
  // Bad postcard changes nothing: truncated, another version, trailing
  // bytes, a context with a dot counter of 0.
  const bad = [
    [[1, 0], 'bad_postcard'],
    [[2, 0, 1, 0x61, ...EMPTY_CONTEXT], 'bad_postcard'],
    [[1, 0, 1, 0x61, ...EMPTY_CONTEXT, 9], 'bad_postcard'],
    [[1, 0, 1, 0x61, 1, 0, 0, 0], 'bad_context'],
  ];
  for (const [body, error] of bad) {
    const res = await cluster.kv('PUT', k, { body: new Uint8Array(body), headers: { 'content-type': POSTCARD } });
    assertError(res, 400, error, `postcard ${body}`);
  }
  assertError(await cluster.kv('DELETE', k, { body: new Uint8Array([1, 5]), headers: { 'content-type': POSTCARD } }), 400, 'bad_postcard', 'postcard delete');
  await converged(k, [], replicas);
});

test('a write that would pass 64 siblings is a 409 telling the client to write with a read\'s context', async () => {
  const k = 'crowded';
  const replicas = await replicasOf(k);
  const [a] = replicas;
  for (let i = 0; i < 64; i++) {
    const res = await put(k, `s${i}`, { node: a });
    assert.equal(res.status, 200, `write ${i}: ${show(res.data)}`);
  }
  const before = await get(k, { node: a });
  assert.equal(before.data.siblings.length, 64);
  assertError(await put(k, 'one too many', { node: a }), 409, 'too_many_siblings', 'the 65th blind write', /context/);
  // Anywhere: every replica holds the 64 once gossip has passed.
  const views = await converged(k, Array.from({ length: 64 }, (_, i) => `s${i}`), replicas);
  assertError(await put(k, 'one too many', { node: replicas[1] }), 409, 'too_many_siblings', 'at another replica', /context/);
  assert.deepEqual((await snapshot(k, replicas)).map((v) => v.context), views.map((v) => v.context), 'nothing written');
  const fixed = await put(k, 'one', { context: views[0].context, node: replicas[2] });
  assert.equal(fixed.status, 200, show(fixed.data));
  await converged(k, ['one'], replicas);
});

test('siblings that would pass the 64 KiB a stored key may hold are a 413', async () => {
  const k = 'heavy';
  const replicas = await replicasOf(k);
  const big = (i) => `${i}`.repeat(MAX_VALUE);
  for (let i = 0; i < 3; i++) assert.equal((await put(k, big(i), { node: replicas[0] })).status, 200);
  const [view] = await converged(k, [big(0), big(1), big(2)], replicas);
  assertError(await put(k, big(3), { node: replicas[1] }), 413, 'register_too_large', 'a fourth 16 KiB sibling', /context/);
  const fixed = await put(k, big(3), { context: view.context, node: replicas[1] });
  assert.equal(fixed.status, 200);
  await converged(k, [big(3)], replicas);
});

test('bad input gets a 4xx JSON error that names the problem, and changes nothing', async () => {
  const k = 'strict';
  const replicas = await replicasOf(k);
  assert.equal((await put(k, 'keep', { node: replicas[0] })).status, 200);
  await converged(k, ['keep'], replicas);
  const before = await snapshot(k, replicas);
  const raw = (body, headers = JSON_TYPE) => ({ body, headers });
  const base = `/api/kv/${k}`;
  const tooBigValue = JSON.stringify({ value: 'x'.repeat(MAX_VALUE + 1) });
  const tooBigBytes = JSON.stringify({ value: { base64: b64(new Uint8Array(MAX_VALUE + 1)) } });
  const cases = [
    ['PUT', `/api/kv/${'k'.repeat(MAX_KEY + 1)}`, raw('{"value": "x"}'), 400, 'bad_key', /1 to 125 bytes/],
    ['GET', `/api/kv/${'k'.repeat(MAX_KEY + 1)}`, {}, 400, 'bad_key', /1 to 125 bytes/],
    ['DELETE', `/api/kv/${'k'.repeat(200)}`, {}, 400, 'bad_key'],
    ['PUT', '/api/kv/has%20space', raw('{"value": "x"}'), 400, 'bad_key'],
    ['PUT', '/api/kv/caf%C3%A9', raw('{"value": "x"}'), 400, 'bad_key'],
    ['PUT', '/api/kv/%zz', raw('{"value": "x"}'), 400, 'bad_key'],
    ['GET', '/api/kv/', {}, 400, 'bad_key'],
    ['PUT', base, raw(tooBigValue), 413, 'value_too_large', /16385 bytes, the limit is 16384/],
    ['PUT', base, raw(tooBigBytes), 413, 'value_too_large'],
    ['PUT', base, raw(JSON.stringify({ value: 'x'.repeat(40_000) })), 413, 'body_too_large'],
    ['PUT', base, raw('{"value": {"base64": "not base64!"}}'), 400, 'bad_value'],
    ['PUT', base, raw('{"value": "x", "context": "garbage!"}'), 400, 'bad_context'],
    ['PUT', base, raw('{"value": "x", "context": "AQID"}'), 400, 'bad_context'],
    ['PUT', base, raw('{"value": "x", "extra": 1}'), 400, 'bad_json', /unknown field/],
    ['PUT', base, raw('{"value": {"base64": "AA==", "extra": 1}}'), 400, 'bad_json'],
    ['PUT', base, raw('{"value": 3}'), 400, 'bad_json'],
    ['PUT', base, raw('{"value": null}'), 400, 'bad_json'],
    ['PUT', base, raw('{}'), 400, 'bad_json'],
    ['PUT', base, raw(''), 400, 'bad_json'],
    ['PUT', base, raw('{"value": "x"'), 400, 'bad_json'],
    ['PUT', base, raw('value=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type'],
    ['DELETE', base, raw('{"context": "garbage!"}'), 400, 'bad_context'],
    ['DELETE', base, raw('{"ctx": "x"}'), 400, 'bad_json', /unknown field/],
    ['DELETE', base, raw('[1]'), 400, 'bad_json'],
    ['DELETE', base, raw('x', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type'],
    ['POST', base, raw('{"value": "x"}'), 405, 'method_not_allowed', /GET, PUT or DELETE/],
    ['PATCH', base, raw('{"value": "x"}'), 405, 'method_not_allowed', /GET, PUT or DELETE/],
    ['PUT', '/api/kv', raw('{"value": "x"}'), 405, 'method_not_allowed', /use GET/],
    ['DELETE', '/api/kv', {}, 405, 'method_not_allowed', /use GET/],
    ['GET', `${base}/more`, {}, 404, 'not_found'],
    ['PUT', `${base}/more`, raw('{"value": "x"}'), 404, 'not_found'],
    ['GET', `${base}?resolve=newest`, {}, 400, 'bad_resolve'],
    ['PUT', `${base}?node=node-x`, raw('{"value": "x"}'), 400, 'bad_node'],
    ['GET', '/api/kv?limit=0', {}, 400, 'bad_limit'],
    ['GET', '/api/kv?limit=1001', {}, 400, 'bad_limit'],
    ['GET', '/api/kv?limit=ten', {}, 400, 'bad_limit'],
    ['GET', '/api/kv?prefix=a%20b', {}, 400, 'bad_prefix'],
    ['GET', `/api/kv?prefix=${'p'.repeat(MAX_KEY + 1)}`, {}, 400, 'bad_prefix'],
    ['GET', '/api/kv?cursor=a%20b', {}, 400, 'bad_cursor'],
  ];
  for (const [i, [method, path, opts, status, error, message]] of cases.entries()) {
    const node = NODES[i % NODES.length];
    const sep = path.includes('?') ? '&' : '?';
    const at = path.includes('node=') ? path : `${path}${sep}node=${node}`;
    assertError(await cluster.request(method, at, opts), status, error, `${method} ${at.slice(0, 80)}`, message);
  }
  assert.deepEqual(await snapshot(k, replicas), before, 'every replica as before');
  const listed = await list({ prefix: 'k', limit: '1000' });
  assert.ok(!listed.data.keys.some((e) => e.key.length > MAX_KEY), 'no oversized key was stored');
});

test('counters and sets still work next to registers of the same name', async () => {
  assert.equal((await put('shared', 'register')).status, 200);
  const inc = await cluster.increment('shared', 2, 'node-1');
  assert.equal(inc.status, 200, show(inc.data));
  await cluster.converged('shared', NODES, 2);
  const created = await cluster.request('PUT', '/api/sets/shared', { body: { bias: 'add-wins' } });
  assert.equal(created.status, 200);
  await converged('shared', ['register'], await replicasOf('shared'));
});

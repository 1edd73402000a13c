// Writes of every kind through the public HTTP API, each acknowledged one
// recorded in an `Oracle` (./oracle.mjs); `divergence` then lists every
// replica whose view of an object is not what the oracle says, and
// `gossipStats` sums the nodes' traffic counters (GET /admin/nodes/:id).
//
// Writers are numbered; each owns its address-book client and its
// key-value chains, so every chain is one causal history, and draws its
// writes from a generator of its own (the seed replays them, if not their
// timing). A writer sends each write to a node it draws from all nodes, or
// during a partition from its side's, with `?node=`.
import { Oracle } from './oracle.mjs';

/** A seeded generator (mulberry32): the same seed draws the same writes. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

/** Runs `fn` on each item, at most `limit` at once; the results in order. */
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A version-4 UUID drawn from `rand`. */
function uuid(rand) {
  const hex = Array.from({ length: 32 }, () => rand.int(16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

const KINDS = ['counter', 'set', 'kv', 'contacts', 'stream'];
const CONTACT_COLUMNS = ['name', 'phone', 'email', 'name', 'phone', 'email', 'tombstone'];

/** A 2xx or a failure that names the request. */
function ok(res, what) {
  if (res.status !== 200) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.data)}`);
  return res.data;
}

const sorted = (xs) => [...xs].sort();
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const missingExtra = (got, want) => {
  const g = new Set(got);
  const w = new Set(want);
  return `missing ${JSON.stringify(want.filter((x) => !g.has(x)).slice(0, 5))}, extra ${JSON.stringify(got.filter((x) => !w.has(x)).slice(0, 5))}`;
};

/**
 * One run's objects and writers. `prefix` names its objects; `sides` (two
 * lists of nodes) are the sides of the partition to come: its split keys
 * have replicas on both.
 */
export class Workload {
  constructor(cluster, { prefix, seed, writers, sides }) {
    this.cluster = cluster;
    this.prefix = prefix;
    this.oracle = new Oracle();
    this.seed = seed;
    const rand = rng(seed);
    this.rands = Array.from({ length: writers }, (_, w) => rng(seed * 7919 + w + 1));
    this.writers = writers;
    this.sides = sides;
    this.counters = [0, 1, 2, 3].map((i) => `${prefix}-c${i}`);
    this.sets = { [`${prefix}-s0`]: 'add-wins', [`${prefix}-s1`]: 'add-wins', [`${prefix}-s2`]: 'remove-wins' };
    this.elements = Array.from({ length: 24 }, (_, i) => `e${i}`);
    this.books = [0, 1].map((i) => `${prefix}-b${i}`);
    // Each book's contacts: a shared pool, so clients edit the same ones.
    this.contactIds = Array.from({ length: 12 }, () => uuid(rand));
    this.topics = [0, 1, 2, 3].map((i) => `${prefix}-t${i}`);
    // Writer w's own keys (one chain each), and its client.
    this.ownKeys = Array.from({ length: writers }, (_, w) => [0, 1, 2].map((j) => `${prefix}/w${w}-k${j}`));
    this.clients = Array.from({ length: writers }, (_, w) => ({
      id: `00000003${w.toString(16).padStart(8, '0')}`, seq: 0, last: 0, counter: 0,
    }));
    this.splitKeys = [];
    this.replicas = new Map(); // a ring object (key or topic) → its preference list
    this.count = Array(writers).fill(0);
  }

  /**
   * Creates the remove-wins set, and picks the split keys: keys whose
   * replicas sit on both sides, two per pair of writers, each given a first
   * value by one chain that the partition will fork.
   */
  async setup() {
    for (const [name, bias] of Object.entries(this.sets)) {
      if (bias === 'add-wins') continue;
      ok(await this.cluster.request('PUT', `/api/sets/${name}`, { body: { bias } }), `create ${name}`);
      this.oracle.sets.create(name, bias);
    }
    for (let i = 0; this.splitKeys.length < this.writers; i += 1) {
      const key = `${this.prefix}/split-${i}`;
      const replicas = await this.#replicasOf(key);
      if (this.sides.every((side) => replicas.some((r) => side.includes(r)))) {
        this.splitKeys.push(key);
        await this.#put(key, 'base', replicas[0], `${key}=base`);
      }
    }
    for (const topic of this.topics) await this.#replicasOf(topic, 'stream');
  }

  /** The side writer `w` writes at during the partition: the first half of the writers at the first side. */
  sideOf(w) {
    return w < this.writers / 2 ? 0 : 1;
  }

  /**
   * Every writer sends `each` writes, one kind after another, at any node;
   * with `split` (the partition is up: the sides do not see each other),
   * at its side's nodes, and every second key-value write goes to its
   * side's chain of a split key, at a replica on its side.
   */
  async run(each, split = false) {
    if (split) for (const key of this.splitKeys) this.oracle.kv.fork(key, 'base', ['A', 'B']);
    await Promise.all(Array.from({ length: this.writers }, async (_, w) => {
      const nodes = split ? this.sides[this.sideOf(w)] : this.sides.flat();
      for (let i = 0; i < each; i += 1) await this.write(w, nodes, split);
    }));
  }

  /** Writer `w`'s next write, at a node of `nodes`. */
  async write(w, nodes, split) {
    const n = this.count[w]++;
    const rand = this.rands[w];
    const node = rand.pick(nodes);
    const c = this.cluster;
    switch (KINDS[(w + n) % KINDS.length]) {
      case 'counter': {
        const name = rand.pick(this.counters);
        const by = rand.int(15) - 5 || 7;
        ok(await c.increment(name, by, node), `increment ${name} by ${by} at ${node}`);
        this.oracle.counters.increment(name, by);
        return;
      }
      case 'set': {
        const name = rand.pick(Object.keys(this.sets));
        const op = rand.next() < 0.65 ? 'insert' : 'delete';
        const elements = [...new Set(Array.from({ length: 1 + rand.int(3) }, () => rand.pick(this.elements)))];
        const data = ok(await c.request('POST', `/api/sets/${name}/${op}?node=${node}`, { body: elements }), `${op} ${elements} in ${name} at ${node}`);
        this.oracle.sets.record(name, op, elements, data.stamp);
        return;
      }
      case 'kv': {
        // The i-th writer of each side writes its side's chain of the
        // split keys i, i + writers/2, …: one writer per chain.
        if (split && n % 2 === 0) {
          const side = this.sideOf(w);
          const half = this.writers / 2;
          const key = rand.pick(this.splitKeys.filter((_, k) => k % half === w % half));
          const at = rand.pick(this.replicas.get(key).filter((r) => this.sides[side].includes(r)));
          const chain = side === 0 ? 'A' : 'B';
          if (rand.next() < 0.2) return this.#delete(key, chain, at);
          return this.#put(key, chain, at, `${key}=${chain}${n}`);
        }
        const key = rand.pick(this.ownKeys[w]);
        if (this.oracle.kv.context(key, 'own') && rand.next() < 0.2) return this.#delete(key, 'own', node);
        return this.#put(key, 'own', node, `${key}=${n}`);
      }
      case 'contacts': {
        const book = rand.pick(this.books);
        const client = this.clients[w];
        const deltas = Array.from({ length: 1 + rand.int(3) }, (_, k) => {
          const column = rand.pick(CONTACT_COLUMNS);
          const value = column === 'tombstone' ? rand.next() < 0.7 : `${column}-w${w}-${n}-${k}`;
          return { id: rand.pick(this.contactIds), column, value, timestamp: this.#stamp(client), seq: ++client.seq };
        });
        ok(await c.request('POST', `/api/contacts/${book}/push?node=${node}`, { body: { client: client.id, deltas } }), `push to ${book} at ${node}`);
        this.oracle.contacts.record(book, deltas);
        return;
      }
      default: {
        const topic = rand.pick(this.topics);
        const data = ok(await c.request('POST', `/api/streams/${topic}/events?node=${node}`, { body: { message: `w${w}-${n}` } }), `append to ${topic} at ${node}`);
        this.oracle.streams.record(topic, data.cid);
      }
    }
  }

  async #put(key, chain, node, value) {
    const context = this.oracle.kv.context(key, chain);
    const res = await this.cluster.kv('PUT', key, { node, body: { value, ...(context ? { context } : {}) } });
    this.oracle.kv.record(key, chain, value, ok(res, `PUT ${key} at ${node}`).context);
    this.replicas.set(key, res.headers.get('x-edge-crdt-replicas').split(','));
  }

  async #delete(key, chain, node) {
    const context = this.oracle.kv.context(key, chain);
    const res = await this.cluster.kv('DELETE', key, { node, body: context ? { context } : {} });
    this.oracle.kv.record(key, chain, null, ok(res, `DELETE ${key} at ${node}`).context);
  }

  /** A ring object's preference list (`x-edge-crdt-replicas`), by a read. */
  async #replicasOf(name, kind = 'kv') {
    const path = kind === 'kv' ? `/api/kv/${encodeURIComponent(name)}` : `/api/streams/${name}/heads`;
    const res = await this.cluster.request('GET', path, { headers: { 'cache-control': 'no-cache' } });
    const list = (res.headers.get('x-edge-crdt-replicas') ?? '').split(',').filter(Boolean);
    if (list.length === 0) throw new Error(`${path}: no x-edge-crdt-replicas (${res.status})`);
    this.replicas.set(name, list);
    return list;
  }

  /** A client's next hybrid logical clock stamp. */
  #stamp(client) {
    const now = Date.now();
    client.counter = now <= client.last ? client.counter + 1 : 0;
    client.last = Math.max(now, client.last);
    return `${client.last}-${client.counter.toString(16).padStart(4, '0')}-${client.id}`;
  }


  /**
   * One check per replica's view of each object the oracle knows:
   * counters, sets and address books at each of `nodes`, registers at each
   * node of their preference lists, and per topic its replicas (every
   * appended id at each, in one order at all). Each is `{ id, check }`,
   * `check()` resolving to null when the view is what the oracle says, or
   * to a sentence saying how it differs.
   */
  views(nodes) {
    const c = this.cluster;
    const o = this.oracle;
    const at = (objects, where, kind, check) => objects.flatMap(([name, want]) => where(name).map((node) => ({
      id: `${kind} ${name} at ${node}`, check: () => check(name, want, node),
    })));
    const answeredBy = (data, node) => (data.node === node ? '' : ` (answered by ${data.node})`);
    return [
      ...at(o.counters.expected(), () => nodes, 'counter', async (name, want, node) => {
        const { data } = await c.read(name, node);
        return data.node === node && data.value === want ? null
          : `counter ${name} at ${node}${answeredBy(data, node)}: ${data.value}, expected ${want}`;
      }),
      ...at(o.sets.expected(), () => nodes, 'set', async (name, want, node) => {
        const { data } = await c.request('GET', `/api/sets/${name}?node=${node}`);
        const got = sorted((data.members ?? []).map(String));
        return data.node === node && same(got, want) ? null
          : `set ${name} at ${node}${answeredBy(data, node)}: ${missingExtra(got, want)}`;
      }),
      ...at(o.kv.expected(), (key) => this.replicas.get(key), 'kv', async (key, want, node) => {
        const { data } = await c.kv('GET', key, { node });
        const got = sorted((data.siblings ?? []).map((x) => x.value));
        return data.node === node && same(got, want) ? null
          : `kv ${key} at ${node}${answeredBy(data, node)}: siblings ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`;
      }),
      ...at(o.contacts.expected(), () => nodes, 'book', async (book, want, node) => {
        const got = [];
        let after;
        for (let page = 0; page < 100; page += 1) {
          const data = ok(await c.request('GET', `/api/contacts/${book}?node=${node}&limit=1000${after ? `&after=${after}` : ''}`), `list ${book} at ${node}`);
          if (data.node !== node) return `book ${book} at ${node}${answeredBy(data, node)}`;
          got.push(...data.contacts);
          if (!data.next) break;
          after = data.next;
        }
        const text = (list) => list.map((x) => JSON.stringify(x)).sort();
        const [g, w] = [text(got), text(want)];
        return same(g, w) ? null : `book ${book} at ${node}: ${got.length} contacts, expected ${want.length}; ${missingExtra(g, w)}`;
      }),
      ...o.streams.expected().map(([topic, want]) => ({
        id: `topic ${topic}`,
        check: async () => {
          const problems = [];
          const orders = await mapLimit(this.replicas.get(topic), 3, async (node) => {
            const ids = [];
            let cursor;
            for (let page = 0; page < 100; page += 1) {
              const data = ok(await c.request('GET', `/api/streams/${topic}/events?node=${node}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`), `events of ${topic} at ${node}`);
              if (data.node !== node) { problems.push(`topic ${topic} at ${node}${answeredBy(data, node)}`); return null; }
              ids.push(...data.events.map((e) => e.cid));
              cursor = data.cursor;
              if (!cursor) break;
            }
            const got = sorted(ids);
            if (!same(got, want)) problems.push(`topic ${topic} at ${node}: ${ids.length} events, expected ${want.length}; ${missingExtra(got, want)}`);
            return ids;
          });
          const full = orders.filter(Boolean);
          if (full.some((x) => !same(x, full[0]))) problems.push(`topic ${topic}: its replicas ${this.replicas.get(topic)} order its events differently`);
          return problems.length ? problems.join('; ') : null;
        },
      })),
    ];
  }

  /** Every view that is not what the oracle says, as sentences (none: all agree). */
  async divergence(nodes) {
    const found = await mapLimit(this.views(nodes), 16, (v) => v.check());
    return found.filter(Boolean);
  }
}

/**
 * Polls every replica's view of every object (`Workload.views`) until
 * each is what the oracle says, re-reading only those that were not: once
 * no more writes come, a view that holds every acknowledged write and
 * nothing else stays so (a final `divergence` checks that it did).
 * Returns `ms`, when the last view was first seen right, and `lastWrongMs`,
 * when a view was last seen wrong (convergence lies between), `byKind`
 * (`ms` per kind: counter, set, kv, book, topic), the polls and the views
 * read. Fails after `timeoutMs` with every view still wrong. With `trace`,
 * prints the views each poll found wrong.
 */
export async function converge(work, nodes, timeoutMs, what, { trace = false } = {}) {
  const started = Date.now();
  let pending = work.views(nodes);
  const total = pending.length;
  let polls = 0;
  let reads = 0;
  let ms = 0;
  let lastWrongMs = 0;
  const byKind = {};
  let wrong = [];
  while (pending.length > 0 && Date.now() - started < timeoutMs) {
    polls += 1;
    reads += pending.length;
    const found = await mapLimit(pending, 16, async (v) => {
      const problem = await v.check();
      const at = Date.now() - started;
      if (problem) lastWrongMs = Math.max(lastWrongMs, at);
      else {
        ms = Math.max(ms, at);
        const kind = v.id.split(' ')[0];
        byKind[kind] = Math.max(byKind[kind] ?? 0, at);
      }
      return problem;
    });
    wrong = found.filter(Boolean);
    pending = pending.filter((_, i) => found[i]);
    if (trace) console.log(`  poll ${polls} at ${Date.now() - started} ms: ${wrong.length} wrong${wrong.length ? `\n    ${wrong.slice(0, 12).join('\n    ')}` : ''}`);
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 100));
  }
  if (pending.length > 0) {
    throw new Error(`${what}: ${pending.length} of ${total} views still differ after ${timeoutMs} ms:\n  ${wrong.slice(0, 40).join('\n  ')}`);
  }
  return { ms, lastWrongMs, byKind, polls, reads, views: total };
}

/** Each node's traffic counters: frames and bytes sent, rows repaired. */
export async function gossipStats(cluster, nodes) {
  const views = await mapLimit(nodes, 8, (n) => cluster.nodeView(n));
  const per = Object.fromEntries(views.map((v) => [v.node, { frames: v.sent.frames, bytes: v.sent.bytes, repaired: v.repaired_rows }]));
  const sum = (k) => Object.values(per).reduce((a, s) => a + s[k], 0);
  return { per, frames: sum('frames'), bytes: sum('bytes'), repaired: sum('repaired') };
}

/** `after` minus `before`, node by node and in total. */
export function statsSince(before, after) {
  const per = Object.fromEntries(Object.entries(after.per).map(([n, s]) => {
    const b = before.per[n] ?? { frames: 0, bytes: 0, repaired: 0 };
    return [n, { frames: s.frames - b.frames, bytes: s.bytes - b.bytes, repaired: s.repaired - b.repaired }];
  }));
  return { per, frames: after.frames - before.frames, bytes: after.bytes - before.bytes, repaired: after.repaired - before.repaired };
}

// What a cluster must hold, from the writes it acknowledged: one record per
// kind, each fed with a write's request and its 2xx reply, each answering
// what a replica's view should be. Only acknowledged writes count; a test
// that sees another status fails before it records anything.

/** Counters: the sum of the acknowledged steps of each name. */
export class CounterOracle {
  constructor() { this.sums = new Map(); this.acked = 0; }

  increment(name, by) {
    this.sums.set(name, (this.sums.get(name) ?? 0) + by);
    this.acked += 1;
  }

  /** `[name, value]` for every counter written. */
  expected() { return [...this.sums]; }
}

/**
 * LWW sets: per element the latest acknowledged add and remove stamps (the
 * `stamp` of each insert's and delete's reply); an element is a member when
 * its add is later, or as late and the set is add-wins.
 */
export class SetOracle {
  constructor() { this.sets = new Map(); this.acked = 0; }

  create(name, bias) { this.#set(name).bias = bias; }

  /** `op` is `insert` or `delete`; `stamp` the reply's. */
  record(name, op, elements, stamp) {
    if (typeof stamp !== 'number' || !(stamp > 0)) throw new Error(`set ${name} ${op}: no stamp in the reply (${stamp})`);
    const set = this.#set(name);
    const at = op === 'insert' ? set.adds : set.removes;
    for (const e of elements) at.set(e, Math.max(at.get(e) ?? 0, stamp));
    this.acked += 1;
  }

  /** `[name, members]`, members sorted as strings. */
  expected() {
    return [...this.sets].map(([name, { bias, adds, removes }]) => {
      const members = [...adds].filter(([e, add]) => {
        const remove = removes.get(e) ?? 0;
        return add > remove || (add === remove && bias === 'add-wins');
      }).map(([e]) => e);
      return [name, members.sort()];
    });
  }

  #set(name) {
    if (!this.sets.has(name)) this.sets.set(name, { bias: 'add-wins', adds: new Map(), removes: new Map() });
    return this.sets.get(name);
  }
}

/**
 * Key-value registers, as causal chains: each writer of a key sends back
 * the context of its own previous reply, so its last write (a value, or a
 * delete) replaces all of its earlier ones. Writers that never saw each
 * other's writes (the two sides of a partition, from one shared context)
 * leave one sibling each: the key ends with the last value of every chain
 * whose last write was a put.
 */
export class KvOracle {
  constructor() { this.keys = new Map(); this.acked = { put: 0, delete: 0 }; }

  /** The context `chain` of `key` writes with next (undefined: none yet). */
  context(key, chain) { return this.keys.get(key)?.get(chain)?.context; }

  /** An acknowledged put (`value`) or delete (`value` null) of `chain`, and its reply's context. */
  record(key, chain, value, context) {
    const c = this.#chain(key, chain);
    c.last = value;
    c.wrote = true;
    c.context = context;
    this.acked[value === null ? 'delete' : 'put'] += 1;
  }

  /**
   * Chains `into` go on from what `from` has written: one shared history.
   * Its value stays until one of them writes (their contexts cover it).
   */
  fork(key, from, into) {
    const source = this.#chain(key, from);
    source.forks = into;
    for (const name of into) Object.assign(this.#chain(key, name), { context: source.context, last: null, wrote: false });
  }

  /** `[key, values]`, the sibling values sorted. */
  expected() {
    return [...this.keys].map(([key, chains]) => {
      const written = (c) => c.wrote || (c.forks ?? []).some((f) => written(chains.get(f)));
      const live = [...chains.values()].filter((c) => c.last !== null
        && !(c.forks ?? []).some((f) => written(chains.get(f))));
      return [key, live.map((c) => c.last).sort()];
    });
  }

  #chain(key, chain) {
    if (!this.keys.has(key)) this.keys.set(key, new Map());
    const chains = this.keys.get(key);
    if (!chains.has(chain)) chains.set(chain, { context: undefined, last: null, wrote: false });
    return chains.get(chain);
  }
}

/** A contact stamp's order: time, then counter, then client id. */
const stampKey = (t) => {
  const [ms, counter, client] = t.split('-');
  return [Number(ms), parseInt(counter, 16), client];
};
const later = (a, b) => {
  const [x, y] = [stampKey(a), stampKey(b)];
  for (let i = 0; i < 3; i += 1) if (x[i] !== y[i]) return x[i] > y[i];
  return false;
};

export const CONTACT_COLUMNS = ['name', 'phone', 'email', 'tombstone'];

/**
 * Address books: per contact and column the acknowledged delta with the
 * latest stamp. A contact is listed unless its latest `tombstone` is true.
 */
export class ContactsOracle {
  constructor() { this.books = new Map(); this.acked = 0; }

  /** One acknowledged push: its deltas. */
  record(book, deltas) {
    if (!this.books.has(book)) this.books.set(book, new Map());
    const contacts = this.books.get(book);
    for (const d of deltas) {
      if (!contacts.has(d.id)) contacts.set(d.id, {});
      const c = contacts.get(d.id);
      if (!c[d.column] || later(d.timestamp, c[d.column].timestamp)) c[d.column] = { value: d.value, timestamp: d.timestamp };
    }
    this.acked += 1;
  }

  /** `[book, contacts]`: the live ones by id, as the listing shows them. */
  expected() {
    return [...this.books].map(([book, contacts]) => [book, [...contacts]
      .filter(([, c]) => c.tombstone?.value !== true)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, c]) => {
        const row = { id };
        for (const col of CONTACT_COLUMNS) {
          row[col] = c[col]?.value ?? (col === 'tombstone' ? false : null);
          row[`${col}_ts`] = c[col]?.timestamp ?? null;
        }
        return row;
      })]);
  }
}

/** Event streams: the id of every acknowledged append, per topic. */
export class StreamOracle {
  constructor() { this.topics = new Map(); this.acked = 0; }

  record(topic, cid) {
    if (!this.topics.has(topic)) this.topics.set(topic, new Set());
    this.topics.get(topic).add(cid);
    this.acked += 1;
  }

  /** `[topic, ids]`, sorted. */
  expected() { return [...this.topics].map(([t, ids]) => [t, [...ids].sort()]); }
}

/** One oracle per kind. */
export class Oracle {
  constructor() {
    this.counters = new CounterOracle();
    this.sets = new SetOracle();
    this.kv = new KvOracle();
    this.contacts = new ContactsOracle();
    this.streams = new StreamOracle();
  }

  /** Writes acknowledged, per kind. */
  acked() {
    return {
      counter: this.counters.acked,
      set: this.sets.acked,
      kv: this.kv.acked.put + this.kv.acked.delete,
      contacts: this.contacts.acked,
      stream: this.streams.acked,
    };
  }
}

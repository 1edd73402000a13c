// The figures of scripts/bench-contacts.sh, against a running cluster
// (BENCH_BASE, with BENCH_BASELINE on).
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomUUID } from 'node:crypto';

const BASE = process.env.BENCH_BASE ?? 'http://127.0.0.1:8787';
const CONTACTS = 1_000;
const EDITS = 50_000;
const ROUND_S = 8;
const PUSHERS = 16;
const BATCH = 10;
const say = (m) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`);

let clientNo = 0;
/** A client: its id, clock and sequence. */
function client() {
  clientNo += 1;
  const id = `00000001${(0x1000 + clientNo).toString(16).padStart(8, '0')}`;
  let seq = 0;
  let last = 0;
  let counter = 0;
  return {
    id,
    delta(contact, column, value) {
      const now = Date.now();
      counter = now <= last ? counter + 1 : 0;
      last = Math.max(now, last);
      seq += 1;
      return { id: contact, column, value, timestamp: `${last}-${counter.toString(16).padStart(4, '0')}-${id}`, seq };
    },
  };
}

async function post(path, body) {
  const res = await fetch(BASE + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** 1. A book of 1 000 contacts and 50 000 edits; a newcomer's download. */
async function newcomer() {
  const book = `history-${Date.now()}`;
  const ids = Array.from({ length: CONTACTS }, () => randomUUID());
  const c = client();
  let replayBytes = 0;
  const t0 = Date.now();
  for (let done = 0; done < EDITS; done += 100) {
    const deltas = Array.from({ length: 100 }, (_, i) => {
      const n = done + i;
      return c.delta(ids[n % CONTACTS], ['name', 'phone', 'email'][n % 3], `v${n}`);
    });
    for (const d of deltas) {
      const { seq, ...change } = d;
      replayBytes += JSON.stringify(change).length + 1;
    }
    await post(`/api/contacts/${book}/push?node=node-0`, { client: c.id, deltas });
    if (done % 10_000 === 0) say(`history: ${done} of ${EDITS} edits pushed`);
  }
  say(`history: ${EDITS} edits over ${CONTACTS} contacts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Every node has the book before the newcomer pulls (at node-2).
  let bytes = 0;
  let pages = 0;
  let changes = 0;
  let cursor = '';
  for (;;) {
    const res = await fetch(`${BASE}/api/contacts/${book}/changes?node=node-2&limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    const text = await res.text();
    bytes += text.length;
    pages += 1;
    const page = JSON.parse(text);
    changes += page.changes.length;
    cursor = page.cursor;
    if (!page.more) break;
  }
  return { replayBytes, bytes, pages, changes, ratio: bytes / replayBytes };
}

/** Pushes for `seconds` from PUSHERS concurrent clients; deltas/s. */
async function pushRate(path, seconds) {
  const end = Date.now() + seconds * 1000;
  let deltas = 0;
  let failed = 0;
  const book = `rate-${Date.now()}`;
  await Promise.all(Array.from({ length: PUSHERS }, async () => {
    const c = client();
    const id = randomUUID();
    while (Date.now() < end) {
      const batch = Array.from({ length: BATCH }, (_, i) => c.delta(id, 'name', `n${i}`));
      try {
        await post(path.replace('BOOK', book), { client: c.id, deltas: batch });
        deltas += BATCH;
      } catch {
        failed += 1;
      }
    }
  }));
  return { perSecond: deltas / seconds, failed };
}

/** 3. Push at node-0, wait for the change on node-1's SSE. */
async function sseLatency(runs = 10) {
  const book = `live-${Date.now()}`;
  const c = client();
  const ctrl = new AbortController();
  const res = await fetch(`${BASE}/api/contacts/${book}/events?node=node-1`, { signal: ctrl.signal });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const waitFor = async (needle) => {
    while (!text.includes(needle)) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended');
      text += decoder.decode(value, { stream: true });
    }
  };
  await waitFor('data:');
  const delays = [];
  for (let i = 0; i < runs; i += 1) {
    const marker = `m${i}-${randomUUID()}`;
    const t0 = performance.now();
    await post(`/api/contacts/${book}/push?node=node-0`, { client: c.id, deltas: [c.delta(randomUUID(), 'name', marker)] });
    await waitFor(marker);
    delays.push(performance.now() - t0);
  }
  ctrl.abort();
  delays.sort((a, b) => a - b);
  return { median: delays[Math.floor(delays.length / 2)], max: delays.at(-1), runs: delays.map((d) => Math.round(d)) };
}

say(`1. a book of ${CONTACTS} contacts and ${EDITS} edits, then a newcomer pulls at another node`);
const fresh = await newcomer();
say(`newcomer: ${fresh.bytes} bytes in ${fresh.pages} pages (${fresh.changes} changes) against ${fresh.replayBytes} bytes of the whole log: ratio ${fresh.ratio.toFixed(3)}`);

say(`2. pushed deltas/s: ${PUSHERS} clients, ${BATCH} deltas a push, ${ROUND_S} s rounds, alternating`);
const rounds = { cluster: [], naive: [] };
for (let r = 0; r < 2; r += 1) {
  for (const [name, path] of [['naive', '/bench/naive/push'], ['cluster', '/api/contacts/BOOK/push']]) {
    const got = await pushRate(path, ROUND_S);
    rounds[name].push(got.perSecond);
    say(`${name} round ${r + 1}: ${got.perSecond.toFixed(0)} deltas/s (${got.failed} failed pushes)`);
  }
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const rate = { cluster: mean(rounds.cluster), naive: mean(rounds.naive) };
rate.ratio = rate.cluster / rate.naive;
say(`push rate: cluster ${rate.cluster.toFixed(0)}, naive ${rate.naive.toFixed(0)} deltas/s: ratio ${rate.ratio.toFixed(2)}`);

say('3. a push at node-0 until the change shows on node-1\'s SSE');
const live = await sseLatency();
say(`push to SSE: median ${live.median.toFixed(0)} ms, max ${live.max.toFixed(0)} ms (runs: ${live.runs.join(', ')})`);

const out = process.env.BENCH_OUT;
if (out) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), newcomer: fresh, rate, rounds, live }, null, 2));
  say(`JSON: ${out}`);
}

// The figures of scripts/bench-streams.sh against a running cluster
// (BENCH_BASE, with BENCH_BASELINE on).
import { writeFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomUUID } from 'node:crypto';

const BASE = process.env.BENCH_BASE ?? 'http://127.0.0.1:8787';
const ROUND_S = 8;
const APPENDERS = 16;
const say = (m) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`);

async function request(method, path, body) {
  const init = { method, headers: { 'content-type': 'application/json' } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(BASE + path, init);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Appends for `seconds` from APPENDERS concurrent clients; events/s. */
async function appendRate(naive, seconds) {
  const end = Date.now() + seconds * 1000;
  let events = 0;
  let failed = 0;
  const topic = `rate-${Date.now()}`;
  await Promise.all(Array.from({ length: APPENDERS }, async (_, w) => {
    for (let i = 0; Date.now() < end; i += 1) {
      const message = `worker ${w} event ${i}`;
      try {
        if (naive) await request('POST', '/bench/naive/push', { deltas: [{ message }] });
        else await request('POST', `/api/streams/${topic}/events`, { message });
        events += 1;
      } catch {
        failed += 1;
      }
    }
  }));
  return { perSecond: events / seconds, failed };
}

/** Two replicas of a fresh topic: the one appends land on, and another. */
async function twoReplicas(topic) {
  const first = (await request('POST', `/api/streams/${topic}/events?node=node-0`, { message: 'start' })).node;
  for (const n of ['node-0', 'node-1', 'node-2', 'node-3']) {
    const at = (await request('GET', `/api/streams/${topic}/heads?node=${n}`)).node;
    if (at === n && n !== first) return [first, n];
  }
  throw new Error('no second replica');
}

/** Append at one replica, wait for the event on another replica's /live. */
async function sseLatency(runs = 10) {
  const topic = `live-${Date.now()}`;
  const [writer, reader] = await twoReplicas(topic);
  const ctrl = new AbortController();
  const res = await fetch(`${BASE}/api/streams/${topic}/live?node=${reader}`, { signal: ctrl.signal });
  const body = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const waitFor = async (needle) => {
    while (!text.includes(needle)) {
      const { value, done } = await body.read();
      if (done) throw new Error('the stream ended');
      text += decoder.decode(value, { stream: true });
    }
  };
  await waitFor('data:');
  const delays = [];
  for (let i = 0; i < runs; i += 1) {
    const t0 = performance.now();
    const { cid } = await request('POST', `/api/streams/${topic}/events?node=${writer}`, { message: `m${i}-${randomUUID()}` });
    await waitFor(cid);
    delays.push(performance.now() - t0);
  }
  ctrl.abort();
  delays.sort((a, b) => a - b);
  return { writer, reader, median: delays[Math.floor(delays.length / 2)], max: delays.at(-1), runs: delays.map((d) => Math.round(d)) };
}

const catchup = process.env.BENCH_CATCHUP && existsSync(process.env.BENCH_CATCHUP)
  ? readFileSync(process.env.BENCH_CATCHUP, 'utf8').trim() : null;

say(`1. appended events/s: ${APPENDERS} clients, one event a request, ${ROUND_S} s rounds, alternating`);
const rounds = { cluster: [], naive: [] };
for (let r = 0; r < 2; r += 1) {
  for (const naive of [true, false]) {
    const name = naive ? 'naive' : 'cluster';
    const got = await appendRate(naive, ROUND_S);
    rounds[name].push(got.perSecond);
    say(`${name} round ${r + 1}: ${got.perSecond.toFixed(0)} events/s (${got.failed} failed)`);
  }
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const rate = { cluster: mean(rounds.cluster), naive: mean(rounds.naive) };
rate.ratio = rate.cluster / rate.naive;
say(`append rate: cluster ${rate.cluster.toFixed(0)}, naive ${rate.naive.toFixed(0)} events/s: ratio ${rate.ratio.toFixed(2)}`);

say('2. an append at one replica until the event shows on another replica\'s /live');
const live = await sseLatency();
say(`append to SSE (${live.writer} → ${live.reader}): median ${live.median.toFixed(0)} ms, max ${live.max.toFixed(0)} ms (runs: ${live.runs.join(', ')})`);

const out = process.env.BENCH_OUT;
if (out) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), catchup, rate, rounds, live }, null, 2));
  say(`JSON: ${out}`);
}

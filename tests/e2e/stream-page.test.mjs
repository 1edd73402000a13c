// The event-stream page in headless Chromium contexts (each with its own
// localStorage): two browsers on two nodes post, and both list the same
// events in the same order; a reload lists them at once from localStorage
// and syncs again; a tampered event on /live is refused and never listed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, launchChromium, sleep } from './harness.mjs';

const cluster = new Cluster({ HEARTBEAT_INTERVAL_MS: '1000' });
const uid = Date.now().toString(36);
let browser;

before(async () => {
  await cluster.start();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await cluster.destroy();
});

/** What a page shows: the events' ids and messages in order, the status, the refused events. */
const shown = (page) => page.evaluate(() => ({
  cids: [...document.querySelectorAll('#events li')].map((li) => li.dataset.cid),
  messages: [...document.querySelectorAll('#events li .message')].map((m) => m.textContent),
  status: document.querySelector('#status')?.dataset.state,
  refused: Number(document.querySelector('#refused')?.dataset.count ?? NaN),
  reasons: [...document.querySelectorAll('#reasons li')].map((li) => li.textContent),
  error: document.querySelector('#message')?.textContent ?? '',
}));

async function waitFor(page, predicate, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await shown(page);
    if (predicate(last)) return last;
    await sleep(50);
  }
  throw new Error(`page never showed ${what}: ${JSON.stringify(last)}`);
}

async function open(context, topic, node, synced = true) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'warning') errors.push(m.text()); });
  await page.goto(`${cluster.url}/stream.html?topic=${encodeURIComponent(topic)}&node=${node}`);
  if (synced) await waitFor(page, (s) => s.status === 'synced', 'synced');
  return { page, errors };
}

/** Posts `message` through the page's form and waits for the form to clear. */
async function post(page, message) {
  await page.fill('#post input[name="message"]', message);
  await page.click('#post button');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { value, error } = await page.evaluate(() => ({
      value: document.querySelector('#post input[name="message"]').value,
      error: document.querySelector('#message').textContent,
    }));
    assert.equal(error, '', `posting ${message}`);
    if (value === '') return;
    await sleep(50);
  }
  throw new Error(`posting ${message} never finished`);
}

/** Polls both pages until they list `n` events, the same ones in the same order. */
async function same(a, b, n, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let seen;
  while (Date.now() < deadline) {
    seen = await Promise.all([shown(a), shown(b)]);
    const [x, y] = seen;
    if (x.cids.length === n && x.cids.join() === y.cids.join()) return x;
    await sleep(100);
  }
  throw new Error(`${what}: ${JSON.stringify(seen.map((s) => s.messages))}`);
}

/**
 * The `{cid, block}` entries of a replica's log of `topic` (every page): the
 * one `?node=` reaches (a node that does not replicate the topic passes the
 * request to one that does), then pinned to it.
 */
async function log(topic, node) {
  const entries = [];
  let at = node;
  for (let after = 0, more = true; more;) {
    const res = await cluster.request('GET', `/api/streams/${topic}/log?after=${after}&limit=100&node=${at}`);
    assert.equal(res.status, 200, JSON.stringify(res.data));
    if (after === 0) at = res.data.node;
    assert.equal(res.data.node, at, 'a log read stays at its replica');
    entries.push(...res.data.entries);
    more = res.data.more && res.data.entries.length > 0;
    after = res.data.entries.at(-1)?.seq ?? after;
  }
  return entries;
}

test('two browsers on two nodes list the same events in the same order, also after a reload', async () => {
  const topic = `chat-${uid}`;
  const [ca, cb] = [await browser.newContext(), await browser.newContext()];
  const a = await open(ca, topic, 'node-0');
  const b = await open(cb, topic, 'node-3');

  for (let i = 0; i < 3; i += 1) {
    await Promise.all([post(a.page, `a${i}`), post(b.page, `b${i}`)]);
  }
  const both = await same(a.page, b.page, 6, 'both pages list the six events');
  assert.deepEqual([...both.messages].sort(), ['a0', 'a1', 'a2', 'b0', 'b1', 'b2']);
  const held = await cluster.until(async () => {
    const cids = (await log(topic, 'node-0')).map((e) => e.cid).sort();
    return cids.length === 6 && cids;
  }, 'the replica that node-0 reaches logs the six events');
  assert.deepEqual([...both.cids].sort(), held);

  // Reload A with the API unreachable: the events come back from localStorage at once.
  await a.page.route('**/api/**', (route) => route.abort());
  await a.page.reload();
  const reloaded = await waitFor(a.page, (s) => s.cids.length === 6, 'the events after a reload', 5_000);
  assert.deepEqual(reloaded.cids, both.cids);
  assert.notEqual(reloaded.status, 'synced');
  await a.page.unroute('**/api/**');
  await waitFor(a.page, (s) => s.status === 'synced', 'synced again after the reload');

  await post(b.page, 'b-after');
  await post(a.page, 'a-after');
  const after8 = await same(a.page, b.page, 8, 'both pages list the new events too');
  assert.ok(after8.messages.includes('a-after') && after8.messages.includes('b-after'));
  for (const p of [a.page, b.page]) assert.equal((await shown(p)).status, 'synced');
  assert.deepEqual([...a.errors, ...b.errors], []);
  await ca.close();
  await cb.close();
});

test('a tampered event on /live is refused and never listed', async () => {
  // Two topics of the same length: one byte turns a block of `source` into one of `topic`.
  const [topic, source] = [`tamper-${uid}a`, `tamper-${uid}b`];
  const posted = await cluster.request('POST', `/api/streams/${source}/events`, { body: { message: 'hello' } });
  assert.equal(posted.status, 200, JSON.stringify(posted.data));
  const real = await cluster.request('POST', `/api/streams/${topic}/events`, { body: { message: 'real' } });
  assert.equal(real.status, 200, JSON.stringify(real.data));
  const original = (await log(source, posted.data.node)).find((e) => e.cid === posted.data.cid);
  assert.ok(original, 'the source event is in its node\'s log');
  const block = Buffer.from(original.block, 'base64');
  const at = block.indexOf(Buffer.from(source));
  assert.ok(at >= 0, 'the block holds its topic');
  block[at + source.length - 1] = 'a'.charCodeAt(0);
  const tampered = { cid: original.cid, block: block.toString('base64') };
  const genuine = await log(topic, real.data.node);
  assert.deepEqual(genuine.map((e) => e.cid), [real.data.cid]);

  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const live = `/api/streams/${topic}/live`;
  await page.route((url) => url.pathname === live, (route) => route.fulfill({
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' },
    body: `retry: 60000\n: heartbeat\n\ndata: ${JSON.stringify([tampered, ...genuine.map(({ cid, block: b }) => ({ cid, block: b }))])}\n\n`,
  }));
  await page.goto(`${cluster.url}/stream.html?topic=${encodeURIComponent(topic)}&node=${real.data.node}`);
  const seen = await waitFor(page, (s) => s.refused === 1 && s.cids.includes(real.data.cid), 'one refused event');
  assert.deepEqual(seen.cids, [real.data.cid]);
  assert.equal(seen.reasons.length, 1);
  assert.ok(seen.reasons[0].startsWith(`${tampered.cid}: `), seen.reasons[0]);
  assert.match(seen.reasons[0], /hash/);

  await sleep(1_500);
  const later = await shown(page);
  assert.equal(later.refused, 1);
  assert.ok(!later.cids.includes(tampered.cid), 'the tampered event is never listed');
  const saved = await page.evaluate((key) => localStorage.getItem(key) ?? '', `edge-crdt/stream/${topic}`);
  assert.ok(saved.includes(real.data.cid) && !saved.includes(tampered.cid), 'only the genuine event is saved');
  assert.deepEqual(errors, []);
  await context.close();
});

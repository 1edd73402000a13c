// The address-book page in two headless Chromium contexts (two browsers,
// each with its own localStorage): both edit while offline, a reload keeps
// the pending outbox, and once online both converge to the same list,
// read from the pages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, launchChromium, sleep } from './harness.mjs';

const cluster = new Cluster({ HEARTBEAT_INTERVAL_MS: '1000' });
let browser;

before(async () => {
  await cluster.start();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await cluster.destroy();
});

/** What a page shows: the names listed, the pending count, the status. */
const shown = (page) => page.evaluate(() => ({
  names: [...document.querySelectorAll('#rows input[name="name"]')].map((i) => i.value).sort(),
  pending: Number(document.querySelector('#pending')?.dataset.count ?? NaN),
  status: document.querySelector('#status')?.dataset.state,
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

async function open(context, node) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'warning') errors.push(m.text()); });
  await page.goto(`${cluster.url}/contacts.html?book=two&node=${node}`);
  await waitFor(page, (s) => s.status === 'synced', 'synced');
  return { page, errors };
}

async function add(page, name, phone) {
  await page.fill('#add input[name="name"]', name);
  await page.fill('#add input[name="phone"]', phone);
  await page.click('#add button');
}

test('two browsers edit offline, keep their outboxes across a reload, and converge', async () => {
  const [ca, cb] = [await browser.newContext(), await browser.newContext()];
  const a = await open(ca, 'node-0');
  const b = await open(cb, 'node-3');

  await Promise.all([ca.setOffline(true), cb.setOffline(true)]);
  await waitFor(a.page, (s) => s.status === 'offline', 'offline');
  await add(a.page, 'Alice', '555-0101');
  await add(b.page, 'Bob', '555-0102');
  await add(b.page, 'Carol', '555-0103');
  await waitFor(a.page, (s) => s.pending === 2 && s.names.join() === 'Alice', 'Alice pending');
  await waitFor(b.page, (s) => s.pending === 4 && s.names.join() === 'Bob,Carol', 'Bob and Carol pending');

  // Reload A with the API still unreachable: the outbox comes back from localStorage.
  await a.page.route('**/api/**', (route) => route.abort());
  await ca.setOffline(false);
  await a.page.reload();
  await waitFor(a.page, (s) => s.pending === 2 && s.names.join() === 'Alice', 'the outbox after a reload');
  await a.page.unroute('**/api/**');

  // B deletes Carol while still offline; then both are online again.
  await b.page.evaluate(() => [...document.querySelectorAll('#rows tr')]
    .find((tr) => tr.querySelector('input[name="name"]').value === 'Carol')
    .querySelector('button').click());
  await waitFor(b.page, (s) => s.names.join() === 'Bob' && s.pending === 5, 'Carol deleted offline');
  await cb.setOffline(false);
  await a.page.evaluate(() => dispatchEvent(new Event('online')));

  for (const p of [a.page, b.page]) {
    await waitFor(p, (s) => s.names.join() === 'Alice,Bob' && s.pending === 0, 'the same list on both', 30_000);
  }
  const server = await cluster.request('GET', '/api/contacts/two?node=node-1');
  assert.deepEqual(server.data.contacts.map((c) => c.name).sort(), ['Alice', 'Bob']);
  assert.deepEqual([...a.errors, ...b.errors], []);
  await ca.close();
  await cb.close();
});

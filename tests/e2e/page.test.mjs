// The live counter page in headless Chromium (Debian's, driven by
// playwright-core): it counts a visit, follows the count live over SSE,
// and never shows a lower number, also after a reload served by a node
// that has not heard of recent visits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, NODES, launchChromium, sleep } from './harness.mjs';

const cluster = new Cluster();
let browser;
const profile = mkdtempSync(join(tmpdir(), 'edge-crdt-chromium-'));

before(async () => {
  await cluster.start();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await cluster.destroy();
  rmSync(profile, { recursive: true, force: true });
});

async function waitFor(page, predicate, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await page.evaluate(() => {
      const el = document.querySelector('#count');
      return { value: Number(el?.dataset.value ?? NaN), status: document.querySelector('#status')?.dataset.state };
    });
    if (predicate(v)) return v;
    await sleep(50);
  }
  throw new Error(`page never showed ${what}`);
}

test('the page counts a visit, follows the count live, and never goes down', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const shown = [];
  await page.exposeFunction('__shown', (v) => shown.push(v));
  await page.addInitScript(() => {
    let last;
    setInterval(() => {
      const v = document.querySelector('#count')?.dataset.value;
      if (v !== undefined && v !== '' && v !== last) {
        last = v;
        window.__shown(Number(v));
      }
    }, 5);
  });

  // Some history from other visitors first.
  for (const node of NODES) assert.equal((await cluster.increment('page', 2, node)).status, 200);
  await cluster.converged('page', NODES, 8);

  await page.goto(`${cluster.url}/?counter=page&node=node-0`);
  await waitFor(page, (v) => v.value === 9 && v.status === 'live', 'its own visit, live');

  // Others visit through other nodes: the page rises live, over SSE.
  for (const node of ['node-1', 'node-2', 'node-3']) {
    assert.equal((await cluster.increment('page', 5, node)).status, 200);
  }
  await waitFor(page, (v) => v.value === 24, 'the live count 24');

  // node-3 is cut off and misses the next visits; reload the page on it.
  const cut = await cluster.admin('PUT', '/partition', { groups: [['node-0', 'node-1', 'node-2'], ['node-3']] });
  assert.equal(cut.status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await cluster.increment('page', 10, 'node-1')).status, 200);
  await waitFor(page, (v) => v.value === 54, 'the count 54 before the reload');
  const stale = (await cluster.read('page', 'node-3')).data.value;
  assert.equal(stale, 24, 'node-3 has not heard of the last visits');

  await page.goto(`${cluster.url}/?counter=page&node=node-3`);
  await waitFor(page, (v) => v.value === 55 && v.status === 'live', 'the stored count plus the new visit');
  const stillStale = (await cluster.read('page', 'node-3')).data.value;
  assert.equal(stillStale, 25, 'node-3 alone would have shown 25');

  // Heal: node-3 catches up, and the page stays at the exact total.
  assert.equal((await cluster.admin('DELETE', '/partition')).status, 200);
  await cluster.converged('page', NODES, 55);
  await sleep(500);
  await waitFor(page, (v) => v.value === 55, 'the healed total');

  for (let i = 1; i < shown.length; i++) {
    assert.ok(shown[i] >= shown[i - 1], `the number went down: ${shown.join(' → ')}`);
  }
  assert.ok(shown.includes(24) && shown.at(-1) === 55, `shown: ${shown.join(' → ')}`);
  assert.deepEqual(errors, []);
  await page.screenshot({ path: join(tmpdir(), 'edge-crdt-page.png') });
  await context.close();
});

// The cluster dashboard (www/cluster.html) in headless Chromium: a wrong
// token is refused; with the admin token it follows /admin/live and shows
// every node; a partition made from the page shows (its groups, no gossip
// across the cut), then heals; a node added from the page appears.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, NODES, launchChromium, sleep } from './harness.mjs';

const cluster = new Cluster();
let browser;
let page;
const errors = [];

before(async () => {
  await cluster.start();
  browser = await launchChromium();
  page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
});
after(async () => {
  await browser?.close();
  await cluster.destroy();
});

/** Polls `read` in the page until `ok` holds for what it returns. */
async function until(read, ok, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await page.evaluate(read);
    if (ok(last)) return last;
    await sleep(100);
  }
  throw new Error(`the page never showed ${what}; last: ${JSON.stringify(last)}`);
}

const nodes = () => [...document.querySelectorAll('#nodes tbody tr')].map((r) => [r.dataset.node, r.cells[1].textContent]);
const status = () => ({ state: document.querySelector('#status').dataset.state, text: document.querySelector('#status').textContent });
const matrix = () => [...document.querySelectorAll('#matrix td[data-pair]')].map((c) => [c.dataset.pair, c.className, Number(c.textContent)]);

async function login(token) {
  await page.fill('#token', token);
  await page.click('#login button');
}

test('a wrong token is refused, and the admin token shows every node live', async () => {
  await page.goto(`${cluster.url}/cluster.html`);
  await login('not-the-token');
  await until(status, (s) => s.state === 'error' && /401/.test(s.text), 'a 401 for a wrong token');
  await login(cluster.token);
  await until(status, (s) => s.state === 'live', 'the live status');
  const shown = await until(nodes, (n) => n.length === 4 && n.every(([, s]) => s === 'active'), 'four active nodes');
  assert.deepEqual(shown.map(([n]) => n), NODES);
});

test('a partition made from the page shows, with no gossip across it, then heals', async () => {
  await page.fill('#groups', 'node-0 node-1 | node-2 node-3');
  await page.click('#cut button');
  const groups = () => document.querySelector('#partition').dataset.groups;
  await until(groups, (g) => g === 'node-0 node-1 | node-2 node-3', 'the partition');
  for (let i = 0; i < 6; i += 1) await cluster.increment('dash', undefined, NODES[i % 4]);
  const cut = await until(matrix, (m) => {
    const across = m.filter(([, c]) => c === 'cut');
    const within = m.filter(([pair, c]) => c !== 'cut' && pair.split('>')[0] !== pair.split('>')[1]);
    return across.length === 8 && across.every(([, , v]) => v === 0) && within.some(([, , v]) => v > 0);
  }, 'gossip within the groups and none across the cut');
  assert.equal(cut.filter(([, c]) => c === 'cut').length, 8, 'eight pairs cross the cut');
  await page.click('#heal');
  await until(groups, (g) => g === '', 'the partition healed');
  await until(matrix, (m) => m.every(([, c]) => c !== 'cut'), 'no pair marked cut');
  await cluster.converged('dash', NODES, 6);
});

test('a node added from the page appears', async () => {
  await page.click('#add');
  await until(nodes, (n) => n.length === 5 && n.some(([id, s]) => id === 'node-4' && s === 'active'), 'node-4 active', 40_000);
  assert.match(await page.textContent('#message'), /add a node: done/);
  assert.deepEqual(errors, [], 'no page errors');
});

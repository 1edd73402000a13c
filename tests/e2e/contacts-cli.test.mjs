// The address books' command-line client (src/bin/contacts) in several
// processes for a bounded time against a cluster of their own, one of them
// killed with SIGKILL and restarted on its database; then each database
// must equal every node's book. scripts/test.sh builds the binary first
// (cargo build --release --features contacts-cli --bin contacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, ROOT, sleep } from './harness.mjs';

const BIN = join(ROOT, 'target', 'release', 'contacts');
const cluster = new Cluster();
const dir = mkdtempSync(join(tmpdir(), 'edge-crdt-contacts-'));
before(async () => { await cluster.start(); });
after(async () => {
  await cluster.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the client; `done` resolves with its exit and output. */
function start(args) {
  const proc = spawn(BIN, ['--url', cluster.url, '--book', 'cli', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 180_000);
    proc.once('error', (e) => { clearTimeout(timer); reject(e); });
    proc.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out: () => out }); });
  });
  return { proc, done, out: () => out };
}

test('clients generate offline and online, one is killed and restarted, and every database equals the server', { timeout: 300_000 }, async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: run cargo build --release --features contacts-cli --bin contacts`);
  const db = (i) => join(dir, `client-${i}.sqlite`);
  const clients = [0, 1, 2].map((i) => start(['--db', db(i), '--seconds', '6', '--seed', String(100 + i)]));
  await sleep(2_500);
  clients[1].proc.kill('SIGKILL');
  const killed = await clients[1].done;
  assert.equal(killed.signal, 'SIGKILL');
  const restarted = start(['--db', db(1), '--seconds', '3', '--seed', '201']);
  const runs = [await clients[0].done, await restarted.done, await clients[2].done];
  for (const r of runs) assert.equal(r.code, 0, r.out());
  assert.match(restarted.out(), /client [0-9a-f]{16} .* pending from before/, restarted.out());
  const sameClient = /client ([0-9a-f]{16})/;
  assert.equal(sameClient.exec(restarted.out())[1], sameClient.exec(killed.out())[1], 'the database keeps the client id');
  for (const i of [0, 1, 2]) {
    const check = await start(['--db', db(i), '--check', '--timeout', '60']).done;
    assert.equal(check.code, 0, check.out());
    assert.match(check.out(), /check passed: \d+ contacts, the same on 4 nodes/, check.out());
  }
  const edits = runs.map((r) => Number(/(\d+) edits in/.exec(r.out())?.[1] ?? 0));
  assert.ok(edits.every((n) => n > 0), `edits: ${edits}`);
});

// The chaos clients (src/bin/monkeys.rs) for a short bounded run against a
// cluster of their own: random writers, offline-then-online replicas and
// viewers at once; then every node and viewer must hold the set that the
// log of acknowledged operations implies. scripts/test.sh builds the binary
// first (cargo build --release --bin monkeys). MONKEYS_SEED replays a seed;
// MONKEYS_SECONDS makes the run longer. The cluster takes set writes only
// with WRITE_TOKEN and limits the others per address, as a deployment may:
// the writers send the token, so none is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, ROOT } from './harness.mjs';

const BIN = join(ROOT, 'target', 'release', 'monkeys');
const cluster = new Cluster({ WRITE_PROTECTED: 'sets', WRITE_RATE_LIMIT: 'on' });
before(async () => { await cluster.start(); });
after(async () => { await cluster.destroy(); });

/** Runs the binary to its end (or kills it after `limitMs`); all output. */
function run(args, env, limitMs) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { proc.kill('SIGKILL'); }, limitMs);
    proc.once('error', (e) => { clearTimeout(timer); reject(e); });
    proc.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
}

test('chaos clients: every node and viewer converges on the oracle of acknowledged operations', { timeout: 240_000 }, async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: run cargo build --release --bin monkeys`);
  const seconds = process.env.MONKEYS_SECONDS ?? '8';
  const args = ['--url', cluster.url, '--normal', '3', '--offline-online', '2', '--viewer', '2',
    '--seconds', seconds, '--bias', 'remove-wins', '--converge-timeout', '30'];
  if (process.env.MONKEYS_SEED) args.push('--seed', process.env.MONKEYS_SEED);
  // The tokens travel in the environment, as $SYNC_TOKEN and $WRITE_TOKEN.
  const env = { SYNC_TOKEN: cluster.syncToken, WRITE_TOKEN: cluster.writeToken };
  const { code, signal, out } = await run(args, env, (Number(seconds) + 120) * 1000);
  const report = `monkeys ${args.join(' ')}\n${out}`;
  assert.equal(signal, null, report);
  assert.equal(code, 0, report);
  assert.match(out, /^converged: yes/m, report);
  assert.match(out, /^summary: .*converged=yes .*viewers_ok=2\/2 mismatches=0$/m, report);
  assert.doesNotMatch(out, /MISMATCH/, report);
  const acked = Number(/^summary: acked=(\d+)/m.exec(out)[1]);
  const syncs = Number(/ syncs=(\d+)/.exec(out)[1]);
  assert.ok(acked > 0 && syncs > 0, report);
  // Past the 100 writes a client may make in 10 s without the token.
  assert.ok(acked > 100, `acked ${acked}: ${report}`);
  assert.match(out, / errors=0 /, report);
});

// The API contract: schemathesis runs openapi.yaml against `wrangler dev`
// (tests/contract/schemathesis.toml: a fixed seed, a bounded number of
// examples per operation, valid and bad inputs). No reply may be a 5xx;
// every status, content type, header and body must be as documented; bad
// input of any shape must get a 4xx. Prints how many inputs were tried,
// how many of them bad, and how many 5xx came back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, ROOT } from './harness.mjs';

const ST = join(ROOT, '.venv', 'bin', 'st');
const CONFIG = join(ROOT, 'tests', 'contract', 'schemathesis.toml');
// No valid peer frame comes of random bytes: that route only refuses.
const NEVER_2XX = new Set(['POST /admin/nodes/{id}/peer']);

const cluster = new Cluster();
const reports = mkdtempSync(join(tmpdir(), 'edge-crdt-contract-'));
before(async () => { await cluster.start(); });
after(async () => {
  await cluster.destroy();
  rmSync(reports, { recursive: true, force: true });
});

/** Runs `st` to its end: its exit code and output. */
function schemathesis(args, env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(ST, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d) => { output += d; });
    proc.stderr.on('data', (d) => { output += d; });
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, output }));
  });
}

/** Every test case of the run's NDJSON events: operation, mode and status. */
function cases(dir) {
  const file = readdirSync(dir).find((f) => f.endsWith('.ndjson'));
  const out = [];
  for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
    if (!line.includes('"ScenarioFinished"')) continue;
    const recorder = JSON.parse(line).ScenarioFinished.recorder;
    for (const [id, { value }] of Object.entries(recorder?.cases ?? {})) {
      const response = recorder.interactions[id]?.response;
      if (!response) continue;
      out.push({ operation: `${value.method} ${value.path}`, mode: value.meta?.generation?.mode, status: response.status_code });
    }
  }
  return out;
}

test('openapi.yaml holds against wrangler dev: no 5xx, replies as documented, bad input refused with a 4xx', { timeout: 400_000 }, async () => {
  assert.ok(existsSync(ST), `${ST} is missing: run scripts/setup.sh`);
  const started = Date.now();
  const { code, output } = await schemathesis(
    ['--config-file', CONFIG, 'run', 'openapi.yaml', '--url', cluster.url,
      '--report', 'json,ndjson', '--report-dir', reports, '--no-color'],
    { CONTRACT_ADMIN_TOKEN: cluster.token, CONTRACT_SYNC_TOKEN: cluster.syncToken, CONTRACT_WRITE_TOKEN: cluster.writeToken },
  );
  const seconds = Math.round((Date.now() - started) / 1000);
  const summary = output.slice(output.lastIndexOf('= SUMMARY ='));
  const json = readdirSync(reports).find((f) => f.endsWith('.json'));
  assert.ok(json, `no JSON report:\n${output.slice(-4000)}`);
  const report = JSON.parse(readFileSync(join(reports, json), 'utf8'));

  const all = cases(reports);
  const bad = all.filter((c) => c.mode === 'negative');
  const serverErrors = all.filter((c) => c.status >= 500);
  console.log(`contract: ${all.length} inputs tried, ${bad.length} of them bad, ${serverErrors.length} 5xx, `
    + `${report.operations.tested} operations, ${seconds} s (schemathesis ${report.schemathesis_version}, seed ${report.seed})`);

  const failures = output.slice(output.indexOf('= FAILURES ='), output.lastIndexOf('= SUMMARY =')).slice(0, 8000);
  assert.deepEqual(report.failures, [], `schemathesis found failures:\n${failures}\n${summary}`);
  assert.deepEqual(report.errors, [], `schemathesis errors:\n${output.slice(-6000)}`);
  assert.equal(code, 0, `st exited with ${code}:\n${summary}`);
  assert.equal(report.complete, true, 'the run went to its end');
  assert.equal(serverErrors.length, 0, `5xx replies: ${JSON.stringify(serverErrors.slice(0, 5))}`);

  // A run that tried little proves little: every operation got inputs,
  // bad ones refused with a 4xx and (but one) valid ones answered 200.
  assert.equal(report.operations.tested, report.operations.selected, 'every selected operation was tested');
  for (const operation of new Set(all.filter((c) => c.mode === 'positive').map((c) => c.operation))) {
    const mine = all.filter((c) => c.operation === operation);
    assert.ok(mine.some((c) => c.mode === 'negative' && c.status >= 400 && c.status < 500), `${operation}: no bad input refused`);
    if (!NEVER_2XX.has(operation)) assert.ok(mine.some((c) => c.status === 200), `${operation}: no 200`);
  }
  assert.ok(bad.length >= 1000, `only ${bad.length} bad inputs`);
});

// Starts `wrangler dev` (workerd, real Durable Objects and their SQLite
// storage) on a free port with its own storage folder, for one test file.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Debian's headless Chromium through playwright-core (`CHROMIUM` overrides the path). */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Checks a 4xx JSON error: status, code, and a message that says something. */
export function assertError(res, status, error, what, message = /.{10}/) {
  const body = JSON.stringify(res.data);
  assert.equal(res.status, status, `${what}: ${body}`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, what);
  assert.deepEqual(Object.keys(res.data).sort(), ['error', 'message'], what);
  assert.equal(res.data.error, error, `${what}: ${body}`);
  assert.match(res.data.message, message, what);
}

/** The postcard varint (LEB128) of `n` (a number or a BigInt), as bytes. */
export function varint(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

/** A local cluster. `vars` override wrangler.toml's [vars]. */
export class Cluster {
  constructor(vars = {}) {
    this.token = randomBytes(12).toString('hex');
    this.syncToken = randomBytes(12).toString('hex');
    this.writeToken = randomBytes(12).toString('hex');
    this.vars = {
      // Every test's load comes from 127.0.0.1: the write limit is off
      // except where a test turns it on.
      GOSSIP_INTERVAL_MS: '100', ANTI_ENTROPY_INTERVAL_MS: '500', WRITE_RATE_LIMIT: 'off',
      ADMIN_TOKEN: this.token, SYNC_TOKEN: this.syncToken, WRITE_TOKEN: this.writeToken, ...vars,
    };
    this.dir = mkdtempSync(join(tmpdir(), 'edge-crdt-e2e-'));
    this.proc = null;
    /** The nodes it starts with (`NODES`, 4 in wrangler.toml). */
    this.nodes = nodeIds(Number(this.vars.NODES ?? 4));
  }

  async start() {
    this.port = this.port ?? (await freePort());
    this.url = `http://127.0.0.1:${this.port}`;
    const args = ['dev', '--port', String(this.port), '--ip', '127.0.0.1', '--persist-to', this.dir,
      '--inspector-port', String(await freePort()), '--show-interactive-dev-session=false',
      '--test-scheduled'];
    for (const [k, v] of Object.entries(this.vars)) args.push('--var', `${k}:${v}`);
    this.log = '';
    this.proc = spawn(WRANGLER, args, { cwd: ROOT, detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } });
    this.proc.stdout.on('data', (d) => { this.log += d; });
    this.proc.stderr.on('data', (d) => { this.log += d; });
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      const code = await Promise.race([exited, sleep(250).then(() => undefined)]);
      if (code !== undefined) throw new Error(`wrangler dev exited (${code}):\n${this.log.slice(-3000)}`);
      try {
        const res = await fetch(`${this.url}/api/counters/health`);
        if (res.status === 200) return this;
      } catch { /* not up yet */ }
    }
    throw new Error(`wrangler dev did not answer in time:\n${this.log.slice(-3000)}`);
  }

  async stop() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    this.keepLog();
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
    await Promise.race([exited, sleep(8000)]);
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
  }

  /** SIGKILLs wrangler and workerd at once (their process group): no shutdown of any kind. */
  async crash() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    this.keepLog();
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    process.kill(-proc.pid, 'SIGKILL');
    await exited;
  }

  /** E2E_LOG=file: wrangler's output is appended there when it stops. */
  keepLog() {
    if (process.env.E2E_LOG) appendFileSync(process.env.E2E_LOG, this.log);
  }

  async destroy() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  /**
   * Runs `query` read-only on the SQLite database of each node object that
   * exists (sqlite3 on the files workerd writes): { 'node-0': rows, ... }.
   */
  sql(query) {
    const dir = join(this.dir, 'v3', 'do', 'edge-crdt-ClusterNode');
    const out = {};
    for (const file of readdirSync(dir).filter((f) => /^[0-9a-f]{64}\.sqlite$/.test(f))) {
      const run = (q) => JSON.parse(execFileSync('sqlite3', ['-json', '-cmd', '.timeout 5000', join(dir, file), q]).toString() || '[]');
      const [{ name }] = run('SELECT name FROM __miniflare_do_name');
      out[name] = run(query);
    }
    return out;
  }

  /** `admin`: with ADMIN_TOKEN; `write`: with WRITE_TOKEN. */
  async request(method, path, { body, headers = {}, admin = false, write = false } = {}) {
    const h = { ...headers };
    if (admin) h.authorization = `Bearer ${this.token}`;
    if (write) h.authorization = `Bearer ${this.writeToken}`;
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.url + path, { method, headers: h, body: payload });
    const type = res.headers.get('content-type') ?? '';
    const data = type.includes('json') ? await res.json() : new Uint8Array(await res.arrayBuffer());
    return { status: res.status, data, headers: res.headers };
  }

  /** A visit (`by` undefined), or a step of `by` with WRITE_TOKEN. */
  increment(name, by, node) {
    const q = node ? `?node=${node}` : '';
    return this.request('POST', `/api/counters/${encodeURIComponent(name)}/increment${q}`, by === undefined ? {} : { body: { by }, write: true });
  }

  read(name, node) {
    const q = node ? `?node=${node}` : '';
    return this.request('GET', `/api/counters/${encodeURIComponent(name)}${q}`);
  }

  /** Runs the Worker's scheduled handler (its Cron Trigger), as `wrangler dev --test-scheduled` allows. */
  async cron() {
    const res = await fetch(`${this.url}/__scheduled?cron=*+*+*+*+*`);
    if (res.status !== 200) throw new Error(`/__scheduled: ${res.status} ${await res.text()}`);
  }

  admin(method, path, body) {
    return this.request(method, `/admin${path}`, { body, admin: true });
  }

  /** `GET /admin/nodes/:node`: that node's own view (membership, partition, `sent`, `sent_to`, `repaired_rows`, …). */
  async nodeView(node) {
    const res = await this.admin('GET', `/nodes/${node}`);
    if (res.status !== 200) throw new Error(`view of ${node}: ${res.status} ${JSON.stringify(res.data)}`);
    return res.data;
  }

  /**
   * A request to `/api/kv/:key` (`key` is percent-encoded here; `null` for
   * the listing `/api/kv`), with `query` parameters and `node` as `?node=`.
   */
  kv(method, key, { body, node, query = {}, headers } = {}) {
    const params = new URLSearchParams({ ...query, ...(node ? { node } : {}) }).toString();
    const path = key === null ? '/api/kv' : `/api/kv/${encodeURIComponent(key)}`;
    return this.request(method, `${path}${params ? `?${params}` : ''}`, { body, headers });
  }

  /** Cuts gossip between `groups` of nodes; with no groups, heals. */
  async partition(groups) {
    const res = groups ? await this.admin('PUT', '/partition', { groups }) : await this.admin('DELETE', '/partition');
    if (res.status !== 200) throw new Error(`partition ${JSON.stringify(groups)}: ${res.status} ${JSON.stringify(res.data)}`);
    return res;
  }

  /**
   * Reads the server-sent events of `path` (each the text before a blank
   * line) until `done(events)` is true or `timeoutMs` passes.
   */
  async events(path, done, timeoutMs = 15_000) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    const res = await fetch(this.url + path, { signal: ctrl.signal });
    if (res.status !== 200 || res.headers.get('content-type') !== 'text/event-stream') {
      clearTimeout(timer);
      ctrl.abort();
      throw new Error(`${path}: ${res.status} ${res.headers.get('content-type')}, not an event stream`);
    }
    const events = [];
    let text = '';
    try {
      const decoder = new TextDecoder();
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        let cut;
        while ((cut = text.indexOf('\n\n')) >= 0) {
          events.push(text.slice(0, cut));
          text = text.slice(cut + 2);
        }
        if (await done(events)) break;
      }
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
    } finally {
      clearTimeout(timer);
      ctrl.abort();
    }
    return events;
  }

  /** Polls `probe` until it returns something truthy, and returns that. */
  async until(probe, what, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const got = await probe();
      if (got) return got;
      await sleep(100);
    }
    throw new Error(`timed out: ${what}`);
  }

  /** Polls until every node in `nodes` reads `expected` for `name`. */
  async converged(name, nodes, expected, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    let seen;
    while (Date.now() < deadline) {
      seen = await Promise.all(nodes.map(async (n) => (await this.read(name, n)).data));
      if (seen.every((v) => v.value === expected && nodes.includes(v.node))) return seen;
      await sleep(100);
    }
    throw new Error(`not converged on ${expected}: ${JSON.stringify(seen.map((v) => [v.node, v.value]))}`);
  }
}

/** The ids of a cluster of `n` nodes: `node-0` … `node-{n-1}`. */
export const nodeIds = (n) => Array.from({ length: n }, (_, i) => `node-${i}`);

export const NODES = nodeIds(4);

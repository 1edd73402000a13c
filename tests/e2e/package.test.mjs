// The npm package @edge-crdt/browser as a user gets it: the tarball that
// scripts/build-browser.sh packed (target/pkg/*.tgz) is installed offline
// into a scratch project; its files, exports and types are checked; then
// pages of that project, served by a small static server in this process
// (no wrangler), import it by name through an import map into
// node_modules in headless Chromium and use each replica.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { ROOT, launchChromium } from './harness.mjs';

const NAME = '@edge-crdt/browser';
// What the package must offer: each import, the module behind it, its replica.
const IMPORTS = [
  { specifier: NAME, subpath: '.', module: 'edge_crdt', replica: 'CounterReplica' },
  { specifier: `${NAME}/contacts`, subpath: './contacts', module: 'edge_crdt_contacts', replica: 'ContactsReplica' },
  { specifier: `${NAME}/stream`, subpath: './stream', module: 'edge_crdt_stream', replica: 'StreamReplica' },
];
const MODULE_FILES = IMPORTS.flatMap(({ module }) => [`${module}.js`, `${module}_bg.wasm`, `${module}.d.ts`]);
// The counter page's budget for its .wasm (README's size table).
const COUNTER_WASM_MAX_GZIP = 40 * 1024;
const PACKED = join(ROOT, 'target', 'pkg');

const work = mkdtempSync(join(tmpdir(), 'edge-crdt-package-'));
const app = join(work, 'app'); // the scratch project
const installed = join(app, 'node_modules', ...NAME.split('/'));
let pkg; // the installed package.json
let server;
let browser;

/** The one tarball the build packed. */
function packedTarball() {
  let found = [];
  try {
    found = readdirSync(PACKED).filter((f) => f.endsWith('.tgz'));
  } catch { /* no target/pkg */ }
  if (found.length !== 1) {
    throw new Error(`expected one tarball in ${PACKED}, found ${found.join(', ') || 'none'}: run bash scripts/build-browser.sh`);
  }
  return join(PACKED, found[0]);
}

const cargoVersion = () => readFileSync(join(ROOT, 'Cargo.toml'), 'utf8').match(/^version = "([^"]+)"/m)[1];

/** Every file under `dir`, as paths relative to it, sorted. */
const filesUnder = (dir) => readdirSync(dir, { recursive: true }).filter((f) => statSync(join(dir, f)).isFile()).sort();

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Serves `dir` on a free port; `requested` lists the paths served. */
function serve(dir) {
  const requested = [];
  const srv = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    const file = normalize(join(dir, path));
    let isFile = false;
    try {
      isFile = file.startsWith(dir + sep) && statSync(file).isFile();
    } catch { /* missing */ }
    if (!isFile) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no ${path}`);
      return;
    }
    requested.push(path);
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => {
    srv.listen(0, '127.0.0.1', () => resolve({ srv, url: `http://127.0.0.1:${srv.address().port}`, requested }));
  });
}

/** A page of the scratch project running `script` as a module, with the package's names mapped into node_modules. */
function writePage(name, script) {
  const base = `/node_modules/${NAME}/`;
  const imports = Object.fromEntries(IMPORTS.map(({ specifier, subpath }) => [specifier, base + pkg.exports[subpath].default.replace(/^\.\//, '')]));
  writeFileSync(join(app, `${name}.js`), script);
  writeFileSync(join(app, `${name}.html`), `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<script type="importmap">${JSON.stringify({ imports })}</script>
<script type="module" src="./${name}.js"></script>
`);
}

/** Opens a page whose module sets `window.modules`; console warnings and errors go to `problems`. */
async function openPage(context, name) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'warning' || m.type() === 'error') problems.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e}`));
  await page.goto(`${server.url}/${name}.html`);
  try {
    await page.waitForFunction(() => window.modules, null, { timeout: 15_000 });
  } catch {
    throw new Error(`${name}.html never imported the package: ${problems.join('; ') || 'no console message'}`);
  }
  return { page, problems };
}

/** The names a .d.ts declares: its runtime exports, each class's members, each interface's fields. */
function declared(dts) {
  const exports = [...dts.matchAll(/^export (?:default )?(?:class|function) (\w+)/gm)]
    .map(([line, name]) => (line.includes(' default ') ? 'default' : name));
  const block = (kind, name) => {
    const m = dts.match(new RegExp(`^export ${kind} ${name} \\{\\n([\\s\\S]*?)^\\}`, 'm'));
    assert.ok(m, `the .d.ts declares ${kind} ${name}`);
    return m[1];
  };
  const members = (name) => {
    const found = { instance: [], static: [] };
    for (const [, isStatic, member] of block('class', name).matchAll(/^ {4}(static )?(?:readonly )?(\w+)\s*[(:]/gm)) {
      if (member !== 'constructor') found[isStatic ? 'static' : 'instance'].push(member);
    }
    return { instance: found.instance.sort(), static: found.static.sort() };
  };
  const fields = (name) => [...block('interface', name).matchAll(/^ {4}(\w+)\??:/gm)].map(([, f]) => f).sort();
  return { exports: exports.sort(), members, fields };
}

// ---- counter states, as the server sends them (base64 of `codec::encode_state`)

/** A G-counter holding `count` (1-127) for node `node` (0-63), or none: its canonical bytes (src/crdt/g_counter/encoding.rs). */
function gCounter(entry) {
  if (!entry) return [0, 0]; // no runs of ids, no records
  const [node, count] = entry;
  assert.ok(node >= 0 && node < 64 && count > 0 && count < 128, 'one-byte varints only');
  // one run of one id (gap << 1), the counts as varints (form 0), no records
  return [1, node << 1, 0, count, 0];
}

/** A PN-counter's state: layout 2, then postcard's byte strings of its increments and decrements. */
function counterState(inc, dec) {
  const bytes = (b) => [b.length, ...b];
  return Buffer.from([2, ...bytes(gCounter(inc)), ...bytes(gCounter(dec))]).toString('base64');
}

/** A stream event as `/live` carries it: its CID text and its DAG-CBOR block in base64. */
async function streamEvent(topic, message, links = []) {
  const bytes = dagCbor.encode({
    topic, timestamp_ns: BigInt(Date.now()) * 1_000_000n, message: new TextEncoder().encode(message), links,
  });
  const cid = CID.create(1, dagCbor.code, await sha256.digest(bytes));
  return { id: cid, entry: { cid: cid.toString(), block: Buffer.from(bytes).toString('base64') } };
}

before(async () => {
  const tarball = packedTarball();
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2)}\n`);
  // Offline: the package has no dependencies, so nothing is fetched.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--cache', join(work, 'npm-cache'), tarball], {
    cwd: app, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  server = await serve(app);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.srv.close(resolve) : resolve()));
  rmSync(work, { recursive: true, force: true });
});

test('the tarball installs offline: its manifest, files, exports and types', () => {
  assert.equal(pkg.name, NAME);
  assert.equal(pkg.version, cargoVersion(), "Cargo.toml's version");
  assert.equal(pkg.license, 'MIT OR Apache-2.0');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.sideEffects, false);
  assert.equal(pkg.dependencies, undefined, 'no dependencies');
  assert.deepEqual(filesUnder(installed), ['README.md', 'package.json', ...MODULE_FILES].sort(), 'the installed files');

  const readme = readFileSync(join(installed, 'README.md'), 'utf8');
  for (const { specifier, subpath, module, replica } of IMPORTS) {
    const entry = pkg.exports[subpath];
    assert.ok(entry, `exports["${subpath}"]`);
    assert.deepEqual(Object.keys(entry), ['types', 'default'], `exports["${subpath}"]: types first`);
    assert.equal(entry.types, entry.default.replace(/\.js$/, '.d.ts'), `exports["${subpath}"]: the types of its module`);
    const types = readFileSync(join(installed, entry.types), 'utf8');
    for (const declaration of [`export class ${replica} `, 'export default function __wbg_init', 'export function initSync']) {
      assert.ok(types.includes(declaration), `${entry.types} declares ${declaration.trim()}`);
    }
    assert.ok(readme.includes(specifier), `the README names ${specifier}`);
    assert.equal(pkg.exports[`./${module}_bg.wasm`], `./${module}_bg.wasm`, `the .wasm of ${specifier} is exported`);
  }

  // Node's own resolver, from the scratch project, follows the exports.
  writeFileSync(join(app, 'resolve.mjs'), 'console.log(JSON.stringify(process.argv.slice(2).map((s) => import.meta.resolve(s))));\n');
  const specifiers = [...IMPORTS.map((i) => i.specifier), `${NAME}/package.json`];
  const resolved = JSON.parse(execFileSync(process.execPath, ['resolve.mjs', ...specifiers], { cwd: app, encoding: 'utf8' }));
  const expected = [...IMPORTS.map(({ subpath }) => pkg.exports[subpath].default), './package.json']
    .map((file) => pathToFileURL(join(installed, file)).href);
  assert.deepEqual(resolved, expected, 'import.meta.resolve of each name');

  const counterWasm = gzipSync(readFileSync(join(installed, 'edge_crdt_bg.wasm')), { level: 9 }).length;
  assert.ok(counterWasm <= COUNTER_WASM_MAX_GZIP, `the counter's .wasm is ${counterWasm} bytes gzipped, over ${COUNTER_WASM_MAX_GZIP}`);
});

test('a page imports the counter by name, loads only its module, and merges states', async () => {
  writePage('counter', `import init, { CounterReplica } from "${NAME}";
window.modules = { init, CounterReplica };
`);
  const context = await browser.newContext();
  const { page, problems } = await openPage(context, 'counter');
  const states = {
    node0: counterState([0, 3], null), // +3 at node-0
    node1: counterState([1, 4], [1, 1]), // +4 and -1 at node-1
  };
  const got = await page.evaluate(async ({ node0, node1 }) => {
    const { init, CounterReplica } = window.modules;
    const wasm = await init();
    const replica = new CounterReplica('pkg');
    const out = { memory: wasm.memory instanceof WebAssembly.Memory, empty: replica.value() };
    out.changed = [replica.mergeState(node0), replica.mergeEvent(node1), replica.mergeState(node0)];
    out.value = replica.value();
    out.contributions = replica.contributions();
    out.retired = replica.retired();
    const copy = new CounterReplica('copy');
    copy.mergeState(replica.state());
    out.copy = copy.value();
    try {
      replica.mergeState(node1.slice(0, 8));
      out.refused = 'no error';
    } catch (e) {
      out.refused = e instanceof Error ? e.message : `not an Error: ${e}`;
    }
    out.afterRefused = replica.value();
    out.saved = replica.save();
    out.loaded = CounterReplica.load('pkg').value();
    out.storageKey = replica.storageKey;
    return out;
  }, states);
  const { refused, ...rest } = got;
  assert.deepEqual(rest, {
    memory: true,
    empty: 0,
    changed: [true, true, false],
    value: 6,
    contributions: { 'node-0': 3, 'node-1': 3 },
    retired: {},
    copy: 6,
    afterRefused: 6,
    saved: true,
    loaded: 6,
    storageKey: 'edge-crdt:counter:pkg',
  });
  assert.match(refused, /.{10}/, 'a broken state throws an Error that says why');

  const fromPackage = server.requested.filter((p) => p.startsWith('/node_modules/')).map((p) => p.split('/').pop());
  assert.deepEqual(fromPackage.sort(), ['edge_crdt.js', 'edge_crdt_bg.wasm'], 'the counter page loads the counter module only');
  assert.deepEqual(problems, [], 'no console warning (the .wasm streams as application/wasm) or error');
  await context.close();
});

test('a page imports every module by name: their exports match their types, the address book and stream replicas work', async () => {
  writePage('all', `import * as counter from "${NAME}";
import * as contacts from "${NAME}/contacts";
import * as stream from "${NAME}/stream";
window.modules = { counter, contacts, stream };
`);
  const topic = 'pkg-topic';
  const first = await streamEvent(topic, 'first');
  const second = await streamEvent(topic, 'second', [first.id]);
  const elsewhere = await streamEvent('another-topic', 'elsewhere');
  const fixtures = {
    first: first.entry,
    second: second.entry,
    forged: { cid: first.entry.cid, block: second.entry.block },
    elsewhere: elsewhere.entry,
    topic,
  };

  const context = await browser.newContext();
  const { page, problems } = await openPage(context, 'all');
  const got = await page.evaluate(async (f) => {
    const { counter, contacts, stream } = window.modules;
    const own = (o, skip) => Object.getOwnPropertyNames(o).filter((n) => !skip.includes(n) && !n.startsWith('__')).sort();
    const shape = (namespace) => {
      const classes = {};
      for (const [name, value] of Object.entries(namespace)) {
        if (typeof value === 'function' && /^class /.test(Function.prototype.toString.call(value))) {
          classes[name] = { instance: own(value.prototype, ['constructor']), static: own(value, ['length', 'name', 'prototype']) };
        }
      }
      return { exports: Object.keys(namespace).sort(), classes };
    };
    await Promise.all([counter.default(), contacts.default(), stream.default()]);
    const out = { shapes: { counter: shape(counter), contacts: shape(contacts), stream: shape(stream) } };

    // An address book: a local edit waits in the outbox; another client's change merges.
    const ada = '10000000-0000-4000-8000-000000000000';
    const bob = '20000000-0000-4000-8000-000000000000';
    const book = contacts.ContactsReplica.load('pkg-book');
    book.edit(ada, 'name', 'Ada', Date.now());
    const push = book.pushBody();
    const stamp = `${Date.now()}-0000-0000000a00000002`;
    out.contacts = {
      clientId: book.clientId,
      pending: book.pending(),
      push,
      pushKeys: Object.keys(push).sort(),
      deltaKeys: Object.keys(push.deltas[0]).sort(),
      merged: [book.mergeChange(bob, 'name', 'Bob', stamp), book.mergeChange(bob, 'name', 'Bob', stamp)],
      names: book.contacts().map((c) => c.name),
      contactKeys: Object.keys(book.contacts()[0]).sort(),
      saved: book.save(),
    };
    try {
      book.edit(ada, 'age', '36', Date.now());
      out.contacts.badColumn = 'no error';
    } catch (e) {
      out.contacts.badColumn = e.message;
    }
    const reloaded = contacts.ContactsReplica.load('pkg-book');
    out.contacts.reloaded = { clientId: reloaded.clientId, pending: reloaded.pending(), names: reloaded.contacts().map((c) => c.name) };

    // A stream topic: events checked and ordered; forged and foreign ones refused.
    const topic = new stream.StreamReplica(f.topic);
    const received = topic.receive(JSON.stringify([f.second, f.first]));
    out.stream = {
      received,
      receivedKeys: Object.keys(received).sort(),
      again: topic.receive(JSON.stringify({ entries: [f.first] })),
      forged: topic.receive(JSON.stringify([f.forged, f.elsewhere])),
      messages: topic.events().map((e) => e.message),
      eventKeys: Object.keys(topic.events()[0]).sort(),
      links: topic.events()[1].links,
      heads: topic.heads(),
      missing: topic.missing(),
      len: topic.len(),
    };
    topic.setCursor('node-0', 5);
    out.stream.cursor = topic.cursor();
    out.stream.cursorKeys = Object.keys(topic.cursor()).sort();
    return out;
  }, fixtures);

  // Each module's runtime exports and class members are what its .d.ts declares.
  for (const { module } of IMPORTS) {
    const dts = declared(readFileSync(join(installed, `${module}.d.ts`), 'utf8'));
    const key = { edge_crdt: 'counter', edge_crdt_contacts: 'contacts', edge_crdt_stream: 'stream' }[module];
    const runtime = got.shapes[key];
    assert.deepEqual(runtime.exports, dts.exports, `${module}: exports vs its .d.ts`);
    for (const [name, members] of Object.entries(runtime.classes)) {
      assert.deepEqual(members, dts.members(name), `${module}: ${name}'s members vs its .d.ts`);
    }
  }
  const contactsTypes = declared(readFileSync(join(installed, 'edge_crdt_contacts.d.ts'), 'utf8'));
  const streamTypes = declared(readFileSync(join(installed, 'edge_crdt_stream.d.ts'), 'utf8'));

  const c = got.contacts;
  assert.match(c.clientId, /^[0-9a-f]{16}$/);
  assert.equal(c.pending, 1, 'the edit waits for the server');
  assert.equal(c.push.client, c.clientId);
  assert.equal(c.push.deltas.length, 1);
  const { timestamp, seq, ...delta } = c.push.deltas[0];
  assert.deepEqual(delta, { id: '10000000-0000-4000-8000-000000000000', column: 'name', value: 'Ada' });
  assert.match(timestamp, new RegExp(`^\\d+-[0-9a-f]{4}-${c.clientId}$`), "the client's own stamp");
  assert.equal(typeof seq, 'number');
  assert.deepEqual(c.merged, [true, false], "another client's change merges once");
  assert.deepEqual(c.names, ['Ada', 'Bob'], 'the contacts, by id');
  assert.equal(c.saved, true);
  assert.match(c.badColumn, /.{10}/, 'a wrong column throws an Error that says why');
  assert.deepEqual(c.reloaded, { clientId: c.clientId, pending: 1, names: ['Ada', 'Bob'] }, 'saved and loaded back');
  assert.deepEqual(c.pushKeys, contactsTypes.fields('ContactsPush'), 'ContactsPush as declared');
  assert.deepEqual(c.deltaKeys, contactsTypes.fields('ContactDelta'), 'ContactDelta as declared');
  assert.deepEqual(c.contactKeys, contactsTypes.fields('Contact'), 'Contact as declared');

  const s = got.stream;
  assert.deepEqual(s.received, { accepted: 2, added: 2, refused: [] });
  assert.deepEqual({ ...s.again, refused: s.again.refused.length }, { accepted: 1, added: 0, refused: 0 }, 'a held event again');
  assert.equal(s.forged.accepted, 0);
  assert.equal(s.forged.refused.length, 2, `refused: ${s.forged.refused.join('; ')}`);
  assert.ok(s.forged.refused[0].startsWith(`${fixtures.forged.cid}: `), `a block that does not hash to its id: ${s.forged.refused[0]}`);
  assert.ok(s.forged.refused[1].startsWith(`${fixtures.elsewhere.cid}: `), `another topic's event: ${s.forged.refused[1]}`);
  assert.deepEqual(s.messages, ['first', 'second'], 'each event after what it links');
  assert.deepEqual(s.links, [fixtures.first.cid]);
  assert.deepEqual(s.heads, [fixtures.second.cid]);
  assert.deepEqual(s.missing, []);
  assert.equal(s.len, 2);
  assert.deepEqual(s.cursor, { node: 'node-0', seq: 5 });
  assert.deepEqual(s.receivedKeys, streamTypes.fields('StreamReceived'), 'StreamReceived as declared');
  assert.deepEqual(s.eventKeys, streamTypes.fields('StreamEvent'), 'StreamEvent as declared');
  assert.deepEqual(s.cursorKeys, streamTypes.fields('StreamCursor'), 'StreamCursor as declared');

  assert.deepEqual(problems, [], 'no console warning or error');
  await context.close();
});
